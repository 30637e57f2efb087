//! Tests of the Merkle tree: the RFC 6962 known-answer vectors of transparency-dev/merkle,
//! every proof of every small tree, rejected mutations, extreme inputs and random trees.

use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ---- Reference data -----------------------------------------------------------------
//
// The RFC 6962 test tree from Certificate Transparency, as published by
// transparency-dev/merkle (the successor of Trillian's merkle package):
// testonly/constants.go (leaf inputs, node hashes, roots, compact ranges),
// testonly/reference_test.go (TestRefInclusionProof, TestRefConsistencyProof) and
// proof/verify_test.go (inclusionProofs, consistencyProofs).

/// The eight leaf inputs, hex.
const REF_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// The root of the tree of the first `n` leaves, for `n` in 0..=8.
const REF_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// The leaf hashes of the eight leaves (level 0 of `NodeHashes()`).
const REF_LEAF_HASHES: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
];

/// Interior node hashes of the 8-leaf tree (levels 1 and 2 of `NodeHashes()`).
const N1_0: &str = "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125";
const N1_1: &str = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e";
const N1_2: &str = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a";
const N1_3: &str = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0";
const N2_0: &str = "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7";
const N2_1: &str = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4";

/// Reference inclusion proofs: (leaf index, tree size, proof).
const REF_INCLUSION: [(u64, u64, &[&str]); 7] = [
    (0, 1, &[]),
    (0, 2, &[REF_LEAF_HASHES[1]]),
    (1, 2, &[REF_LEAF_HASHES[0]]),
    (2, 3, &[N1_0]),
    (1, 5, &[REF_LEAF_HASHES[0], N1_1, REF_LEAF_HASHES[4]]),
    (0, 8, &[REF_LEAF_HASHES[1], N1_1, N2_1]),
    (5, 8, &[REF_LEAF_HASHES[4], N1_3, N2_0]),
];

/// Reference consistency proofs: (old size, new size, proof).
const REF_CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (1, 8, &[REF_LEAF_HASHES[1], N1_1, N2_1]),
    (2, 5, &[N1_1, REF_LEAF_HASHES[4]]),
    (6, 8, &[N1_2, N1_3, N2_0]),
    (6, 7, &[N1_2, REF_LEAF_HASHES[6], N2_0]),
];

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd-length hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| {
            let pair = s.get(i..i + 2).expect("hex pair in range");
            u8::from_str_radix(pair, 16).expect("valid hex digit pair")
        })
        .collect()
}

fn h(s: &str) -> Hash {
    unhex(s).try_into().expect("a 32-byte hash")
}

fn ref_leaves() -> Vec<Hash> {
    REF_LEAVES.iter().map(|s| leaf_hash(&unhex(s))).collect()
}

/// Distinct synthetic leaf hashes, standing in for hashes of sealed rows.
fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("sealed-row-{i}").as_bytes()))
        .collect()
}

/// `root` of every prefix of `leaves`, by a frontier: `prefix_roots(l)[m] == root(&l[..m])`.
fn prefix_roots(leaves: &[Hash]) -> Vec<Hash> {
    let mut frontier = Frontier::new();
    let mut roots = vec![frontier.root()];
    for leaf in leaves {
        frontier.push(*leaf);
        roots.push(frontier.root());
    }
    roots
}

fn at(roots: &[Hash], size: u64) -> Hash {
    let i = usize::try_from(size).expect("size fits usize");
    *roots.get(i).expect("size within the tree")
}

// ---- RFC 6962 as written: naive recursive definitions, to cross-check the unrolled ones.

fn ref_path(leaves: &[Hash], m: usize) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split_point(n);
    let (left, right) = leaves.split_at(k);
    let mut path;
    if m < k {
        path = ref_path(left, m);
        path.push(root(right));
    } else {
        path = ref_path(right, m - k);
        path.push(root(left));
    }
    path
}

fn ref_subproof(leaves: &[Hash], m: usize, complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete {
            Vec::new()
        } else {
            vec![root(leaves)]
        };
    }
    let k = split_point(n);
    let (left, right) = leaves.split_at(k);
    let mut proof;
    if m <= k {
        proof = ref_subproof(left, m, complete);
        proof.push(root(right));
    } else {
        proof = ref_subproof(right, m - k, false);
        proof.push(root(left));
    }
    proof
}

/// The length of `PATH(m, D[n])`, without hashing.
fn path_len(m: u64, n: u64) -> usize {
    if n <= 1 {
        return 0;
    }
    let k = 1u64 << (63 - (n - 1).leading_zeros());
    1 + if m < k {
        path_len(m, k)
    } else {
        path_len(m - k, n - k)
    }
}

/// The length of `PROOF(m, D[n])` for `0 < m < n`, without hashing.
fn proof_len(m: u64, n: u64, complete: bool) -> usize {
    if m == n {
        return usize::from(!complete);
    }
    let k = 1u64 << (63 - (n - 1).leading_zeros());
    1 + if m <= k {
        proof_len(m, k, complete)
    } else {
        proof_len(m - k, n - k, false)
    }
}

// ---- 1. Known answers -------------------------------------------------------------------

#[test]
fn empty_root_is_sha256_of_the_empty_string() {
    let digest: Hash = Sha256::digest(b"").into();
    assert_eq!(EMPTY_ROOT, digest);
    assert_eq!(EMPTY_ROOT, h(REF_ROOTS[0]));
    assert_eq!(root(&[]), EMPTY_ROOT);
}

#[test]
fn known_answer_leaf_and_node_hashes() {
    for (input, want) in REF_LEAVES.iter().zip(REF_LEAF_HASHES) {
        assert_eq!(leaf_hash(&unhex(input)), h(want), "leaf {input:?}");
    }
    let l = ref_leaves();
    let n1: Vec<Hash> = l.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    assert_eq!(n1, [N1_0, N1_1, N1_2, N1_3].map(h));
    assert_eq!(node_hash(&n1[0], &n1[1]), h(N2_0));
    assert_eq!(node_hash(&n1[2], &n1[3]), h(N2_1));
}

#[test]
fn known_answer_roots_for_sizes_0_to_8() {
    let l = ref_leaves();
    for (n, want) in REF_ROOTS.iter().enumerate() {
        assert_eq!(root(&l[..n]), h(want), "tree size {n}");
    }
}

#[test]
fn known_answer_frontier_peaks() {
    // CompactTrees() in testonly/constants.go.
    let nh0 = REF_LEAF_HASHES.map(h);
    let want: [Vec<Hash>; 9] = [
        vec![],
        vec![nh0[0]],
        vec![h(N1_0)],
        vec![h(N1_0), nh0[2]],
        vec![h(N2_0)],
        vec![h(N2_0), nh0[4]],
        vec![h(N2_0), h(N1_2)],
        vec![h(N2_0), h(N1_2), nh0[6]],
        vec![h(REF_ROOTS[8])],
    ];
    let mut frontier = Frontier::new();
    for (n, peaks) in want.iter().enumerate() {
        if let Some(leaf) = n.checked_sub(1).map(|i| nh0[i]) {
            frontier.push(leaf);
        }
        assert_eq!(&frontier.peaks, peaks, "tree size {n}");
        assert_eq!(frontier.root(), h(REF_ROOTS[n]), "tree size {n}");
    }
}

#[test]
fn known_answer_inclusion_proofs() {
    let l = ref_leaves();
    for (index, size, want) in REF_INCLUSION {
        let n = usize::try_from(size).expect("small");
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        let got = inclusion_proof(&l[..n], index).expect("index is in the tree");
        assert_eq!(got, want, "PATH({index}, D[{size}])");
        let leaf = l[usize::try_from(index).expect("small")];
        let tree_root = h(REF_ROOTS[n]);
        assert!(verify_inclusion(&leaf, index, size, &want, &tree_root));
        // The reference suite's corruptions (proof/verify_test.go, corruptInclusionProof).
        let wrong = |i: u64, s: u64| verify_inclusion(&leaf, i, s, &want, &tree_root);
        assert!(!wrong(index.wrapping_sub(1), size), "index - 1");
        assert!(!wrong(index + 1, size), "index + 1");
        assert!(!wrong(index ^ 2, size), "index ^ 2");
        assert!(!wrong(index, size * 2), "size * 2");
        assert!(!wrong(index, size / 2), "size / 2");
        assert!(!verify_inclusion(
            &leaf_hash(b"WrongLeaf"),
            index,
            size,
            &want,
            &tree_root
        ));
        assert!(!verify_inclusion(&leaf, index, size, &want, &EMPTY_ROOT));
    }
}

#[test]
fn known_answer_consistency_proofs() {
    let l = ref_leaves();
    for (old, new, want) in REF_CONSISTENCY {
        let n = usize::try_from(new).expect("small");
        let m = usize::try_from(old).expect("small");
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        let got = consistency_proof(&l[..n], old).expect("old size within the tree");
        assert_eq!(got, want, "PROOF({old}, D[{new}])");
        let (r1, r2) = (h(REF_ROOTS[m]), h(REF_ROOTS[n]));
        assert!(verify_consistency(old, new, &r1, &r2, &want));
        if want.is_empty() {
            continue;
        }
        // The reference suite's corruptions (proof/verify_test.go, corruptConsistencyProof).
        let wrong = |o: u64, s: u64| verify_consistency(o, s, &r1, &r2, &want);
        assert!(!wrong(old - 1, new), "old - 1");
        assert!(!wrong(old + 1, new), "old + 1");
        assert!(!wrong(old ^ 2, new), "old ^ 2");
        assert!(!wrong(old, new * 2), "new * 2");
        assert!(!wrong(old, new / 2), "new / 2");
        assert!(!verify_consistency(old, new, &r2, &r1, &want), "swapped");
        assert!(!verify_consistency(old, new, &r1, &r2, &[]), "empty proof");
    }
}

// ---- 2. Exhaustive ----------------------------------------------------------------------

#[test]
fn inclusion_proofs_verify_for_every_leaf_of_every_size_to_64() {
    let all = leaves(64);
    for n in 1..=64usize {
        let tree = &all[..n];
        let tree_root = root(tree);
        let size = n as u64;
        for (i, leaf) in tree.iter().enumerate() {
            let index = i as u64;
            let proof = inclusion_proof(tree, index).expect("index is in the tree");
            assert_eq!(proof, ref_path(tree, i), "PATH({i}, D[{n}])");
            assert_eq!(proof.len(), path_len(index, size));
            assert!(
                verify_inclusion(leaf, index, size, &proof, &tree_root),
                "{i}/{n}"
            );
        }
        assert_eq!(inclusion_proof(tree, size), None);
        assert_eq!(inclusion_proof(tree, u64::MAX), None);
    }
    assert_eq!(inclusion_proof(&[], 0), None);
}

#[test]
fn consistency_proofs_verify_for_every_pair_of_sizes_to_64() {
    let all = leaves(64);
    let roots = prefix_roots(&all);
    for n in 0..=64usize {
        let tree = &all[..n];
        for m in 0..=n {
            let (old, new) = (m as u64, n as u64);
            let proof = consistency_proof(tree, old).expect("old size within the tree");
            if m == 0 || m == n {
                assert!(proof.is_empty(), "PROOF({m}, D[{n}])");
            } else {
                assert_eq!(proof, ref_subproof(tree, m, true), "PROOF({m}, D[{n}])");
                assert_eq!(proof.len(), proof_len(old, new, true));
            }
            assert!(
                verify_consistency(old, new, &roots[m], &roots[n], &proof),
                "{m} -> {n}"
            );
        }
        assert_eq!(consistency_proof(tree, n as u64 + 1), None);
        assert_eq!(consistency_proof(tree, u64::MAX), None);
    }
}

#[test]
fn frontier_root_equals_root_at_every_size_to_300() {
    let all = leaves(300);
    let mut frontier = Frontier::new();
    assert_eq!(frontier.size(), 0);
    assert_eq!(frontier.root(), root(&[]));
    for (i, leaf) in all.iter().enumerate() {
        frontier.push(*leaf);
        let n = i + 1;
        assert_eq!(frontier.size(), n as u64);
        assert_eq!(frontier.root(), root(&all[..n]), "size {n}");
        assert_eq!(frontier.peaks.len(), frontier.size().count_ones() as usize);
    }
    let copy = frontier.clone();
    frontier.push(leaf_hash(b"one more"));
    assert_eq!(copy.size(), 300);
    assert_ne!(copy.root(), frontier.root());
}

#[test]
fn a_million_leaves() {
    // Synthetic distinct leaf hashes: this is about the tree's cost and depth, and hashing a
    // million leaves first would only double the (unoptimised) test's time.
    let n = 1_000_000usize;
    let size = n as u64;
    let all: Vec<Hash> = (0..size)
        .map(|i| {
            let mut leaf = [0x5a; 32];
            leaf[..8].copy_from_slice(&i.to_be_bytes());
            leaf
        })
        .collect();
    let old = 999_999u64;
    let mut frontier = Frontier::new();
    let mut old_root = EMPTY_ROOT;
    for leaf in &all {
        frontier.push(*leaf);
        if frontier.size() == old {
            old_root = frontier.root();
        }
    }
    let tree_root = root(&all);
    assert_eq!(frontier.root(), tree_root);
    let index = 765_432u64;
    let proof = inclusion_proof(&all, index).expect("index is in the tree");
    assert_eq!(proof.len(), path_len(index, size));
    let leaf = all[usize::try_from(index).expect("fits")];
    assert!(verify_inclusion(&leaf, index, size, &proof, &tree_root));
    let proof = consistency_proof(&all, old).expect("old size within the tree");
    assert_eq!(proof.len(), proof_len(old, size, true));
    assert!(verify_consistency(old, size, &old_root, &tree_root, &proof));
}

// ---- 3. Rejection -----------------------------------------------------------------------

#[test]
fn inclusion_rejects_wrong_index_size_leaf_root_and_reshaped_proofs() {
    let all = leaves(65);
    let stranger = leaf_hash(b"not in the tree");
    for n in 1..=64usize {
        let tree = &all[..n];
        let tree_root = root(tree);
        let size = n as u64;
        for (i, leaf) in tree.iter().enumerate() {
            let index = i as u64;
            let proof = inclusion_proof(tree, index).expect("index is in the tree");
            let ok =
                |l: &Hash, i: u64, s: u64, p: &[Hash], r: &Hash| verify_inclusion(l, i, s, p, r);
            // Every other index in the tree, and indices outside it.
            for other in (0..size + 2).filter(|&o| o != index) {
                assert!(
                    !ok(leaf, other, size, &proof, &tree_root),
                    "{i}->{other}/{n}"
                );
            }
            assert!(!ok(leaf, u64::MAX, size, &proof, &tree_root));
            // Every other size whose path for this index has a different length. (Sizes
            // with the same path shape are indistinguishable: RFC 9162 does not hash the
            // size into the root, the signed tree head binds them.)
            for other in (index + 1..=130).filter(|&s| s != size) {
                if path_len(index, other) != proof.len() {
                    assert!(
                        !ok(leaf, index, other, &proof, &tree_root),
                        "{i}/{n}->{other}"
                    );
                }
            }
            assert!(!ok(leaf, index, 0, &proof, &tree_root));
            assert!(!ok(leaf, index, u64::MAX, &proof, &tree_root));
            // Wrong leaf, wrong root.
            assert!(!ok(&stranger, index, size, &proof, &tree_root));
            for (j, other) in tree.iter().enumerate().filter(|&(j, _)| j != i) {
                assert!(
                    !ok(other, index, size, &proof, &tree_root),
                    "leaf {j} as {i}"
                );
            }
            assert!(!ok(leaf, index, size, &proof, &EMPTY_ROOT));
            assert!(!ok(leaf, index, size, &proof, &root(&all[..n + 1])));
            // Truncated, extended, prepended, with an element inserted.
            if let Some((_, short)) = proof.split_last() {
                assert!(!ok(leaf, index, size, short, &tree_root), "truncated");
            }
            if let Some((_, tail)) = proof.split_first() {
                assert!(!ok(leaf, index, size, tail, &tree_root), "front dropped");
            }
            for extra in [tree_root, stranger, EMPTY_ROOT] {
                let mut longer = proof.clone();
                longer.push(extra);
                assert!(!ok(leaf, index, size, &longer, &tree_root), "extended");
                let mut longer = vec![extra];
                longer.extend_from_slice(&proof);
                assert!(!ok(leaf, index, size, &longer, &tree_root), "prepended");
            }
            if proof.len() > 1 {
                let mut inserted = proof.clone();
                inserted.insert(1, stranger);
                assert!(!ok(leaf, index, size, &inserted, &tree_root), "inserted");
            }
        }
    }
}

#[test]
fn consistency_rejects_wrong_sizes_roots_and_reshaped_proofs() {
    let all = leaves(65);
    let roots = prefix_roots(&all);
    let stranger = leaf_hash(b"not in the tree");
    for n in 2..=64usize {
        let tree = &all[..n];
        let new = n as u64;
        for m in 1..n {
            let old = m as u64;
            let proof = consistency_proof(tree, old).expect("old size within the tree");
            let (r1, r2) = (roots[m], roots[n]);
            let ok =
                |o: u64, s: u64, a: &Hash, b: &Hash, p: &[Hash]| verify_consistency(o, s, a, b, p);
            // Other sizes whose proof has a different length.
            for other_old in (1..new).filter(|&o| o != old) {
                if proof_len(other_old, new, true) != proof.len() {
                    assert!(
                        !ok(other_old, new, &r1, &r2, &proof),
                        "{m}->{other_old}/{n}"
                    );
                }
            }
            for other_new in (old + 1..=130).filter(|&s| s != new) {
                if proof_len(old, other_new, true) != proof.len() {
                    assert!(
                        !ok(old, other_new, &r1, &r2, &proof),
                        "{m}/{n}->{other_new}"
                    );
                }
            }
            assert!(!ok(old, old, &r1, &r2, &proof));
            assert!(!ok(new, old, &r1, &r2, &proof));
            assert!(!ok(old, u64::MAX, &r1, &r2, &proof));
            assert!(!ok(0, new, &r1, &r2, &proof));
            // Wrong roots: any other prefix's root, either side, or swapped.
            for (k, other) in roots.iter().enumerate() {
                if k != m {
                    assert!(
                        !ok(old, new, other, &r2, &proof),
                        "old root {k} for {m}/{n}"
                    );
                }
                if k != n {
                    assert!(
                        !ok(old, new, &r1, other, &proof),
                        "new root {k} for {m}/{n}"
                    );
                }
            }
            assert!(!ok(old, new, &r2, &r1, &proof), "swapped");
            assert!(!ok(old, new, &stranger, &r2, &proof));
            assert!(!ok(old, new, &r1, &stranger, &proof));
            // Empty, truncated, extended, prepended, with an element inserted.
            assert!(!ok(old, new, &r1, &r2, &[]), "empty");
            if let Some((_, short)) = proof.split_last() {
                assert!(!ok(old, new, &r1, &r2, short), "truncated");
            }
            if let Some((_, tail)) = proof.split_first() {
                assert!(!ok(old, new, &r1, &r2, tail), "front dropped");
            }
            for extra in [r1, r2, stranger] {
                let mut longer = proof.clone();
                longer.push(extra);
                assert!(!ok(old, new, &r1, &r2, &longer), "extended");
                let mut longer = vec![extra];
                longer.extend_from_slice(&proof);
                assert!(!ok(old, new, &r1, &r2, &longer), "prepended");
            }
            if proof.len() > 1 {
                let mut inserted = proof.clone();
                inserted.insert(1, stranger);
                assert!(!ok(old, new, &r1, &r2, &inserted), "inserted");
            }
        }
    }
}

#[test]
fn consistency_edge_cases() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    // The empty tree is a prefix of every tree, with an empty proof only.
    assert!(verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]));
    assert!(verify_consistency(0, 5, &EMPTY_ROOT, &a, &[]));
    assert!(!verify_consistency(0, 5, &EMPTY_ROOT, &a, &[b]));
    assert!(!verify_consistency(0, 0, &EMPTY_ROOT, &a, &[]));
    // Equal sizes: empty proof and equal roots.
    assert!(verify_consistency(7, 7, &a, &a, &[]));
    assert!(!verify_consistency(7, 7, &a, &b, &[]));
    assert!(!verify_consistency(7, 7, &a, &a, &[a]));
    // Shrinking is never consistent.
    assert!(!verify_consistency(8, 7, &a, &a, &[]));
    assert!(!verify_consistency(1, 0, &a, &EMPTY_ROOT, &[]));
    assert_eq!(consistency_proof(&[a, b], 3), None);
    assert_eq!(consistency_proof(&[a, b], 2), Some(Vec::new()));
    assert_eq!(consistency_proof(&[a, b], 0), Some(Vec::new()));
    assert_eq!(consistency_proof(&[], 0), Some(Vec::new()));
}

#[test]
fn verifiers_never_panic_on_extreme_inputs() {
    let junk: Vec<Hash> = (0..200u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let x = leaf_hash(b"x");
    let sizes = [
        0,
        1,
        2,
        3,
        63,
        64,
        65,
        u64::MAX / 2,
        u64::MAX / 2 + 1,
        u64::MAX - 1,
        u64::MAX,
    ];
    for len in [0, 1, 2, 31, 62, 63, 64, 65, 66, 200] {
        let proof = &junk[..len];
        for &a in &sizes {
            for &b in &sizes {
                assert!(
                    !verify_inclusion(&x, a, b, proof, &EMPTY_ROOT),
                    "{a} {b} {len}"
                );
                let trivially_true = len == 0 && a == 0 && b > 0;
                assert_eq!(
                    verify_consistency(a, b, &x, &EMPTY_ROOT, proof),
                    trivially_true,
                    "{a} {b} {len}"
                );
            }
        }
    }
    // The largest tree: the last leaf of 2^64 - 1, with a proof of plausible length.
    assert!(!verify_inclusion(
        &x,
        u64::MAX - 1,
        u64::MAX,
        &junk[..64],
        &x
    ));
    assert!(!verify_consistency(
        u64::MAX - 1,
        u64::MAX,
        &x,
        &x,
        &junk[..64]
    ));
}

// ---- 4. Mutation ------------------------------------------------------------------------

#[test]
fn a_thousand_random_single_bit_proof_mutations_are_all_rejected() {
    let mut rng = StdRng::seed_from_u64(0x5ea1_9057_6962);
    let n = rng.random_range(2..=2000usize);
    let all = leaves(n);
    let roots = prefix_roots(&all);
    let size = n as u64;
    let tree_root = at(&roots, size);
    /// What a proof in one trial claims.
    enum Claim {
        Inclusion { leaf: Hash, index: u64 },
        Consistency { old: u64, old_root: Hash },
    }
    let check = |claim: &Claim, proof: &[Hash]| match *claim {
        Claim::Inclusion { leaf, index } => verify_inclusion(&leaf, index, size, proof, &tree_root),
        Claim::Consistency { old, old_root } => {
            verify_consistency(old, size, &old_root, &tree_root, proof)
        }
    };
    let (mut trials, mut rejected, mut inclusions) = (0u32, 0u32, 0u32);
    while trials < 1000 {
        trials += 1;
        let (claim, mut proof) = if rng.random_bool(0.5) {
            inclusions += 1;
            let index = rng.random_range(0..size);
            let leaf = all[usize::try_from(index).expect("fits")];
            let proof = inclusion_proof(&all, index).expect("index is in the tree");
            (Claim::Inclusion { leaf, index }, proof)
        } else {
            let old = rng.random_range(1..size);
            let old_root = at(&roots, old);
            let proof = consistency_proof(&all, old).expect("old size within the tree");
            (Claim::Consistency { old, old_root }, proof)
        };
        assert!(
            !proof.is_empty(),
            "a tree of {n} leaves has non-empty proofs"
        );
        assert!(check(&claim, &proof), "the unmutated proof verifies");
        let element = rng.random_range(0..proof.len());
        let byte = rng.random_range(0..32usize);
        let bit = rng.random_range(0..8u32);
        proof[element][byte] ^= 1 << bit;
        if !check(&claim, &proof) {
            rejected += 1;
        }
    }
    assert_eq!(trials, 1000);
    assert_eq!(rejected, 1000, "every mutated proof must be rejected");
    // Both kinds were exercised.
    assert!(
        inclusions > 100 && inclusions < 900,
        "{inclusions} inclusion trials"
    );
}

// ---- 5. Property ------------------------------------------------------------------------

proptest! {
    #[test]
    fn proofs_verify_for_random_trees(
        (n, index, old) in (1usize..500).prop_flat_map(|n| (Just(n), 0..n, 0..=n))
    ) {
        let all = leaves(n);
        let tree_root = root(&all);
        let size = n as u64;
        let proof = inclusion_proof(&all, index as u64).expect("index is in the tree");
        prop_assert!(verify_inclusion(&all[index], index as u64, size, &proof, &tree_root));
        let proof = consistency_proof(&all, old as u64).expect("old size within the tree");
        let old_root = root(&all[..old]);
        prop_assert!(verify_consistency(old as u64, size, &old_root, &tree_root, &proof));
        let mut frontier = Frontier::new();
        all.iter().for_each(|leaf| frontier.push(*leaf));
        prop_assert_eq!(frontier.root(), tree_root);
    }
}
