//! Several `sealpost serve` nodes over one Postgres (issue 13, ADR 0016), as an operator runs
//! them: the background work runs on one node at a time under leases (the pipeline's lanes
//! shared out among the nodes, ADR 0017), any node answers
//! requests, a token issued or revoked on one is honoured by the other, a node killed with
//! SIGKILL has its work taken over within twice the lease's time to live, and one stopped with
//! SIGTERM hands its work over at once. The embedded store refuses a second process on its data
//! directory. (Nodes sharing one transport: `tests/nodes_transport.rs`.)

mod common;

use base64::Engine as _;
use common::hook::Hook;
use common::nodes::{
    beside, holder, home_and_away, lanes_held, lanes_settled, live, nodes, serve, TTL,
};
use common::server::{eventually, Data, Serve};
use common::{text, CONSUMER};
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_the_work_and_a_killed_node_is_taken_over() {
    let Some(pg) = sealpost_testkit::postgres_test_db("nodes").await else {
        return;
    };
    let root_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let first = Data::fresh(Some(&pg));
    let url = first.database_url.clone().expect("url");
    let a = serve(&first, &root_key).start();
    let hook = Hook::default();
    a.subscribe(&hook.listen().await).await;
    let second_root = tempfile::tempdir().expect("temp dir");
    let b = serve(&beside(&a, second_root.path()), &root_key).start();

    // Both are live; the first holds the housekeeping, the first hands half the pipeline's
    // lanes on to the second, and no lease is held twice.
    let listing = lanes_settled(&url, 2).await;
    let members = live(&listing);
    assert_eq!(members.len(), 2, "{listing}");
    let node_a = holder(&listing, "housekeeping").expect("the housekeeping is held");
    assert!(a.log_text().contains("lease handed on"));
    let node_b = members
        .iter()
        .find(|m| **m != node_a)
        .expect("the other node")
        .clone();
    for probe in ["/healthz", "/readyz"] {
        for node in [&a, &b] {
            let resp = reqwest::get(node.url(probe)).await.expect("probe");
            assert_eq!(resp.status(), 200, "{probe}");
        }
    }

    // Any node answers: the consumer writes (through the simulated phone of the node holding
    // the business's lane: each node without a shared transport runs its own world), the
    // business answers through each node; both answers are delivered by the one lane and
    // displayed once, and the inbound message reaches the webhook once.
    let (home, away) = home_and_away(&listing, [&a, &b]);
    let (st, v) = home
        .converse("hello both", text(CONSUMER, "through the holder"))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = away.send(text(CONSUMER, "through the other")).await;
    assert_eq!(st, 200, "{v}");
    let shown = home.wait_inbox(CONSUMER, 2).await;
    let mut bodies: Vec<&str> = shown
        .iter()
        .filter_map(|m| m["content"]["text"]["body"].as_str())
        .collect();
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        vec!["through the holder", "through the other"],
        "each send displayed exactly once"
    );
    hook.wait_for(|vs| vs.iter().any(|v| v.to_string().contains("hello both")))
        .await;
    // Give a second worker, if there were one, the time to post the same notifications.
    tokio::time::sleep(2 * TTL).await;
    let mut posted: Vec<String> = hook
        .attempts()
        .into_iter()
        .filter(|a| a.answered == 200)
        .map(|a| a.notification_id)
        .collect();
    let all = posted.len();
    posted.sort();
    posted.dedup();
    assert!(
        all >= 3,
        "statuses and the inbound message were posted: {all}"
    );
    assert_eq!(posted.len(), all, "no notification posted by both nodes");

    // The business moves its callback through the second node: the first, which holds the
    // app's webhooks, posts to the new one from then on (it follows subscriptions made
    // elsewhere within a fraction of a second, so the consumer writes until one arrives).
    let moved = Hook::default();
    b.subscribe(&moved.listen().await).await;
    let write = |body: String| {
        let a = home;
        async move {
            let (st, v) = a
                .device_send(
                    CONSUMER,
                    serde_json::json!({"to": a.s("display_phone_number"), "type": "text", "text": {"body": body}}),
                )
                .await;
            assert_eq!(st, 200, "{v}");
        }
    };
    let got = |hook: &Hook, body: &str| hook.messages().iter().any(|(_, b)| b == body);
    let since = Instant::now();
    let mut written = 0;
    while !(1..=written).any(|k| got(&moved, &format!("after the move {k}"))) {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "the new callback gets nothing"
        );
        written += 1;
        write(format!("after the move {written}")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    write("last".to_owned()).await;
    moved.wait_for(|_| got(&moved, "last")).await;
    assert!(
        !got(&hook, "last"),
        "the old callback is not posted to after the move"
    );

    // A token issued through one node works on the other; revoked through the other, it stops
    // working on the first.
    let number = format!("/v21.0/{}", a.s("phone_number_id"));
    let (id, token) = a.issue_token().await;
    let issued_at = Instant::now();
    eventually(
        10,
        "the other node accepts a token issued on the first",
        || async { (b.get(&number, &token).await.0 == 200).then_some(()) },
    )
    .await;
    let seen = issued_at.elapsed();
    let (st, v) = b
        .delete(&format!("/sealpost/v1/tokens/{id}"), &b.s("access_token"))
        .await;
    assert_eq!(st, 200, "{v}");
    let revoked_at = Instant::now();
    assert_eq!(
        b.get(&number, &token).await.0,
        401,
        "at once where it was revoked"
    );
    eventually(
        10,
        "the first node refuses a token revoked on the other",
        || async { (a.get(&number, &token).await.0 == 401).then_some(()) },
    )
    .await;
    let refused = revoked_at.elapsed();
    eprintln!(
        "token issued on one node works on the other after {} ms; revoked, refused after {} ms",
        seen.as_millis(),
        refused.as_millis()
    );
    assert!(
        refused < Duration::from_secs(3),
        "revocation took {refused:?}"
    );

    // SIGKILL the first: the other takes its lanes and the housekeeping over within 2 × TTL.
    let killed = Instant::now();
    a.kill();
    let took = eventually(10, "the second node takes the work over", || async {
        let listing = nodes(&url);
        (lanes_held(&listing).get(&node_b) == Some(&usize::from(sealpost::pipeline::LANE_COUNT))
            && holder(&listing, "housekeeping").as_deref() == Some(node_b.as_str()))
        .then(|| killed.elapsed())
    })
    .await;
    eprintln!(
        "takeover after SIGKILL: {} ms (TTL {} ms)",
        took.as_millis(),
        TTL.as_millis()
    );
    assert!(
        took <= 2 * TTL + Duration::from_millis(1_500),
        "took {took:?}"
    );
    assert_eq!(live(&nodes(&url)), vec![node_b.clone()]);

    // SIGTERM: the leases are given up at once, not left to expire.
    let mut b = b;
    b.stop().expect("clean stop");
    let listing = nodes(&url);
    assert!(live(&listing).is_empty(), "{listing}");
    assert!(lanes_held(&listing).is_empty(), "{listing}");
    assert!(b.log_text().contains("lease released"));
    pg.drop_schema().await;
}

#[test]
fn the_embedded_store_refuses_a_second_process_on_its_data_directory() {
    let data = Data::fresh(None);
    let mut first = Serve::on(&data).start();
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data.dir)
        .env_remove("SEALPOST_DATABASE_URL")
        .output()
        .expect("second serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another sealpost serve is using"),
        "{stderr}"
    );
    first.stop().expect("the first still stops cleanly");
}

/// A business number's limit holds across nodes: two nodes over one store, the number at 10
/// messages/s, a burst of sends to 24 consumers (whose windows are open, each one message:
/// the pair limit stays out of it) spread over both nodes on a clock that does not move. The
/// nodes together accept the number's 10, not 10 each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_numbers_limit_holds_across_nodes() {
    let Some(pg) = sealpost_testkit::postgres_test_db("limits").await else {
        return;
    };
    let root_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let first = Data::fresh(Some(&pg));
    let url = first.database_url.clone().expect("url");
    let config = first.dir.with_file_name("sealpost.toml");
    std::fs::write(&config, "throughput_per_second = 10\n").expect("config");
    let with_limit = |data: &Data| serve(data, &root_key).args(["--config"]).args([&config]);
    let a = with_limit(&first).start();
    let hook = Hook::default();
    a.subscribe(&hook.listen().await).await;
    let second_root = tempfile::tempdir().expect("temp dir");
    let b = with_limit(&beside(&a, second_root.path())).start();
    // The consumers write in the world of the node that holds the business's lane.
    let (home, _) = home_and_away(&lanes_settled(&url, 2).await, [&a, &b]);
    let consumers: Vec<String> = (0..24).map(|k| format!("4915199000{k:03}")).collect();
    let open = serde_json::json!({"to": a.s("display_phone_number"), "type": "text", "text": {"body": "open"}});
    // The holder attaches the number to its world once its lane's worker has the grant.
    eventually(
        10,
        "the business number is on the holder's network",
        || async { (home.device_send(&consumers[0], open.clone()).await.0 == 200).then_some(()) },
    )
    .await;
    for c in &consumers[1..] {
        let (st, v) = home.device_send(c, open.clone()).await;
        assert_eq!(st, 200, "{v}");
    }
    hook.wait_for(|_| hook.messages().len() >= consumers.len())
        .await;
    // Both nodes count each other before the burst.
    eventually(10, "both nodes are live", || async {
        (live(&nodes(&url)).len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(2 * TTL).await;

    let mut accepted = 0;
    for (i, c) in consumers.iter().enumerate() {
        let node = [&a, &b][i % 2];
        let (st, v) = node.send(text(c, "within the limit?")).await;
        match st {
            200 => accepted += 1,
            429 => assert_eq!(v["error"]["code"], 130_429, "{v}"),
            _ => panic!("{st}: {v}"),
        }
    }
    assert!(
        (9..=11).contains(&accepted),
        "the nodes together accepted {accepted} of the number's 10"
    );
    let (mut a, mut b) = (a, b);
    a.stop().expect("clean stop");
    b.stop().expect("clean stop");
    pg.drop_schema().await;
}

/// The lanes are shared out by the lease table alone (ADR 0017): a node alone takes all 8; a
/// second gets none while they are held, the first hands its highest 4 on (its workers told at
/// one round, the leases released at the next) and the second takes them; a node that stops
/// renewing has its lanes taken by the other once they expire, and a third node makes 3 + 3 + 2.
#[tokio::test]
async fn nodes_share_the_lanes_out_through_the_lease_table() {
    use sealpost::nodes::{Claim, LeaseTiming, Node};
    use sealpost::pipeline::{Lane, LANE_COUNT};
    let env = common::sqlite_env().await;
    let leases = env.app.stores().leases.clone();
    let timing = LeaseTiming::new(Duration::from_secs(3), Duration::from_secs(1)).expect("timing");
    let node = || {
        let node = Node::new(leases.clone(), timing);
        let claims = node.want_share(Lane::all().map(Lane::lease));
        (node, claims)
    };
    let held = |claims: &[Claim]| {
        claims
            .iter()
            .enumerate()
            .filter(|(_, c)| c.grant().is_some())
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    };
    let all: Vec<usize> = (0..usize::from(LANE_COUNT)).collect();

    let (a, a_lanes) = node();
    a.round().await;
    assert_eq!(held(&a_lanes), all, "alone, a node holds every lane");
    let (b, b_lanes) = node();
    b.round().await;
    assert_eq!(
        held(&b_lanes),
        Vec::<usize>::new(),
        "held lanes are not taken"
    );
    a.round().await;
    assert_eq!(held(&a_lanes), [0, 1, 2, 3], "the highest are handed on");
    b.round().await;
    assert!(held(&b_lanes).is_empty(), "not before they are released");
    a.round().await;
    b.round().await;
    assert_eq!(held(&b_lanes), [4, 5, 6, 7]);
    a.round().await;
    assert_eq!(
        held(&a_lanes),
        [0, 1, 2, 3],
        "settled: the first keeps its share"
    );

    // The second stops renewing (it died): once its leases expire, the first takes them.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    a.round().await;
    assert_eq!(held(&a_lanes), all);

    // Two more nodes: three live, the lanes end up 3 + 3 + 2.
    let (c, c_lanes) = node();
    let (d, d_lanes) = node();
    for _ in 0..4 {
        for n in [&a, &c, &d] {
            n.round().await;
        }
    }
    let counts = |lanes: [&[Claim]; 3]| lanes.map(|l| held(l).len());
    assert_eq!(counts([&a_lanes, &c_lanes, &d_lanes]), [3, 3, 2]);
    // The second comes back from its pause: it learns its lanes are lost (they were taken at
    // newer epochs), and four live nodes end up with 2 each.
    for _ in 0..4 {
        for n in [&a, &b, &c, &d] {
            n.round().await;
        }
    }
    assert_eq!(counts([&a_lanes, &c_lanes, &d_lanes]), [2, 2, 2]);
    assert_eq!(held(&b_lanes).len(), 2, "four live nodes: 2 each");
    env.finish().await;
}
