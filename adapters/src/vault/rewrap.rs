//! Region root keys rotate online (ADR 0025): a rotation makes the next generation of a
//! region's root key in its custody and records it as the generation new keys are wrapped
//! under; a rewrap then opens every key and Signal account still wrapped under an older
//! generation and wraps it under the new one, row by row, each replaced only if it did not
//! change meanwhile. Both generations open what they wrapped throughout, so nothing is ever
//! unreadable. Once no row is left under the old generation and every node has had time to
//! learn the new one, the old generation may be destroyed.

use super::{signal_state::signal_account_aad, wrap_aad, Vault, VaultError};
use crate::store::{RootSealed, UnderRoot};
use sealpost_domain::{Region, Timestamp};
use std::time::{Duration, Instant};

/// How long a node wraps new keys under the generation it last read before it reads again (a
/// rotation made by another process or node is followed within this).
pub(super) const ROOT_RECHECK: Duration = Duration::from_secs(60);

/// How long after a rotation the old generation may not yet be destroyed, even with no row
/// left under it: ten times [`ROOT_RECHECK`], so that every node wraps under the new one by
/// then and no key is wrapped under a destroyed generation.
pub const ROOT_SETTLE_MS: i64 = 10 * 60 * 1_000;

/// Rows rewrapped per read.
const REWRAP_BATCH: u32 = 256;

/// A region's root key: its current generation, since when (ms; 0 for generation 1), and the
/// keys and accounts still wrapped under an older generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootState {
    /// The generation keys are wrapped under now.
    pub generation: u32,
    /// Since when (ms; 0 for generation 1).
    pub since: i64,
    /// Rows still wrapped under an older generation.
    pub pending: u64,
}

/// What asking to destroy an old root-key generation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retirement {
    /// Destroyed: nothing wrapped under it opens again.
    Destroyed,
    /// The custody had no such generation (destroyed before, or never made).
    Absent,
    /// Refused: it is the current generation (or a later one).
    Current,
    /// Refused: the rotation is too recent; possible from this time (ms).
    Settling(i64),
    /// Refused: rows are still wrapped under it; a rewrap must finish first.
    Pending,
    /// Refused by the custody, which says why (a key from the environment, which the process
    /// cannot destroy).
    Refused(String),
}

impl Vault {
    /// The generation of `region`'s root key new keys are wrapped under (1 before any rotation),
    /// re-read from the key store within [`ROOT_RECHECK`].
    pub async fn root_generation(&self, region: Region) -> Result<u32, VaultError> {
        let known = self
            .current_root
            .lock()
            .expect("root lock is never poisoned")
            .get(&region)
            .copied();
        if let Some((generation, at)) = known {
            if at.elapsed() < ROOT_RECHECK {
                return Ok(generation);
            }
        }
        let (generation, _) = self.root_head(region).await?;
        self.remember_root(region, generation);
        Ok(generation)
    }

    /// `region`'s current root-key generation as the key store records it, and since when
    /// (ms; 0 for generation 1, which no rotation made).
    pub async fn root_head(&self, region: Region) -> Result<(u32, i64), VaultError> {
        Ok(self
            .keys
            .root_generation(region.code())
            .await?
            .unwrap_or((1, 0)))
    }

    fn remember_root(&self, region: Region, generation: u32) {
        let mut current = self
            .current_root
            .lock()
            .expect("root lock is never poisoned");
        let newer = current.get(&region).is_some_and(|(g, _)| *g > generation);
        if !newer {
            current.insert(region, (generation, Instant::now()));
        }
    }

    /// Makes generation `generation` of `region`'s root key in the custody, unless it exists
    /// (a rotation's first step: nothing is wrapped under it yet).
    pub fn make_root(&self, region: Region, generation: u32) -> Result<(), VaultError> {
        self.roots.make(region, generation)
    }

    /// Makes generation `generation` of `region`'s root key in the custody (once: a second
    /// call finds it) and records it as current from `now`: this process wraps under it at
    /// once, every other within [`ROOT_RECHECK`].
    pub async fn advance_root(
        &self,
        region: Region,
        generation: u32,
        now: Timestamp,
    ) -> Result<(), VaultError> {
        self.roots.make(region, generation)?;
        self.keys
            .set_root_generation(region.code(), generation, now.millis())
            .await?;
        self.remember_root(region, generation);
        Ok(())
    }

    /// Rewraps every key and Signal account of `region` wrapped under a generation older than
    /// the current one, generation by generation and table by table in id order; `progress`
    /// hears the running count after each batch. Returns the generation it rewrapped under and
    /// how many rows it rewrapped. A row that does not open stops it (corruption: alert).
    pub async fn rewrap_root(
        &self,
        region: Region,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<(u32, u64), VaultError> {
        let (target, _) = self.root_head(region).await?;
        let mut done = 0;
        for old in 1..target {
            for table in [UnderRoot::Key, UnderRoot::Account] {
                let mut after = String::new();
                loop {
                    let rows = self
                        .keys
                        .under_root(region.code(), (old, table), &after, REWRAP_BATCH)
                        .await?;
                    let Some(last) = rows.last() else {
                        break;
                    };
                    after.clone_from(&last.id);
                    for row in &rows {
                        if self.rewrap_row(region, row, target).await? {
                            done += 1;
                        }
                    }
                    progress(done);
                }
            }
        }
        Ok((target, done))
    }

    /// One row opened under its generation and wrapped under `target`, unless it changed.
    async fn rewrap_row(
        &self,
        region: Region,
        row: &RootSealed,
        target: u32,
    ) -> Result<bool, VaultError> {
        let aad = match row.table {
            UnderRoot::Key => wrap_aad(&row.id),
            UnderRoot::Account => signal_account_aad(&row.id, region),
        };
        let plain = self.roots.open(region, row.generation, &row.sealed, &aad)?;
        let sealed = self.roots.seal(region, target, &plain, &aad)?;
        Ok(self.keys.rewrap(row, target, &sealed).await?)
    }

    /// `region`'s current root-key generation, since when, and how many rows are still wrapped
    /// under an older one.
    pub async fn root_state(&self, region: Region) -> Result<RootState, VaultError> {
        let (generation, since) = self.root_head(region).await?;
        let pending = self
            .keys
            .count_under_root(region.code(), generation)
            .await?;
        Ok(RootState {
            generation,
            since,
            pending,
        })
    }

    /// Destroys generation `generation` of `region`'s root key if that is safe now: it is
    /// older than the current one, the rotation away from it is [`ROOT_SETTLE_MS`] old, and no
    /// row is wrapped under it or an older one.
    pub async fn retire_root(
        &self,
        region: Region,
        generation: u32,
        now: Timestamp,
    ) -> Result<Retirement, VaultError> {
        let (current, since) = self.root_head(region).await?;
        if generation >= current || generation == 0 {
            return Ok(Retirement::Current);
        }
        if now.millis() - since < ROOT_SETTLE_MS {
            return Ok(Retirement::Settling(since + ROOT_SETTLE_MS));
        }
        if self
            .keys
            .count_under_root(region.code(), generation + 1)
            .await?
            > 0
        {
            return Ok(Retirement::Pending);
        }
        Ok(match self.roots.destroy(region, generation) {
            Ok(true) => Retirement::Destroyed,
            Ok(false) => Retirement::Absent,
            Err(VaultError::RootKey(_, why)) => Retirement::Refused(why),
            Err(e) => return Err(e),
        })
    }
}
