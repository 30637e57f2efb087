//! Projections: catch-up subscribers over the event store. Each is idempotent and rebuildable
//! from position 0.
//!
//! * [`retention`] — the crypto-shredding retention process: destroys retention-epoch keys when
//!   they expire, subject keys when a subject's last message expires, and completes erasures.

pub mod retention;
