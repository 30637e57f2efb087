//! The pipeline's lanes (ADR 0017): the businesses are split into [`LANE_COUNT`] lanes by a
//! hash of their id, and each lane is a pipeline of its own (its checkpoint, its numbers, its
//! retries) under a lease of its own, so the nodes over one store share the delivery and a
//! consumer's Signal session is only ever advanced by the one holder of its business's lane.
//!
//! The lane of a business never changes: a checkpoint is a lane's, so the hash and the count
//! are part of the stored format (a change would need a migration of the checkpoints).

use super::DELIVERY_CHECKPOINT;

/// How many lanes the businesses are split into: enough for a few nodes to share them evenly,
/// few enough that each node's readers of the log stay cheap.
pub const LANE_COUNT: u16 = 8;

/// The prefix of a lane's lease (`pipeline:<lane>`).
pub const LANE_LEASE_PREFIX: &str = "pipeline:";

/// One lane: the businesses whose id hashes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lane(u16);

impl Lane {
    /// Every lane, in order.
    pub fn all() -> impl Iterator<Item = Lane> {
        (0..LANE_COUNT).map(Lane)
    }

    /// The lane of a business: FNV-1a (32 bits) of its id, modulo [`LANE_COUNT`]. Stable across
    /// releases, machines and processes (no random seed), unlike the standard hasher.
    pub fn of(business_id: &str) -> Lane {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in business_id.bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        // Below LANE_COUNT, so it fits.
        Lane((hash % u32::from(LANE_COUNT)) as u16)
    }

    /// The lane's number (0 to [`LANE_COUNT`] − 1).
    pub fn index(self) -> u16 {
        self.0
    }

    /// The lease a node holds to work the lane.
    pub fn lease(self) -> String {
        format!("{LANE_LEASE_PREFIX}{}", self.0)
    }

    /// The lane's durable delivery checkpoint.
    pub fn checkpoint(self) -> String {
        format!("{DELIVERY_CHECKPOINT}:{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_of_a_business_is_fixed_and_lanes_are_used_evenly() {
        // Pinned: a checkpoint belongs to a lane, so these may never change.
        let pinned: Vec<u16> = ["100000000000001", "100000000000002", "123456789012345"]
            .iter()
            .map(|b| Lane::of(b).index())
            .collect();
        assert_eq!(pinned, PINNED);
        let mut counts = [0u32; LANE_COUNT as usize];
        for n in 0..8_000u64 {
            counts[usize::from(Lane::of(&(100_000_000_000_000 + n).to_string()).index())] += 1;
        }
        // 1,000 expected per lane.
        assert!(
            counts.iter().all(|&c| (850..=1_150).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn lane_names() {
        let lane = Lane::of("100000000000001");
        assert_eq!(lane.lease(), format!("pipeline:{}", lane.index()));
        assert_eq!(lane.checkpoint(), format!("delivery:{}", lane.index()));
        assert_eq!(Lane::all().count(), usize::from(LANE_COUNT));
    }

    const PINNED: [u16; 3] = [7, 2, 7];
}
