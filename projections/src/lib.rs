//! Projections: catch-up subscribers over the event store. Each is idempotent and rebuildable
//! from position 0.
//!
//! * [`retention`] — the crypto-shredding retention process: destroys retention-epoch keys when
//!   they expire, subject keys when a subject's last message expires, and completes erasures.
//! * [`evidence`] — access, statistics, billing and retention facts: one fold over the outer
//!   layer, feeding auditor queries and the DPO's reports.
//! * [`report`] — the DPO's retention report, rendered as JSON, CSV and self-contained HTML.

pub mod evidence;
pub mod report;
pub mod retention;
