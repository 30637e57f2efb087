//! Tests of the Merkle tree: the RFC 6962 known-answer vectors of transparency-dev/merkle,
//! every proof of every small tree, rejected mutations, extreme inputs and random trees.

use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod exhaustive;
mod rejection;

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
    assert!(s.len().is_multiple_of(2), "odd-length hex {s:?}");
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
    let k = split_point(n as u64) as usize;
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
    let k = split_point(n as u64) as usize;
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
