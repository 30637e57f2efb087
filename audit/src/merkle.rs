//! RFC 6962 / RFC 9162 Merkle tree hashing for the append-only transparency log.
//!
//! # Hashing and domain separation
//!
//! The tree is the one Certificate Transparency uses (RFC 6962 §2.1, unchanged in RFC 9162
//! §2.1.1), with SHA-256:
//!
//! * the hash of an empty tree is `SHA-256("")` ([`EMPTY_ROOT`]);
//! * a leaf is hashed as `SHA-256(0x00 || data)` ([`leaf_hash`]);
//! * an interior node as `SHA-256(0x01 || left || right)` ([`node_hash`]);
//! * a tree of `n > 1` leaves splits at `k`, the largest power of two strictly less than `n`:
//!   `MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))`.
//!
//! The one-byte prefixes separate the two domains: no leaf hash can equal an interior node
//! hash (short of a SHA-256 collision), so nobody can present an interior node as a leaf, or a
//! pair of leaves as one, and get a second tree with the same root.
//!
//! # What the leaves are
//!
//! Every function here except [`leaf_hash`] takes *leaf hashes*, never row contents. The log's
//! leaves are the leaf hashes of *sealed* rows: the ciphertext as stored, not the plaintext.
//! Crypto-shredding a subject destroys the key that opens their rows, not the sealed bytes'
//! hashes the tree committed to, so every root, inclusion proof and consistency proof issued
//! before the shredding stays valid after it, and the tree itself never holds personal data.
//!
//! # Proofs
//!
//! * [`inclusion_proof`] computes `PATH(m, D[n])` (RFC 6962 §2.1.1, RFC 9162 §2.1.3.1);
//!   [`verify_inclusion`] follows RFC 9162 §2.1.3.2, "Verifying an Inclusion Proof".
//! * [`consistency_proof`] computes `PROOF(m, D[n])` (RFC 6962 §2.1.2, RFC 9162 §2.1.4.1);
//!   [`verify_consistency`] follows RFC 9162 §2.1.4.2, "Verifying Consistency between Two Tree
//!   Heads".
//!
//! Building a root or a proof over `n` leaves hashes each node at most once (`O(n)`), and the
//! recursion is no deeper than the tree (`O(log n)`). The verifiers never panic: sizes,
//! indices and proofs of any value or length give `true` or `false`. [`Frontier`] keeps only
//! the right edge of the tree, so the log's sequencer can append a leaf and read the new root
//! in `O(log n)` without the earlier leaves.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string (RFC 6962 §2.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The prefix of a hashed leaf (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// The prefix of a hashed interior node (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// The leaf hash of one entry: `SHA-256(0x00 || data)`.
///
/// For the audit log, `data` is a sealed row (ciphertext), never plaintext.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([LEAF_PREFIX])
        .chain_update(data)
        .finalize()
        .into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut input = [NODE_PREFIX; 65];
    input[1..33].copy_from_slice(left);
    input[33..].copy_from_slice(right);
    Sha256::digest(input).into()
}

/// The largest power of two strictly less than `n`: where RFC 6962 splits a tree of `n`
/// leaves. Only meaningful for `n >= 2`; gives 0 below that.
fn split_point(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The Merkle tree hash `MTH(D[n])` of a list of leaf hashes; [`EMPTY_ROOT`] for no leaves.
///
/// `leaves` are leaf hashes (see [`leaf_hash`]), used as the tree's level-0 nodes as they are.
/// Hashes `n - 1` interior nodes, recursing `ceil(log2 n)` deep.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => EMPTY_ROOT,
        [only] => *only,
        _ => {
            let (left, right) = leaves.split_at(split_point(leaves.len() as u64) as usize);
            node_hash(&root(left), &root(right))
        }
    }
}

/// The inclusion proof `PATH(index, D[n])` of leaf `index` in the tree of `leaves`, bottom
/// sibling first (RFC 6962 §2.1.1). `None` if `index` is not a leaf of the tree.
///
/// The subtrees whose roots form the path are disjoint, so this hashes at most `n` nodes.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Option<Vec<Hash>> {
    Some(roots_of(
        leaves,
        &inclusion_ranges(index, leaves.len() as u64)?,
    ))
}

/// The leaf ranges whose roots form `PATH(index, D[size])`, bottom first: what
/// [`inclusion_proof`] hashes, and what the stored tiles are read for (`crate::tiles`). `None`
/// if `index` is not a leaf of the tree.
pub fn inclusion_ranges(index: u64, size: u64) -> Option<Vec<(u64, u64)>> {
    if index >= size {
        return None;
    }
    // Walk from the root down to the leaf, recording each sibling subtree; the proof lists
    // them from the leaf up, so reverse at the end.
    let (mut lo, mut hi) = (0, size);
    let mut path = Vec::new();
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            path.push((lo + k, hi));
            hi = lo + k;
        } else {
            path.push((lo, lo + k));
            lo += k;
        }
    }
    path.reverse();
    Some(path)
}

/// The root of each range of `leaves`, in order.
fn roots_of(leaves: &[Hash], ranges: &[(u64, u64)]) -> Vec<Hash> {
    ranges
        .iter()
        .map(|&(start, end)| root(&leaves[start as usize..end as usize]))
        .collect()
}

/// Whether `proof` shows that `leaf` is leaf number `index` of the tree of `size` leaves whose
/// root is `root`, following RFC 9162 §2.1.3.2.
///
/// `false` (never a panic) for `index >= size`, a proof of the wrong length or any hash that
/// does not chain up to `root`. The size is not hashed into the root: take `size` and `root`
/// from the same signed tree head.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// The consistency proof `PROOF(old_size, D[n])` between the tree of the first `old_size`
/// leaves and the tree of all `leaves` (RFC 6962 §2.1.2).
///
/// `None` if `old_size` exceeds the number of leaves; an empty proof when `old_size` is 0 or
/// equals it (nothing to prove). The subtrees whose roots form the proof are disjoint, so this
/// hashes at most `n` nodes.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Option<Vec<Hash>> {
    Some(roots_of(
        leaves,
        &consistency_ranges(old_size, leaves.len() as u64)?,
    ))
}

/// The leaf ranges whose roots form `PROOF(old_size, D[size])`: what [`consistency_proof`]
/// hashes, and what the stored tiles are read for. `None` if `old_size` exceeds `size`, none
/// when there is nothing to prove.
pub fn consistency_ranges(old_size: u64, size: u64) -> Option<Vec<(u64, u64)>> {
    if old_size > size {
        return None;
    }
    if old_size == 0 || old_size == size {
        return Some(Vec::new());
    }
    // SUBPROOF(m, D[n], b), unrolled: walk down while the old tree is a strict prefix of the
    // current subtree (0 < m < hi - lo holds at the top of each turn), recording sibling
    // subtrees top-down, then reverse.
    let (mut m, mut lo, mut hi) = (old_size, 0, size);
    let mut proof = Vec::new();
    let mut old_root_is_a_node = true;
    while m != hi - lo {
        let k = split_point(hi - lo);
        if m <= k {
            proof.push((lo + k, hi));
            hi = lo + k;
        } else {
            proof.push((lo, lo + k));
            m -= k;
            lo += k;
            old_root_is_a_node = false;
        }
    }
    // The old tree's root is a node of the new tree only if the walk never went right; if it
    // did, the verifier needs the subtree it stopped at.
    if !old_root_is_a_node {
        proof.push((lo, hi));
    }
    proof.reverse();
    Some(proof)
}

/// Whether `proof` shows that the tree of `old_size` leaves with root `old_root` is a prefix
/// of the tree of `new_size` leaves with root `new_root`, following RFC 9162 §2.1.4.2.
///
/// Outside that algorithm's `0 < old_size < new_size`: an `old_size` above `new_size` is
/// `false`; equal sizes are consistent only with an empty proof and equal roots; the empty
/// tree (`old_size == 0`) is a prefix of every tree, with an empty proof. `false` (never a
/// panic) for anything else that does not check out, including proofs of the wrong length.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    // Now 0 < old_size < new_size. Step 1: an empty proof fails.
    let Some((first, rest)) = proof.split_first() else {
        return false;
    };
    // Step 2: if old_size is a power of two, its root is a node of the new tree and is not in
    // the proof: start from it and use every proof hash.
    let (seed, path) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (first, rest)
    };
    // Steps 3 and 4.
    let mut f_n = old_size - 1;
    let mut s_n = new_size - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5.
    let mut f_r = *seed;
    let mut s_r = *seed;
    // Step 6.
    for c in path {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 7.
    f_r == *old_root && s_r == *new_root && s_n == 0
}

/// The root over consecutive perfect subtrees, largest (leftmost) first, from their roots: the
/// right fold RFC 6962's split gives (`node(r0, node(r1, … r_last))`); [`EMPTY_ROOT`] for none.
/// A [`Frontier`]'s root, and the root of any range a proof names from its pieces.
pub fn join(roots: &[Hash]) -> Hash {
    let mut it = roots.iter().rev();
    match it.next() {
        None => EMPTY_ROOT,
        Some(last) => it.fold(*last, |right, left| node_hash(left, &right)),
    }
}

/// The right edge of a growing tree: the roots of the perfect subtrees the leaves so far
/// split into (a "compact range"), enough to append leaves and compute the root without the
/// earlier leaves.
///
/// A tree of `size` leaves has one perfect subtree per set bit of `size`, largest (leftmost)
/// first, so the frontier holds at most 64 hashes.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    /// Roots of the perfect subtrees, left to right, of sizes the set bits of `size`, descending.
    peaks: Vec<Hash>,
    /// How many leaves have been pushed.
    size: u64,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leaves have been pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash (see [`leaf_hash`]) to the tree.
    ///
    /// Merges the new leaf with every perfect subtree of its own size to its left, as binary
    /// addition carries: amortised one node hash per push, `O(log n)` at worst.
    pub fn push(&mut self, leaf: Hash) {
        self.push_merging(leaf);
    }

    /// [`Frontier::push`], returning the subtree roots the push completed, lowest first: entry
    /// `j` is the root of the perfect subtree of height `j + 1` that ends with this leaf.
    pub fn push_merging(&mut self, leaf: Hash) -> Vec<Hash> {
        let mut merged = Vec::new();
        let mut carry = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            // One peak per set bit of `size`, so there is always one to pop here.
            let Some(left) = self.peaks.pop() else {
                break;
            };
            carry = node_hash(&left, &carry);
            merged.push(carry);
            size >>= 1;
        }
        self.peaks.push(carry);
        self.size += 1;
        merged
    }

    /// The frontier of a tree of `size` leaves from the roots of the perfect subtrees it splits
    /// into, largest (leftmost) first, as [`crate::tiles::frontier`] reads them.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Self {
        debug_assert_eq!(peaks.len() as u32, size.count_ones());
        Self { peaks, size }
    }

    /// The root of the tree of every leaf pushed so far: equal to [`root`] over them, and
    /// [`EMPTY_ROOT`] before the first push. Hashes one node per peak after the first.
    pub fn root(&self) -> Hash {
        join(&self.peaks)
    }
}

#[cfg(test)]
mod tests;
