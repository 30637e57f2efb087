//! The tree's stored interior, so a proof or a restart reads a few hundred hashes, not every
//! leaf (ADR 0013).
//!
//! Besides the leaves, the sequencer stores the root of every complete perfect subtree whose
//! height is a multiple of [`TILE_HEIGHT`] (8, 16, 24, …), in the same transaction as the
//! leaves under it. Every other hash a proof needs is a perfect subtree of height `h`, which is
//! the root of at most 2^7 consecutive stored hashes at height `8·⌊h/8⌋` (leaves for `h < 8`),
//! all inside one *tile* of 256 hashes: the layout of C2SP `tlog-tiles`. An inclusion or
//! consistency proof, or the right edge a restarted sequencer resumes from, reads two tiles per
//! 8 levels of the tree: a handful of small queries whatever the log's size.
//!
//! Everything here is planning and hashing over sizes, positions and hashes; the store is read
//! only through [`SubtreeReader`].

use crate::error::AuditError;
use crate::merkle::{self, Frontier, Hash};
use sealpost_adapters::store::{AuditNode, EventLog};
use std::collections::HashMap;

/// Height of a tile: stored hashes are at heights that are multiples of this.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes per tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// A perfect subtree: the `2^level` leaves from leaf `index << level` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subtree {
    /// Its height (0: a leaf).
    pub level: u32,
    /// Its place among the subtrees of that height, from 0.
    pub index: u64,
}

impl Subtree {
    /// Whether the sequencer stores this subtree's root (heights 8, 16, …).
    pub fn is_stored(self) -> bool {
        self.level > 0 && self.level.is_multiple_of(TILE_HEIGHT)
    }
}

/// The perfect subtrees, left to right, that leaves `start..end` split into (largest first);
/// for a range RFC 6962 ever hashes, `MTH` of the range is [`merkle::join`] of their roots.
pub fn pieces(start: u64, end: u64) -> Vec<Subtree> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let mut level = 63 - (end - at).leading_zeros();
        if at != 0 {
            level = level.min(at.trailing_zeros());
        }
        out.push(Subtree {
            level,
            index: at >> level,
        });
        at += 1 << level;
    }
    out
}

/// The completed stored subtrees a push of the leaf at `index` finishes, given the hashes
/// [`Frontier::push`] merged on the way (`merged[j]` is the subtree of height `j + 1`).
fn finished(index: u64, merged: &[Hash]) -> impl Iterator<Item = AuditNode> + '_ {
    let size = index + 1;
    merged.iter().enumerate().filter_map(move |(j, hash)| {
        let level = j as u32 + 1;
        let node = Subtree {
            level,
            index: (size >> level) - 1,
        };
        node.is_stored().then_some(AuditNode {
            level,
            index: node.index,
            hash: *hash,
        })
    })
}

/// Appends `leaf` to `frontier` and adds to `nodes` the stored subtrees it completes.
pub fn push(frontier: &mut Frontier, leaf: Hash, nodes: &mut Vec<AuditNode>) {
    let index = frontier.size();
    let merged = frontier.push_merging(leaf);
    nodes.extend(finished(index, &merged));
}

/// Reads the roots of perfect subtrees from the stored leaves and nodes, a tile at a time,
/// keeping the tiles it read.
#[derive(Debug)]
pub struct SubtreeReader<'a> {
    events: &'a dyn EventLog,
    tiles: HashMap<(u32, u64), Vec<Hash>>,
}

impl<'a> SubtreeReader<'a> {
    /// A reader over `events` with nothing read yet.
    pub fn new(events: &'a dyn EventLog) -> Self {
        Self {
            events,
            tiles: HashMap::new(),
        }
    }

    /// The root of `subtree`, which must be complete in the stored tree.
    pub async fn root(&mut self, subtree: Subtree) -> Result<Hash, AuditError> {
        let base = subtree.level / TILE_HEIGHT * TILE_HEIGHT;
        let width = 1u64 << (subtree.level - base);
        let first = subtree.index << (subtree.level - base);
        let tile = first / TILE_WIDTH;
        let offset = (first % TILE_WIDTH) as usize;
        let hashes = self.tile(base, tile).await?;
        let slice = hashes
            .get(offset..offset + width as usize)
            .ok_or(AuditError::Gap(first * (1 << base) + 1))?;
        Ok(merkle::root(slice))
    }

    /// `MTH` of each range, in order.
    pub async fn ranges(&mut self, ranges: &[(u64, u64)]) -> Result<Vec<Hash>, AuditError> {
        let mut out = Vec::with_capacity(ranges.len());
        for &(start, end) in ranges {
            let mut roots = Vec::new();
            for piece in pieces(start, end) {
                roots.push(self.root(piece).await?);
            }
            out.push(merkle::join(&roots));
        }
        Ok(out)
    }

    /// The stored hashes at height `level` from `tile * 256` on (up to 256), checked contiguous.
    async fn tile(&mut self, level: u32, tile: u64) -> Result<&[Hash], AuditError> {
        if !self.tiles.contains_key(&(level, tile)) {
            let from = tile * TILE_WIDTH;
            let hashes = read_level(self.events, level, from, TILE_WIDTH as u32).await?;
            self.tiles.insert((level, tile), hashes);
        }
        Ok(&self.tiles[&(level, tile)])
    }
}

/// Up to `limit` consecutive stored hashes at height `level` (0: the leaves, else a multiple of
/// [`TILE_HEIGHT`]) from index `from` on; stops at the first one missing.
pub async fn read_level(
    events: &dyn EventLog,
    level: u32,
    from: u64,
    limit: u32,
) -> Result<Vec<Hash>, AuditError> {
    let indexed: Vec<(u64, Hash)> = if level == 0 {
        let leaves = events.audit_leaves(from, limit).await?;
        leaves
            .into_iter()
            .map(|l| (l.position - 1, l.hash))
            .collect()
    } else {
        let nodes = events.audit_nodes(level, from, limit).await?;
        nodes.into_iter().map(|n| (n.index, n.hash)).collect()
    };
    Ok(indexed
        .into_iter()
        .zip(from..)
        .take_while(|((index, _), expected)| index == expected)
        .map(|((_, hash), _)| hash)
        .collect())
}

/// The right edge of the stored tree of `size` leaves, read from its tiles.
pub async fn frontier(events: &dyn EventLog, size: u64) -> Result<Frontier, AuditError> {
    let mut reader = SubtreeReader::new(events);
    let mut peaks = Vec::new();
    for piece in pieces(0, size) {
        peaks.push(reader.root(piece).await?);
    }
    Ok(Frontier::from_peaks(size, peaks))
}

/// Stores the subtree roots a tree of `size` leaves should have and does not (a log written
/// before they were kept, or one restored without them), height by height from the leaves up.
/// Returns how many it wrote.
pub async fn fill_in(events: &dyn EventLog, size: u64) -> Result<u64, AuditError> {
    const CHUNK: u64 = TILE_WIDTH * 64;
    let mut written = 0;
    let mut level = TILE_HEIGHT;
    while size >> level > 0 {
        let expected = size >> level;
        let below = level - TILE_HEIGHT;
        // Nodes are written in order, with the leaves under them: if the last is there, so are
        // the others.
        let have = events.audit_nodes(level, expected - 1, 1).await?;
        if have.is_empty() {
            let mut index = 0;
            while index < expected {
                let count = CHUNK.min(expected - index);
                let from = index * TILE_WIDTH;
                let hashes = read_level(events, below, from, (count * TILE_WIDTH) as u32).await?;
                if (hashes.len() as u64) < count * TILE_WIDTH {
                    return Err(AuditError::Gap(from + hashes.len() as u64 + 1));
                }
                let nodes: Vec<AuditNode> = hashes
                    .chunks(TILE_WIDTH as usize)
                    .zip(index..)
                    .map(|(tile, i)| AuditNode {
                        level,
                        index: i,
                        hash: merkle::root(tile),
                    })
                    .collect();
                events.audit_append_leaves(&[], &nodes).await?;
                written += nodes.len() as u64;
                index += count;
            }
        }
        level += TILE_HEIGHT;
    }
    Ok(written)
}

mod served;
pub use served::{tile, TileAddress};

#[cfg(test)]
mod tests;
