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

/// The live nodes `sealpost nodes` lists.
pub fn live(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip_while(|l| !l.starts_with("nodes (live):"))
        .skip(1)
        .take_while(|l| l.starts_with("  ") && !l.contains("none"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Who holds lease `name`, by `sealpost nodes`.
pub fn holder(listing: &str, name: &str) -> Option<String> {
    let line = listing
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name}  ")))?;
    let (_, rest) = line.split_once("  held by ")?;
    rest.split(',').next().map(str::to_owned)
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
