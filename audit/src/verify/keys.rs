//! The keys a checkpoint may be signed by, across the signing key's hand-overs (ADR 0026).
//!
//! A hand-over checkpoint names the key it hands over from and the key it hands over to in its
//! signed text, and is signed by both: neither can be swapped. From the trusted key (or the
//! earliest checkpoint's), every key a hand-over links to it, forwards or back, is taken. A key
//! that handed over is taken only for checkpoints of trees no larger than the one it handed
//! over at (sizes are what the rows prove; times are the signer's word). A key handed over to
//! two different keys is a fork: none of its hand-overs links anything.

use crate::log::{parse_public_key, Checkpoint, CheckpointError};
use ed25519_dalek::VerifyingKey;
use std::collections::{BTreeSet, HashMap, HashSet};

/// A verified hand-over: from, to, at which tree size.
type Edge = ([u8; 32], [u8; 32], u64);

/// The keys checkpoints may be signed by, each with the tree size it handed over at.
pub(super) struct KeyChain {
    keys: HashMap<[u8; 32], Option<u64>>,
    forked: HashSet<[u8; 32]>,
}

impl KeyChain {
    pub(super) fn of(checkpoints: &[&Checkpoint], trusted: Option<&VerifyingKey>) -> Self {
        let earliest = checkpoints
            .iter()
            .filter(|c| c.verify(None).is_ok())
            .min_by_key(|c| (c.size, c.signed_at));
        let anchor = trusted.copied().or_else(|| {
            earliest.and_then(|c| c.previous().or_else(|| parse_public_key(&c.public_key)))
        });
        let mut edges: Vec<Edge> = checkpoints
            .iter()
            .filter(|c| c.is_handover() && c.verify(None).is_ok())
            .filter_map(|c| {
                let to = parse_public_key(&c.public_key)?;
                Some((c.previous()?.to_bytes(), to.to_bytes(), c.size))
            })
            .collect();
        let mut successors: HashMap<[u8; 32], BTreeSet<[u8; 32]>> = HashMap::new();
        for (from, to, _) in &edges {
            successors.entry(*from).or_default().insert(*to);
        }
        let forked: HashSet<[u8; 32]> = successors
            .into_iter()
            .filter(|(_, to)| to.len() > 1)
            .map(|(from, _)| from)
            .collect();
        edges.retain(|(from, _, _)| !forked.contains(from));
        let mut keys: HashMap<[u8; 32], Option<u64>> = HashMap::new();
        if let Some(anchor) = anchor {
            keys.insert(anchor.to_bytes(), None);
        }
        loop {
            let mut grew = false;
            for (from, to, size) in &edges {
                if !keys.contains_key(from) && !keys.contains_key(to) {
                    continue;
                }
                let retired = keys.entry(*from).or_insert(None);
                if retired.is_none_or(|r| *size < r) {
                    *retired = Some(*size);
                    grew = true;
                }
                if !keys.contains_key(to) {
                    keys.insert(*to, None);
                    grew = true;
                }
            }
            if !grew {
                return Self { keys, forked };
            }
        }
    }

    /// Whether `c` verifies under a key of the chain, of a tree no larger than the one its key
    /// handed over at.
    pub(super) fn admits(&self, c: &Checkpoint) -> Result<(), CheckpointError> {
        c.verify(None)?;
        if c.previous()
            .is_some_and(|p| self.forked.contains(p.as_bytes()))
        {
            return Err(CheckpointError::Forked);
        }
        let key = parse_public_key(&c.public_key).ok_or(CheckpointError::Malformed("key"))?;
        match self.keys.get(key.as_bytes()) {
            None => Err(CheckpointError::UntrustedKey),
            Some(Some(handed)) if c.size > *handed => Err(CheckpointError::HandedOver),
            Some(_) => Ok(()),
        }
    }
}
