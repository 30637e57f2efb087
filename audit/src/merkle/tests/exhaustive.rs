//! Every proof of every small tree verifies, and roots agree with the frontier, up to a
//! million leaves.

use super::*;

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
