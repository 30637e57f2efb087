//! What the verifiers must refuse (wrong sizes, roots, reshaped proofs, extreme inputs) and
//! the mutations of a proof that must each be caught.

use super::*;

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
