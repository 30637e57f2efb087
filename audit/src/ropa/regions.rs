//! Regions and transfers: configured region codes parsed and ordered, Local Storage marked,
//! unknown codes flagged, and the transfer statement.

use super::record::{RegionKind, RegionRecord, StoreRecord};
use super::DATA_IN_USE_MAX_MINUTES;
use sealpost_domain::Region;
use std::fmt::Write as _;

/// One region code, parsed and normalised.
fn region_record(code: &str) -> RegionRecord {
    match code.trim().parse::<Region>() {
        Ok(region) => RegionRecord {
            code: region.code().to_owned(),
            kind: if region.is_local_storage() {
                RegionKind::LocalStorage
            } else {
                RegionKind::Default
            },
        },
        Err(_) => RegionRecord {
            code: code.trim().to_uppercase(),
            kind: RegionKind::Unrecognised,
        },
    }
}

/// The regions named by `codes`: known ones in [`Region::ALL`] order (defaults first), then
/// unrecognised codes alphabetically; no repeats.
pub(super) fn regions<'a>(codes: impl Iterator<Item = &'a str>) -> Vec<RegionRecord> {
    let mut out: Vec<RegionRecord> = codes.map(region_record).collect();
    let rank = |r: &RegionRecord| {
        Region::ALL
            .iter()
            .position(|k| k.code() == r.code && r.kind != RegionKind::Unrecognised)
            .unwrap_or(Region::ALL.len())
    };
    out.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.code.cmp(&b.code)));
    out.dedup();
    out
}

/// The codes of `regions` of one kind, comma-separated, or `"none"`.
fn codes_of(regions: &[RegionRecord], kind: RegionKind) -> String {
    let codes: Vec<&str> = regions
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.code.as_str())
        .collect();
    if codes.is_empty() {
        "none".to_owned()
    } else {
        codes.join(", ")
    }
}

/// Where the data of each region is, as the deployment has it: every region has its own root
/// key; the home `store` holds what its [`StoreRecord::holds`] says, and each Local Storage
/// region with a store of its own (`stores`) holds what its record says. With Local Storage
/// regions in use the statement says what the home store keeps of them (their events' headers),
/// so the record never claims a separation the deployment does not have.
pub(super) fn transfer_statement(
    regions: &[RegionRecord],
    store: &str,
    stores: &[StoreRecord],
) -> String {
    let defaults: Vec<&str> = Region::ALL
        .iter()
        .filter(|r| !r.is_local_storage())
        .map(|r| r.code())
        .collect();
    let mut s = format!(
        "Default regions (no Local Storage election): {}; in use: {}. In-country Local Storage \
         regions in use: {}. Each region has its own root key: the keys that seal a phone \
         number's content and its consumers' numbers are wrapped by the root key of the \
         number's region only.",
        defaults.join(" and "),
        codes_of(regions, RegionKind::Default),
        codes_of(regions, RegionKind::LocalStorage),
    );
    match stores.iter().find(|s| s.region.is_none()) {
        Some(home) => {
            let _ = write!(
                s,
                " The home store ({store}, {}) holds {}.",
                home.location, home.holds
            );
        }
        None => {
            let _ = write!(
                s,
                " The rows of every region are kept in one physical store ({store})."
            );
        }
    }
    for own in stores.iter().filter(|s| s.region.is_some()) {
        let _ = write!(
            s,
            " {} has a store of its own ({}), which holds {}.",
            own.region.as_deref().unwrap_or_default(),
            own.location,
            own.holds
        );
    }
    if regions.iter().any(|r| r.kind == RegionKind::LocalStorage) {
        let _ = write!(
            s,
            " The sealed events of a number that elected Local Storage (message content, media, \
             template parameters, consumer numbers) are at rest only in its region's store; the \
             home store keeps each event's plaintext header (type, time, business, region) and \
             a reference to its body, in the one ordered log every node follows. Data in use \
             elsewhere is held only in the home node's memory while it is worked on (a \
             hand-over, a decryption, a webhook attempt, a media transfer), at most \
             {DATA_IN_USE_MAX_MINUTES} minutes; the retention duty accounts for it per region \
             every hour and the retention report shows it."
        );
    }
    if regions.iter().any(|r| r.kind == RegionKind::Unrecognised) {
        let _ = write!(
            s,
            " Unrecognised region codes in the configuration: {}.",
            codes_of(regions, RegionKind::Unrecognised)
        );
    }
    s
}
