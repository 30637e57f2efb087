//! Several `sealpost serve` nodes over one Postgres (issue 13, ADR 0016), as an operator runs
//! them: the background work runs on one node at a time under leases, any node answers
//! requests, a token issued or revoked on one is honoured by the other, a node killed with
//! SIGKILL has its work taken over within twice the lease's time to live, and one stopped with
//! SIGTERM hands its work over at once. The embedded store refuses a second process on its data
//! directory. (Nodes sharing one transport: `tests/nodes_transport.rs`.)

mod common;

use base64::Engine as _;
use common::hook::Hook;
use common::nodes::{beside, holder, live, nodes, serve, TTL};
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

    // Both are live; the first holds the pipeline and the housekeeping, and neither twice.
    let listing = nodes(&url);
    let members = live(&listing);
    assert_eq!(members.len(), 2, "{listing}");
    let node_a = holder(&listing, "pipeline").expect("the pipeline is held");
    assert_eq!(
        holder(&listing, "housekeeping").as_deref(),
        Some(node_a.as_str())
    );
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

    // Any node answers: the consumer writes (through the first node's simulated phone), the
    // business answers through each node; both answers are delivered by the one pipeline and
    // displayed once, and the inbound message reaches the webhook once.
    let (st, v) = a
        .converse("hello both", text(CONSUMER, "through the first node"))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = b.send(text(CONSUMER, "through the second node")).await;
    assert_eq!(st, 200, "{v}");
    let shown = a.wait_inbox(CONSUMER, 2).await;
    let mut bodies: Vec<&str> = shown
        .iter()
        .filter_map(|m| m["content"]["text"]["body"].as_str())
        .collect();
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        vec!["through the first node", "through the second node"],
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
        let a = &a;
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
    let (st, issued) = a
        .post(
            "/sealpost/v1/tokens",
            Some(&a.s("access_token")),
            serde_json::json!({"scopes": ["whatsapp_business_messaging"]}),
        )
        .await;
    assert_eq!(st, 200, "{issued}");
    let (id, token) = (
        issued["id"].as_str().expect("id").to_owned(),
        issued["access_token"].as_str().expect("token").to_owned(),
    );
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

    // SIGKILL the holder: the other takes the pipeline and the housekeeping over within 2 × TTL.
    let killed = Instant::now();
    a.kill();
    let took = eventually(10, "the second node takes the work over", || async {
        let listing = nodes(&url);
        (holder(&listing, "pipeline").as_deref() == Some(node_b.as_str())
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
    assert_eq!(holder(&listing, "pipeline"), None, "{listing}");
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
    let consumers: Vec<String> = (0..24).map(|k| format!("4915199000{k:03}")).collect();
    for c in &consumers {
        let (st, v) = a
            .device_send(
                c,
                serde_json::json!({"to": a.s("display_phone_number"), "type": "text", "text": {"body": "open"}}),
            )
            .await;
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
