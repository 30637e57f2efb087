//! The evidence projections are rows in the store (ADR 0015): folded a checkpoint at a time
//! while traffic goes on, folded by two folds at once, or folded again from position 0, they
//! give the same statistics, billing, retention report and access log, on both backends, for a
//! number of the default region and for a Local Storage (DE) number, whose consumers' tags are
//! in DE's store only (ADR 0021).

mod common;

use common::world::{consumer, world_in, World};
use common::{postgres_env, sqlite_env, Env};
use sealpost::app::evidence::{ErasureOutcome, ErasureTarget};
use sealpost_domain::{Region, E164};
use sealpost_projections::evidence::{AccessEntry, AccessQuery, EvidenceProjection};
use serde_json::Value;

const DEVICES: usize = 6;

/// What the business reads of its evidence, less what differs between two reads of the same
/// fold (the time of the report, the checkpoint, and access entries the reads themselves add
/// after `up_to`).
async fn answers(env: &Env, w: &World, up_to: u64) -> Value {
    let evidence = env.app.evidence();
    let (stats, _) = evidence.statistics(&w.me, None).await.expect("statistics");
    let (billing, _) = evidence.billing(&w.me, None).await.expect("billing");
    let mut report = serde_json::to_value(
        evidence
            .retention_report(&w.me, None)
            .await
            .expect("report"),
    )
    .expect("json");
    for volatile in ["generated_at", "checkpoint", "oldest_live_message_age_ms"] {
        report.as_object_mut().expect("object").remove(volatile);
    }
    let mut access: Vec<AccessEntry> = Vec::new();
    let mut after = None;
    loop {
        let query = AccessQuery {
            after,
            limit: Some(7),
            ..AccessQuery::default()
        };
        let (page, _) = evidence.access_log(&w.me, query).await.expect("access");
        access.extend(page.entries.into_iter().filter(|e| e.position <= up_to));
        match page.next {
            Some(n) if n <= up_to => after = Some(n),
            _ => break,
        }
    }
    serde_json::json!({"stats": stats, "billing": billing, "report": report, "access": access})
}

/// Traffic with a fold after each step: inbound from every device, two answers each, the
/// phones' receipts, one erasure. A Local Storage number moves to IN before the receipts, so
/// they are recorded under IN for messages stored in the first region. Returns the log
/// position before the first read.
async fn traffic(env: &Env, w: &mut World, pipeline: &mut sealpost::pipeline::Pipeline) -> u64 {
    let fold = || async {
        let evidence = env.app.evidence();
        let checkpoint = evidence.checkpoint().await.expect("checkpoint");
        evidence.fold_evidence(&checkpoint).await.expect("fold")
    };
    for i in 0..DEVICES {
        w.device_writes(i, &format!("dev-{i}"), b"hi").await;
    }
    pipeline.run_until_idle(10).await.expect("inbound");
    fold().await;
    for i in 0..DEVICES {
        w.answer(&env.app, i, "one").await;
        w.answer(&env.app, i, "two").await;
    }
    pipeline.run_until_idle(10).await.expect("outbound");
    fold().await;
    let phone = E164::parse(&consumer(0)).expect("phone");
    let vault = env.app.store().vault();
    let now = sealpost_domain::ports::Clock::now(&env.clock);
    let subject = vault
        .find_subject(w.business.as_str(), w.region, &phone, now)
        .await
        .expect("find")
        .expect("consumer 0");
    if w.region.is_local_storage() {
        common::world::elect(&env.app, &w.me, &w.number, Region::In).await;
    }
    for d in &mut w.devices {
        d.step(&w.net).await.expect("device");
    }
    pipeline.run_until_idle(10).await.expect("receipts");
    fold().await;
    let erased = env
        .app
        .evidence()
        .erase_with_certificate(&w.me, ErasureTarget::Subject(subject))
        .await
        .expect("erase");
    assert!(matches!(erased, ErasureOutcome::Erased(_)));
    // The pipelines' access counts of this minute are written now, before the last position.
    env.app.gate().flush().await.expect("flush");
    env.app
        .evidence()
        .checkpoint()
        .await
        .expect("checkpoint")
        .size
}

async fn folds_agree(env: Env, region: Region) {
    let (mut w, mut pipeline) = world_in(&env, DEVICES, region).await;
    let up_to = traffic(&env, &mut w, &mut pipeline).await;
    let stepwise = answers(&env, &w, up_to).await;

    // What the fold counted is what happened, so that agreeing below means something.
    let stats = stepwise["stats"].as_array().expect("stats");
    let count = |metric: &str| -> u64 {
        stats
            .iter()
            .filter(|s| s["metric"] == metric)
            .map(|s| {
                s["count"]
                    .as_u64()
                    .expect("a group of six is not suppressed")
            })
            .sum()
    };
    assert_eq!(count("sent"), 2 * DEVICES as u64, "{stats:?}");
    assert_eq!(count("inbound"), DEVICES as u64, "{stats:?}");
    assert!(count("delivered") > 0, "{stats:?}");
    let report = &stepwise["report"];
    assert_eq!(report["messages"]["created"], 3 * DEVICES as u64);
    assert_eq!(
        report["messages"]["shredded"], 3,
        "device 0's three messages"
    );
    assert_eq!(report["erasures"]["requests"], 1);
    assert!(stepwise["billing"]
        .as_array()
        .is_some_and(|b| !b.is_empty()));
    assert!(stepwise["access"].as_array().is_some_and(|a| !a.is_empty()));
    tags_stay_in(&env, &w, region).await;

    // Two folds at once from position 0: one of them writes each page, none twice.
    let rows = env.app.stores().evidence.clone();
    rows.evidence_reset().await.expect("reset");
    let regions = &env.app.stores().regions;
    for r in regions.regions().await.expect("regions") {
        let rows = regions.evidence_for_read(r).await.expect("open");
        rows.expect("a listed store")
            .evidence_reset()
            .await
            .expect("reset");
    }
    let head = env
        .app
        .evidence()
        .checkpoint()
        .await
        .expect("checkpoint")
        .size;
    let one = EvidenceProjection::new(env.app.store(), rows.as_ref());
    let two = EvidenceProjection::new(env.app.store(), rows.as_ref());
    let (mut quiet_one, mut quiet_two) = (|_, _| {}, |_, _| {});
    let (a, b) = tokio::join!(
        one.catch_up(head, &mut quiet_one),
        two.catch_up(head, &mut quiet_two)
    );
    assert_eq!((a.expect("one"), b.expect("two")), (head, head));
    assert_eq!(
        answers(&env, &w, up_to).await,
        stepwise,
        "two folds at once"
    );

    // Folded again from position 0 in one go.
    env.app
        .evidence()
        .rebuild_evidence(&mut |_, _| {})
        .await
        .expect("rebuild");
    assert_eq!(answers(&env, &w, up_to).await, stepwise, "rebuilt");
    env.finish().await;
}

/// The evidence tags of the consumers still held (devices 1 to 5) are in the store of
/// `region` only: the home store's when it is not a Local Storage region, else the region's.
async fn tags_stay_in(env: &Env, w: &World, region: Region) {
    let vault = env.app.store().vault();
    let now = sealpost_domain::ports::Clock::now(&env.clock);
    let expected: sealpost_testkit::Holders = [match region.is_local_storage() {
        true => region.code().to_owned(),
        false => "home".to_owned(),
    }]
    .into();
    for i in 1..DEVICES {
        let phone = E164::parse(&consumer(i)).expect("phone");
        let subject = vault
            .find_subject(w.business.as_str(), region, &phone, now)
            .await
            .expect("find")
            .expect("a consumer still held");
        let tag = vault
            .evidence_tag(w.business.as_str(), region, &subject, now)
            .await
            .expect("tag");
        let holders = match (&env.dir, &env.pg) {
            (_, Some(pg)) => pg.stores_holding(&tag).await,
            (Some(dir), None) => sealpost_testkit::files_holding(dir.path(), &tag),
            (None, None) => unreachable!("an env has a store"),
        };
        assert_eq!(holders, expected, "consumer {i}'s evidence tag");
    }
}

#[tokio::test]
async fn sqlite_evidence_folded_stepwise_concurrently_or_again_agrees() {
    folds_agree(sqlite_env().await, Region::Eu).await;
}

#[tokio::test]
async fn postgres_evidence_folded_stepwise_concurrently_or_again_agrees() {
    if let Some(env) = postgres_env("evidence_rows").await {
        folds_agree(env, Region::Eu).await;
    }
}

#[tokio::test]
async fn sqlite_local_storage_evidence_is_tagged_in_its_region_only() {
    folds_agree(sqlite_env().await, Region::De).await;
}

#[tokio::test]
async fn postgres_local_storage_evidence_is_tagged_in_its_region_only() {
    if let Some(env) = postgres_env("evidence_rows_de").await {
        folds_agree(env, Region::De).await;
    }
}

/// The port itself, page by page: a stored message's type learnt in a later page, a status
/// counted under it, its consumer's key destroyed, and a page that starts from the wrong
/// position refused.
async fn rows_port(env: Env) {
    use sealpost_adapters::store::{EvidenceWrite, MessageFacts, OfBusiness, Shred, StatKey};
    use sealpost_domain::MessageKind;
    let rows = env.app.stores().evidence.clone();
    let tag = [7u8; 16];
    let message = MessageFacts {
        message_id: "wamid.rows-port".into(),
        business_id: "b1".into(),
        region: "EU".into(),
        epoch: 42,
        subject: Some(tag),
        phone_number_id: "p1".into(),
        kind: MessageKind::Unknown,
        category: None,
        created_at: common::START_MS,
    };
    let first = EvidenceWrite {
        from: 0,
        to: 10,
        messages: vec![message.clone()],
        ..EvidenceWrite::default()
    };
    assert!(rows.evidence_write(&first).await.expect("first page"));
    assert!(
        !rows.evidence_write(&first).await.expect("again"),
        "a page from a position the rows have left is refused"
    );
    let of = |business: &str| [OfBusiness::new(business, &message.message_id)];
    assert!(
        rows.evidence_messages(&of("b2"))
            .await
            .expect("messages")
            .is_empty(),
        "another business's name reaches nothing"
    );
    let key = StatKey {
        business_id: "b1".into(),
        phone_number_id: "p1".into(),
        day: "2026-03-01".into(),
        kind: MessageKind::Image,
        metric: "inbound".into(),
    };
    let second = EvidenceWrite {
        from: 10,
        to: 20,
        kinds: vec![(of("b1")[0].clone(), MessageKind::Image)],
        stats: vec![(key.clone(), 1)],
        stat_subjects: vec![(key.clone(), tag)],
        shreds: vec![Shred::Subject {
            business_id: "b1".into(),
            tag,
            at: common::START_MS + 5,
        }],
        ..EvidenceWrite::default()
    };
    assert!(rows.evidence_write(&second).await.expect("second page"));
    assert_eq!(rows.evidence_position().await.expect("position"), 20);
    let stored = rows.evidence_messages(&of("b1")).await.expect("messages");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kind, MessageKind::Image, "the type learnt later");
    assert_eq!(stored[0].subject, None, "the tag goes with the key");
    let stats = rows.evidence_stats(Some("b1")).await.expect("stats");
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].1.count, stats[0].1.subjects), (1, 1));
    let totals = rows.evidence_totals(Some("b1"), &[]).await.expect("totals");
    assert_eq!((totals.created, totals.shredded), (1, 1));
    let without = |regions: &'static [&'static str]| {
        let rows = rows.clone();
        async move { rows.evidence_totals(None, regions).await.expect("totals") }
    };
    let kept = without(&["DE"]).await;
    assert_eq!((kept.created, kept.created_per_day.len()), (1, 1));
    let left = without(&["DE", "EU"]).await;
    assert_eq!(
        (left.created, left.shredded, left.created_per_day.len()),
        (0, 0, 0),
        "the EU message left out"
    );

    // A group counts distinct consumers up to the cap (a page may pass it), then no more.
    let busy = StatKey {
        metric: "sent".into(),
        ..key
    };
    let cap = sealpost_adapters::store::evidence::DISTINCT_CAP;
    let members = |from: u64, n: u64| -> Vec<(StatKey, [u8; 16])> {
        (from..from + n)
            .map(|i| {
                let mut tag = [0u8; 16];
                tag[..8].copy_from_slice(&i.to_be_bytes());
                (busy.clone(), tag)
            })
            .collect()
    };
    let third = EvidenceWrite {
        from: 20,
        to: 30,
        stats: vec![(busy.clone(), cap + 1)],
        stat_subjects: members(0, cap + 1),
        ..EvidenceWrite::default()
    };
    assert!(rows.evidence_write(&third).await.expect("third page"));
    let fourth = EvidenceWrite {
        from: 30,
        to: 40,
        stats: vec![(busy.clone(), 1)],
        stat_subjects: members(1_000, 1),
        ..EvidenceWrite::default()
    };
    assert!(rows.evidence_write(&fourth).await.expect("fourth page"));
    let stats = rows.evidence_stats(Some("b1")).await.expect("stats");
    let group = stats
        .iter()
        .find(|(k, _)| *k == busy)
        .expect("the busy group");
    assert_eq!((group.1.count, group.1.subjects), (cap + 2, cap + 1));
    env.finish().await;
}

#[tokio::test]
async fn sqlite_evidence_rows_take_pages_in_order() {
    rows_port(sqlite_env().await).await;
}

#[tokio::test]
async fn postgres_evidence_rows_take_pages_in_order() {
    if let Some(env) = postgres_env("evidence_port").await {
        rows_port(env).await;
    }
}
