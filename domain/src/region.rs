//! Storage regions: the two default regions and the Local Storage (in-country) ones.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A storage region. Each region has its own root key (its own physical store is issue 14's
/// work: today every region's rows share the deployment's store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Region {
    /// North America (default region).
    Na,
    /// European Union (default region).
    Eu,
    /// Australia.
    Au,
    /// Indonesia.
    Id,
    /// India.
    In,
    /// Japan.
    Jp,
    /// Singapore.
    Sg,
    /// South Korea.
    Kr,
    /// Germany (EU).
    De,
    /// Switzerland.
    Ch,
    /// United Kingdom.
    Gb,
    /// Brazil.
    Br,
    /// Bahrain.
    Bh,
    /// South Africa.
    Za,
    /// United Arab Emirates.
    Ae,
    /// Canada.
    Ca,
}

impl Region {
    /// Every region, default ones first.
    pub const ALL: [Region; 16] = [
        Region::Na,
        Region::Eu,
        Region::Au,
        Region::Id,
        Region::In,
        Region::Jp,
        Region::Sg,
        Region::Kr,
        Region::De,
        Region::Ch,
        Region::Gb,
        Region::Br,
        Region::Bh,
        Region::Za,
        Region::Ae,
        Region::Ca,
    ];

    /// The region's code as the Cloud API spells it (`DE`, `GB`, …; `NA`/`EU` for the defaults).
    pub const fn code(self) -> &'static str {
        match self {
            Region::Na => "NA",
            Region::Eu => "EU",
            Region::Au => "AU",
            Region::Id => "ID",
            Region::In => "IN",
            Region::Jp => "JP",
            Region::Sg => "SG",
            Region::Kr => "KR",
            Region::De => "DE",
            Region::Ch => "CH",
            Region::Gb => "GB",
            Region::Br => "BR",
            Region::Bh => "BH",
            Region::Za => "ZA",
            Region::Ae => "AE",
            Region::Ca => "CA",
        }
    }

    /// Whether a phone number may elect this region for Local Storage (the defaults are not
    /// electable; they are where data lives without an election).
    pub const fn is_local_storage(self) -> bool {
        !matches!(self, Region::Na | Region::Eu)
    }

    /// Whether the region code `code` (a row's region column) names a Local Storage region.
    pub fn code_is_local_storage(code: &str) -> bool {
        code.parse::<Region>().is_ok_and(Region::is_local_storage)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A region code that is not one of [`Region::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown storage region")]
pub struct UnknownRegion;

impl FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::ALL
            .into_iter()
            .find(|r| r.code().eq_ignore_ascii_case(s))
            .ok_or(UnknownRegion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for r in Region::ALL {
            assert_eq!(r.code().parse::<Region>(), Ok(r));
            assert_eq!(
                serde_json::to_string(&r).expect("serializes"),
                format!("\"{}\"", r.code())
            );
        }
        assert_eq!("xx".parse::<Region>(), Err(UnknownRegion));
        assert!(!Region::Eu.is_local_storage());
        assert!(Region::De.is_local_storage());
    }
}
