//! The log's hashes as C2SP `tlog-tiles` serves them: `tile/<L>/<N>[.p/<W>]`, the 256 (or
//! `W`) consecutive hashes at height `8·L` from index `256·N` on, each 32 bytes, concatenated.
//! The stored interior already has this layout (ADR 0013), so a tile is one read. Only hashes
//! inside the tree of a signed checkpoint are served, so every tile is consistent with a
//! checkpoint a client can verify.

use super::{read_level, TILE_HEIGHT, TILE_WIDTH};
use crate::error::AuditError;
use sealpost_adapters::store::EventLog;

/// A tile's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileAddress {
    /// The tile level `L` (hashes at height `8·L`).
    pub level: u32,
    /// The tile index `N`.
    pub index: u64,
    /// The width of a partial tile (`.p/W`, 1 to 255); `None` for a full tile.
    pub width: Option<u64>,
}

impl TileAddress {
    /// Parses `<L>/<N>[.p/<W>]`, with `N` in zero-padded 3-digit elements, all but the last
    /// prefixed with `x`; `None` unless it is the canonical path of a tile.
    pub fn parse(path: &str) -> Option<Self> {
        let (level, rest) = path.split_once('/')?;
        let level: u32 = level.parse().ok().filter(|l| *l <= 63)?;
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                let w: u64 = width.parse().ok().filter(|w| (1..TILE_WIDTH).contains(w))?;
                (index, Some(w))
            }
            None => (rest, None),
        };
        let mut n: u64 = 0;
        let elements: Vec<&str> = index.split('/').collect();
        for (i, element) in elements.iter().enumerate() {
            let digits = match i + 1 == elements.len() {
                true => *element,
                false => element.strip_prefix('x')?,
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n = n.checked_mul(1_000)?.checked_add(digits.parse().ok()?)?;
        }
        let address = Self {
            level,
            index: n,
            width,
        };
        (address.path() == path).then_some(address)
    }

    /// The canonical path.
    pub fn path(&self) -> String {
        let digits = self.index.to_string();
        let padded = format!("{:0>width$}", digits, width = digits.len().div_ceil(3) * 3);
        let groups: Vec<&str> = padded
            .as_bytes()
            .chunks(3)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        let (last, rest) = groups.split_last().expect("at least one group");
        let mut path = format!("{}/", self.level);
        for group in rest {
            path.push_str(&format!("x{group}/"));
        }
        path.push_str(last);
        if let Some(w) = self.width {
            path.push_str(&format!(".p/{w}"));
        }
        path
    }
}

/// The tile at `address` of the tree of `size` leaves: its hashes concatenated, or `None` when
/// that tree does not hold it (yet).
pub async fn tile(
    events: &dyn EventLog,
    size: u64,
    address: TileAddress,
) -> Result<Option<Vec<u8>>, AuditError> {
    // Only what `TileAddress::parse` admits: levels 0 to 63, partial widths 1 to 255.
    if address.level > 63 || address.width.is_some_and(|w| !(1..TILE_WIDTH).contains(&w)) {
        return Ok(None);
    }
    let height = address.level * TILE_HEIGHT;
    let at_height = size.checked_shr(height).unwrap_or(0);
    let width = address.width.unwrap_or(TILE_WIDTH);
    let Some(from) = address.index.checked_mul(TILE_WIDTH) else {
        return Ok(None);
    };
    if from.saturating_add(width) > at_height {
        return Ok(None);
    }
    let hashes = read_level(events, height, from, width as u32).await?;
    if hashes.len() as u64 != width {
        // The first leaf under the first missing hash.
        let missing = from + hashes.len() as u64;
        return Err(AuditError::Gap(
            missing
                .checked_shl(height)
                .unwrap_or(u64::MAX)
                .saturating_add(1),
        ));
    }
    Ok(Some(hashes.concat()))
}

#[cfg(test)]
mod tests {
    use super::TileAddress;

    #[test]
    fn tile_paths_are_the_specifications() {
        let at = |level, index, width| TileAddress {
            level,
            index,
            width,
        };
        for (path, address) in [
            ("0/000", at(0, 0, None)),
            ("1/x001/x234/067", at(1, 1_234_067, None)),
            ("0/x001/234.p/17", at(0, 1_234, Some(17))),
            ("2/999", at(2, 999, None)),
        ] {
            assert_eq!(TileAddress::parse(path), Some(address), "{path}");
            assert_eq!(address.path(), path);
        }
        for bad in [
            "0/0",
            "0/x000/001",
            "0/001/002",
            "0/000.p/0",
            "0/000.p/256",
            "x/000",
            "0/abc",
            "0/000.p/",
            "64/000",
            "0/x01/234",
        ] {
            assert_eq!(TileAddress::parse(bad), None, "{bad}");
        }
    }
}
