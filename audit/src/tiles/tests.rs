use super::*;
use crate::merkle::{
    self, consistency_proof, consistency_ranges, inclusion_proof, inclusion_ranges, leaf_hash, root,
};
use proptest::prelude::*;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

/// `MTH` of each range straight from the leaves, through the pieces and the fold.
fn by_pieces(all: &[Hash], ranges: &[(u64, u64)]) -> Vec<Hash> {
    ranges
        .iter()
        .map(|&(start, end)| {
            let roots: Vec<Hash> = pieces(start, end)
                .into_iter()
                .map(|p| {
                    let first = (p.index << p.level) as usize;
                    root(&all[first..first + (1 << p.level)])
                })
                .collect();
            merkle::join(&roots)
        })
        .collect()
}

#[test]
fn pieces_are_the_binary_split_of_a_range() {
    assert_eq!(
        pieces(0, 13),
        vec![
            Subtree { level: 3, index: 0 },
            Subtree { level: 2, index: 2 },
            Subtree {
                level: 0,
                index: 12
            }
        ]
    );
    assert_eq!(pieces(8, 16), vec![Subtree { level: 3, index: 1 }]);
    assert!(pieces(5, 5).is_empty());
}

#[test]
fn a_push_reports_exactly_the_stored_subtrees_it_completes() {
    let all = leaves(70_000);
    let mut frontier = Frontier::new();
    let mut nodes = Vec::new();
    for leaf in &all {
        push(&mut frontier, *leaf, &mut nodes);
    }
    // 273 of height 8 and 1 of height 16.
    assert_eq!(nodes.len(), 70_000 / 256 + 70_000 / 65_536);
    for n in &nodes {
        let first = (n.index << n.level) as usize;
        assert_eq!(n.hash, root(&all[first..first + (1 << n.level)]), "{n:?}");
        assert!(n.level == 8 || n.level == 16);
    }
    assert_eq!(frontier.root(), root(&all));
}

proptest! {
    #[test]
    fn inclusion_from_pieces_is_rfc_6962_path(size in 1u64..600, pick in any::<u64>()) {
        let all = leaves(size);
        let index = pick % size;
        let ranges = inclusion_ranges(index, size).expect("in the tree");
        prop_assert_eq!(by_pieces(&all, &ranges), inclusion_proof(&all, index).expect("proof"));
    }

    #[test]
    fn consistency_from_pieces_is_rfc_6962_proof(size in 0u64..600, pick in any::<u64>()) {
        let all = leaves(size);
        let old = pick % (size + 1);
        let ranges = consistency_ranges(old, size).expect("a prefix");
        prop_assert_eq!(by_pieces(&all, &ranges), consistency_proof(&all, old).expect("proof"));
    }

    #[test]
    fn a_frontier_from_its_pieces_grows_like_the_original(size in 0u64..600, more in 1u64..40) {
        let all = leaves(size + more);
        let peaks: Vec<Hash> = by_pieces(&all, &pieces(0, size).iter().map(|p| {
            let first = p.index << p.level;
            (first, first + (1 << p.level))
        }).collect::<Vec<_>>());
        let mut restored = Frontier::from_peaks(size, peaks);
        for leaf in &all[size as usize..] {
            restored.push(*leaf);
        }
        prop_assert_eq!(restored.root(), root(&all));
    }
}

#[test]
fn ranges_outside_the_tree_are_refused() {
    assert_eq!(inclusion_ranges(5, 5), None);
    assert_eq!(consistency_ranges(6, 5), None);
    assert_eq!(consistency_ranges(5, 5), Some(Vec::new()));
}
