//! Several `sealpost serve` nodes over one Postgres, for `tests/nodes.rs` and
//! `tests/nodes_transport.rs`: lease timing, `sealpost nodes` read as a test reads it, and a
//! second node's data directory beside the first's.

use super::server::{sealpost, Data, Node, Serve};
use std::path::Path;
use std::time::Duration;

/// Lease timing of these nodes: a 2 s lease renewed every second.
pub const LEASE_ARGS: [&str; 4] = ["--lease-ttl", "2", "--lease-renew", "1"];
pub const TTL: Duration = Duration::from_secs(2);

/// `sealpost nodes` on the database at `url`.
pub fn nodes(url: &str) -> String {
    sealpost(["nodes", "--database-url", url])
}

/// The live nodes `sealpost nodes` lists (the first column of its first table).
pub fn live(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip_while(|l| !l.starts_with("nodes (live):"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && l.trim() != "none")
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|first| first != "NODE")
        .collect()
}

/// The columns of lease `name`'s row in `sealpost nodes`: name, epoch, state, holder, expiry.
fn lease_row<'a>(listing: &'a str, name: &str) -> Option<Vec<&'a str>> {
    listing
        .lines()
        .skip_while(|l| !l.starts_with("leases:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&name))
}

/// Who holds lease `name`, by `sealpost nodes`.
pub fn holder(listing: &str, name: &str) -> Option<String> {
    match lease_row(listing, name)?.as_slice() {
        [_, _, "held", owner, ..] => Some((*owner).to_owned()),
        _ => None,
    }
}

/// The id a node runs under now (the last start in its log).
pub fn node_id(node: &Node) -> String {
    let log = node.log_text();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("node started"))
        .expect("the node logged its id");
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    v["fields"]["node"].as_str().expect("node id").to_owned()
}

/// Of `nodes` (each with its own simulated world), the one holding the lane of the business
/// in `listing` and the other: the consumers' phones that the business's pipeline reaches are
/// in the holder's world.
pub fn home_and_away<'a>(listing: &str, nodes: [&'a Node; 2]) -> (&'a Node, &'a Node) {
    let home = holder(listing, &lane_of(nodes[0])).expect("the business's lane is held");
    if node_id(nodes[0]) == home {
        (nodes[0], nodes[1])
    } else {
        (nodes[1], nodes[0])
    }
}

/// The epoch of lease `name`, by `sealpost nodes`.
pub fn epoch(listing: &str, name: &str) -> Option<u64> {
    lease_row(listing, name)?.get(1)?.parse().ok()
}

/// The lease of the pipeline lane that delivers for the node's (bootstrapped) business.
pub fn lane_of(node: &Node) -> String {
    sealpost::pipeline::Lane::of(&node.s("business_id")).lease()
}

/// How many of the pipeline's lanes each node holds, by `sealpost nodes`.
pub fn lanes_held(listing: &str) -> std::collections::BTreeMap<String, usize> {
    let mut held = std::collections::BTreeMap::new();
    for lane in sealpost::pipeline::Lane::all() {
        if let Some(owner) = holder(listing, &lane.lease()) {
            *held.entry(owner).or_default() += 1;
        }
    }
    held
}

/// Waits until `count` nodes hold the lanes between them, as evenly as they can (a node joined
/// and the others handed some on); the listing then.
pub async fn lanes_settled(url: &str, count: usize) -> String {
    let lanes = usize::from(sealpost::pipeline::LANE_COUNT);
    super::server::eventually(20, "the nodes share the lanes", || async {
        let listing = nodes(url);
        let held = lanes_held(&listing);
        (held.len() == count
            && held.values().sum::<usize>() == lanes
            && held.values().all(|&n| n <= lanes.div_ceil(count)))
        .then_some(listing)
    })
    .await
}

/// A node on `data` (a data directory of its own, the shared database) with the test's lease
/// timing and root key.
pub fn serve(data: &Data, root_key: &str) -> Serve {
    Serve::on(data)
        .args(LEASE_ARGS)
        .env("SEALPOST_ROOT_KEY_EU", root_key)
}

/// A second data directory on the same database, with the first's bootstrap file (the store
/// is bootstrapped once, by the first node).
pub fn beside(first: &Node, root: &Path) -> Data {
    let data = Data::new(root, None).with_database_url(
        first
            .data
            .database_url
            .clone()
            .expect("the nodes share Postgres"),
    );
    std::fs::create_dir_all(&data.dir).expect("data dir");
    std::fs::copy(
        first.data.dir.join("bootstrap.json"),
        data.dir.join("bootstrap.json"),
    )
    .expect("bootstrap file");
    data
}
