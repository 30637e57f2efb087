//! The keys a checkpoint may be signed by, across the signing key's hand-overs (ADR 0026).

use crate::log::{parse_public_key, Checkpoint, CheckpointError};
use ed25519_dalek::VerifyingKey;
use std::collections::HashMap;

/// How long after handing the log over a key's checkpoints are still taken (another node may
/// have signed one before it followed the rotation).
pub const HANDOVER_GRACE_MS: i64 = 10 * 60 * 1_000;

/// The keys checkpoints may be signed by: the trusted one (or the earliest checkpoint's) and
/// every key a verified hand-over links to it, forwards or back, each with when it handed the
/// log over (ADR 0026).
pub(super) struct KeyChain {
    keys: HashMap<[u8; 32], Option<i64>>,
}

impl KeyChain {
    pub(super) fn of(checkpoints: &[&Checkpoint], trusted: Option<&VerifyingKey>) -> Self {
        let earliest = checkpoints.iter().min_by_key(|c| (c.size, c.signed_at));
        let anchor = trusted.copied().or_else(|| {
            earliest.and_then(|c| c.previous().or_else(|| parse_public_key(&c.public_key)))
        });
        // Verified hand-overs: (from, to, when).
        let edges: Vec<([u8; 32], [u8; 32], i64)> = checkpoints
            .iter()
            .filter(|c| c.is_handover() && c.verify(None).is_ok())
            .filter_map(|c| {
                let to = parse_public_key(&c.public_key)?;
                Some((c.previous()?.to_bytes(), to.to_bytes(), c.signed_at))
            })
            .collect();
        let mut keys: HashMap<[u8; 32], Option<i64>> = HashMap::new();
        if let Some(anchor) = anchor {
            keys.insert(anchor.to_bytes(), None);
        }
        loop {
            let mut grew = false;
            for (from, to, at) in &edges {
                if keys.contains_key(from) || keys.contains_key(to) {
                    let retired = keys.entry(*from).or_insert(None);
                    if retired.is_none_or(|r| *at < r) {
                        *retired = Some(*at);
                        grew = true;
                    }
                    if !keys.contains_key(to) {
                        keys.insert(*to, None);
                        grew = true;
                    }
                }
            }
            if !grew {
                return Self { keys };
            }
        }
    }

    /// Whether `c` verifies under a key of the chain, signed before its key handed over.
    pub(super) fn admits(&self, c: &Checkpoint) -> Result<(), CheckpointError> {
        c.verify(None)?;
        let key = parse_public_key(&c.public_key).ok_or(CheckpointError::Malformed("key"))?;
        match self.keys.get(key.as_bytes()) {
            None => Err(CheckpointError::UntrustedKey),
            Some(Some(handed)) if c.signed_at > handed + HANDOVER_GRACE_MS => {
                Err(CheckpointError::HandedOver)
            }
            Some(_) => Ok(()),
        }
    }
}
