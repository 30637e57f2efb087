//! The tamper-evident log against direct tampering with the database, on SQLite (through the
//! real `sealpost audit verify` binary) and on Postgres: an untouched store verifies; an edited,
//! deleted, reordered or truncated row, and a restored older checkpoint, each make verify fail
//! naming the right position. Also the offline bundle, and certificates of erasure.

mod common;

use common::{postgres_env, sqlite_env, Env};
use sealpost::app::Sealpost;
use sealpost_audit::log::{read_witness, witness_path};
use sealpost_audit::verify::{self, Finding, Verdict};
use sealpost_domain::Region;
use std::path::Path;
use std::process::Command;

/// Writes some history: businesses, numbers, then a checkpoint; returns the checkpointed size.
async fn history(app: &Sealpost, businesses: usize) -> u64 {
    for i in 0..businesses {
        let b = app
            .catalog()
            .register_business(&format!("Tamper {i}"), Region::Eu)
            .await
            .expect("business");
        app.catalog()
            .add_phone_number(&b, &format!("1555000{i:04}"), Region::Eu)
            .await
            .expect("number");
    }
    app.evidence().checkpoint().await.expect("checkpoint").size
}

#[derive(Debug, Clone, Copy)]
enum Tamper {
    Edit(u64),
    Delete(u64),
    Swap(u64, u64),
    Truncate(u64),
}

/// The same SQL on either backend (sqlx binds `$N` on both).
macro_rules! tamper {
    ($pool:expr, $t:expr) => {{
        let pool = $pool;
        match $t {
            Tamper::Edit(p) => {
                let (payload,): (Vec<u8>,) =
                    sqlx::query_as("SELECT payload FROM sealpost_events WHERE position = $1")
                        .bind(p as i64)
                        .fetch_one(pool)
                        .await
                        .expect("read row");
                let mut payload = payload;
                let last = payload.len() - 1;
                payload[last] ^= 0x01;
                sqlx::query("UPDATE sealpost_events SET payload = $1 WHERE position = $2")
                    .bind(payload)
                    .bind(p as i64)
                    .execute(pool)
                    .await
                    .expect("edit");
            }
            Tamper::Delete(p) => {
                sqlx::query("DELETE FROM sealpost_events WHERE position = $1")
                    .bind(p as i64)
                    .execute(pool)
                    .await
                    .expect("delete");
            }
            Tamper::Swap(p, q) => {
                for (from, to) in [(p as i64, -1i64), (q as i64, p as i64), (-1, q as i64)] {
                    sqlx::query("UPDATE sealpost_events SET position = $1 WHERE position = $2")
                        .bind(to)
                        .bind(from)
                        .execute(pool)
                        .await
                        .expect("swap");
                }
            }
            Tamper::Truncate(p) => {
                sqlx::query("DELETE FROM sealpost_events WHERE position >= $1")
                    .bind(p as i64)
                    .execute(pool)
                    .await
                    .expect("truncate");
            }
        }
    }};
}

/// What a backup restored from the time of the checkpoint of `size` looks like: later rows,
/// leaves and checkpoints are gone (the witness outside the database still has them).
macro_rules! restore_to {
    ($pool:expr, $size:expr) => {{
        for sql in [
            "DELETE FROM sealpost_events WHERE position > $1",
            "DELETE FROM sealpost_audit_leaves WHERE position > $1",
            "DELETE FROM sealpost_audit_nodes WHERE ((idx + 1) << level) > $1",
            "DELETE FROM sealpost_audit_checkpoints WHERE size > $1",
        ] {
            sqlx::query(sql)
                .bind($size as i64)
                .execute($pool)
                .await
                .expect("restore");
        }
    }};
}

fn expected(t: Tamper) -> (u64, &'static str) {
    match t {
        Tamper::Edit(p) => (p, "edited"),
        Tamper::Delete(p) => (p, "deleted"),
        Tamper::Swap(p, _) => (p, "reordered"),
        Tamper::Truncate(p) => (p, "truncated"),
    }
}

fn assert_finding(v: &Verdict, t: Tamper) {
    let (position, kind) = expected(t);
    assert_eq!(v.first_bad_position(), Some(position), "{t:?}: {v:?}");
    let first = v.findings.first().expect("a finding");
    let ok = match (first, t) {
        (Finding::Edited { .. }, Tamper::Edit(_))
        | (Finding::Deleted { .. }, Tamper::Delete(_))
        | (Finding::Truncated { .. }, Tamper::Truncate(_)) => true,
        (Finding::Reordered { belongs_at, .. }, Tamper::Swap(_, q)) => *belongs_at == q,
        _ => false,
    };
    assert!(ok, "{t:?} should be reported as {kind}: {v:?}");
}

fn cases(size: u64) -> [Tamper; 4] {
    [
        Tamper::Edit(size / 2),
        Tamper::Delete(size / 3),
        Tamper::Swap(size / 4, size / 4 + 3),
        Tamper::Truncate(size - 2),
    ]
}

async fn sqlite_pool(dir: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("events.db").display()))
        .await
        .expect("open events.db")
}

fn run_verify(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["audit", "verify", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("SEALPOST_LOG", "warn")
        .output()
        .expect("run sealpost audit verify");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn sqlite_tampering_is_found_by_the_verify_command_at_the_right_position() {
    let mut sizes = Vec::new();
    for i in 0..4 {
        let env = sqlite_env().await;
        let dir = env.dir.as_ref().expect("dir").path().to_path_buf();
        let size = history(&env.app, 6).await;
        sizes.push(size);
        let key = env.app.audit().await.expect("audit").public_key_hex();
        if i == 0 {
            let (code, out) = run_verify(&dir, &["--public-key", &key]);
            assert_eq!(code, Some(0), "an untouched store verifies: {out}");
            assert!(out.contains("OK"), "{out}");
        }
        let t = cases(size)[i];
        tamper!(&sqlite_pool(&dir).await, t);
        let (code, out) = run_verify(&dir, &["--public-key", &key]);
        let (position, kind) = expected(t);
        assert_eq!(code, Some(1), "{t:?}: {out}");
        assert!(
            out.contains(&format!("first bad position {position}")),
            "{t:?}: {out}"
        );
        assert!(out.contains(kind), "{t:?} named {kind}: {out}");
    }
    assert!(sizes.iter().all(|s| *s >= 12), "enough history: {sizes:?}");
}

#[tokio::test]
async fn sqlite_restoring_an_older_checkpoint_is_found() {
    let env = sqlite_env().await;
    let dir = env.dir.as_ref().expect("dir").path().to_path_buf();
    let old = history(&env.app, 3).await;
    let new = history(&env.app, 3).await;
    assert!(new > old);
    assert_eq!(
        read_witness(&witness_path(&dir)).expect("witness").len(),
        2,
        "both checkpoints were published outside the database"
    );
    restore_to!(&sqlite_pool(&dir).await, old);
    let (code, out) = run_verify(&dir, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("first bad position {}", old + 1)),
        "{out}"
    );
    assert!(out.contains("older checkpoint was restored"), "{out}");
    // Without the witness, the restored store is self-consistent: that is why it exists.
    let empty = tempfile::NamedTempFile::new().expect("tmp");
    let (code, out) = run_verify(
        &dir,
        &["--witness", empty.path().to_str().expect("utf-8 path")],
    );
    assert_eq!(code, Some(0), "{out}");
}

async fn pg_verdict(env: &Env, witness: &[sealpost_audit::log::Checkpoint]) -> Verdict {
    let key = env.app.audit().await.expect("audit").public_key();
    verify::verify_store(
        env.app.stores().events.as_ref(),
        witness,
        Some(&key),
        &mut |_| {},
    )
    .await
    .expect("verify")
}

#[tokio::test]
async fn postgres_tampering_is_found_at_the_right_position() {
    for i in 0..4 {
        let Some(env) = postgres_env(&format!("tamper_{i}")).await else {
            return;
        };
        let size = history(&env.app, 6).await;
        let pool = &env.pg.as_ref().expect("pg").pool;
        if i == 0 {
            assert!(pg_verdict(&env, &[]).await.is_ok(), "untouched verifies");
        }
        let t = cases(size)[i];
        tamper!(pool, t);
        assert_finding(&pg_verdict(&env, &[]).await, t);
        env.finish().await;
    }
}

#[tokio::test]
async fn postgres_restoring_an_older_checkpoint_is_found() {
    let Some(mut env) = postgres_env("restore").await else {
        return;
    };
    let witness_dir = tempfile::tempdir().expect("dir");
    env.app = env
        .app
        .clone()
        .with_witness(witness_path(witness_dir.path()));
    let old = history(&env.app, 3).await;
    let new = history(&env.app, 3).await;
    let witness = read_witness(&witness_path(witness_dir.path())).expect("witness");
    assert_eq!(witness.len(), 2);
    assert!(pg_verdict(&env, &witness).await.is_ok());
    restore_to!(&env.pg.as_ref().expect("pg").pool, old);
    let v = pg_verdict(&env, &witness).await;
    assert_eq!(v.first_bad_position(), Some(old + 1), "{v:?}");
    assert!(
        v.findings.iter().any(|f| matches!(
            f,
            Finding::CheckpointRestored { published_size, store_size, .. }
                if *published_size == new && *store_size == old
        )),
        "{v:?}"
    );
    env.finish().await;
}

#[tokio::test]
async fn an_exported_bundle_verifies_offline_and_an_edited_bundle_does_not() {
    let env = sqlite_env().await;
    history(&env.app, 4).await;
    history(&env.app, 2).await;
    let audit = env.app.audit().await.expect("audit");
    let bundle = verify::export(
        audit,
        env.app.stores().events.as_ref(),
        env.app.now(),
        &mut |_| {},
    )
    .await
    .expect("export");
    let key = audit.public_key();
    assert!(verify::verify_bundle(&bundle, &[], Some(&key)).is_ok());
    assert_eq!(bundle.consistency.len() + 1, bundle.checkpoints.len());

    let mut edited = bundle.clone();
    edited.rows[7].event_type = "Forged".into();
    let v = verify::verify_bundle(&edited, &[], Some(&key));
    assert_eq!(v.first_bad_position(), Some(8), "{v:?}");

    let mut dropped = bundle.clone();
    dropped.rows.remove(4);
    assert_eq!(
        verify::verify_bundle(&dropped, &[], Some(&key)).first_bad_position(),
        Some(5)
    );

    // Signed by another key: nothing verifies.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    assert!(!verify::verify_bundle(&bundle, &[], Some(&other)).is_ok());
}

/// A crash between recording an erasure and destroying the keys: the process that starts next
/// finishes the erasure before anything can read (as `serve` runs the retention pass before it
/// binds), so the subject is erased fully; a crash before the record leaves it untouched.
#[tokio::test]
async fn a_crash_in_the_middle_of_an_erasure_leaves_the_subject_fully_erased() {
    use sealpost_adapters::exec::CommandMeta;
    use sealpost_adapters::vault::subject_key_id;
    use sealpost_domain::{
        Opened, Principal, PrincipalKind, Purpose, Subject, SubjectCommand, E164,
    };
    let env = sqlite_env().await;
    let dir = env.dir.as_ref().expect("dir").path().to_path_buf();
    let b = env
        .app
        .catalog()
        .register_business("Crash", Region::Eu)
        .await
        .expect("business");
    let phone = E164::parse("+4915112340000").expect("number");
    let subject = env
        .app
        .subjects()
        .subject_for(&b, Region::Eu, &phone)
        .await
        .expect("subject");
    let pipeline = Principal::processor("delivery");
    let read = |app: Sealpost| {
        let (subject, pipeline, b) = (subject.clone(), pipeline.clone(), b.clone());
        async move {
            app.subjects()
                .read_phone(&pipeline, Purpose::Delivery, &b, &subject)
                .await
                .expect("read")
        }
    };
    // Crash before the record: nothing happened.
    assert!(matches!(read(env.app.clone()).await, Opened::Plain(_)));

    // The record is written, then the process dies before the key store transaction.
    let dpo = Principal::of_kind(PrincipalKind::Dpo, "dpo");
    sealpost_adapters::exec::Executor::new(env.app.store().clone())
        .execute::<Subject>(
            subject.as_str(),
            SubjectCommand::Erase {
                requested_by: dpo.id.clone(),
            },
            &CommandMeta::new(b.as_str(), Region::Eu, &dpo),
            env.app.now(),
        )
        .await
        .expect("record the erasure");
    let key = subject_key_id(b.as_str(), Region::Eu, &subject);
    assert_eq!(
        env.app
            .stores()
            .keys
            .destroyed_at(b.as_str(), &key)
            .await
            .expect("tomb"),
        None,
        "the key outlived the crash"
    );

    // The next process finishes it before serving.
    let next = Sealpost::open_sqlite(
        &dir,
        std::sync::Arc::new(env.clock.clone()),
        Default::default(),
    )
    .await
    .expect("reopen");
    next.retention()
        .run_once(next.now())
        .await
        .expect("recovery pass");
    assert!(next
        .stores()
        .keys
        .destroyed_at(b.as_str(), &key)
        .await
        .expect("tomb")
        .is_some());
    assert!(matches!(read(next.clone()).await, Opened::Shredded));
    assert_eq!(
        next.store()
            .vault()
            .find_subject(b.as_str(), Region::Eu, &phone, next.now())
            .await
            .expect("index"),
        None,
        "the routing entry went with the key"
    );
}

/// A tree of 70,000 leaves (one node of height 16, 273 of height 8) stored as the sequencer
/// stores it: every proof and the restarted right edge read from its tiles equal the ones
/// computed from all the leaves, and a store without the nodes (written before they were kept)
/// gets them filled in.
async fn tiles_answer_like_the_whole_tree(env: Env) {
    use sealpost_adapters::store::{AuditLeaf, EventLog};
    use sealpost_audit::merkle::{self, Frontier};
    use sealpost_audit::tiles::{self, SubtreeReader};
    let events: &dyn EventLog = env.app.stores().events.as_ref();
    let all: Vec<merkle::Hash> = (0..70_000u64)
        .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
        .collect();
    let mut frontier = Frontier::new();
    for (k, chunk) in all.chunks(4_999).enumerate() {
        let mut nodes = Vec::new();
        let leaves: Vec<AuditLeaf> = chunk
            .iter()
            .zip(k * 4_999 + 1..)
            .map(|(hash, position)| {
                tiles::push(&mut frontier, *hash, &mut nodes);
                AuditLeaf {
                    position: position as u64,
                    hash: *hash,
                }
            })
            .collect();
        events
            .audit_append_leaves(&leaves, &nodes)
            .await
            .expect("leaves");
    }
    let all = &all;
    let check = |label: &'static str| async move {
        let size = events.audit_size().await.expect("size");
        assert_eq!(size, 70_000, "{label}");
        let restored = tiles::frontier(events, size).await.expect("frontier");
        assert_eq!(restored.root(), merkle::root(all), "{label}");
        for (index, size) in [
            (0, 70_000),
            (69_999, 70_000),
            (65_535, 65_537),
            (300, 4_097),
        ] {
            let ranges = merkle::inclusion_ranges(index, size).expect("ranges");
            let path = SubtreeReader::new(events)
                .ranges(&ranges)
                .await
                .expect("path");
            let whole = merkle::inclusion_proof(&all[..size as usize], index).expect("proof");
            assert_eq!(path, whole, "{label}: inclusion of {index} in {size}");
        }
        for (old, size) in [(1, 70_000), (65_536, 70_000), (12_345, 66_000), (255, 257)] {
            let ranges = merkle::consistency_ranges(old, size).expect("ranges");
            let path = SubtreeReader::new(events)
                .ranges(&ranges)
                .await
                .expect("path");
            let whole = merkle::consistency_proof(&all[..size as usize], old).expect("proof");
            assert_eq!(path, whole, "{label}: consistency of {old} in {size}");
        }
    };
    check("as sequenced").await;
    // Served as C2SP tlog-tiles: the specification's own example of a tree of 70,000 leaves
    // (0/273.p/112, 1/000, 1/001.p/17, 2/000.p/1), each hash at height 8·L the root of its
    // 256^L leaves; the full tiles that tree does not complete are not served.
    let tile = |path: &str| {
        let address = tiles::TileAddress::parse(path).expect("a tile path");
        async move { tiles::tile(events, 70_000, address).await.expect("tile") }
    };
    let roots = |span: usize, from: usize, n: usize| -> Vec<u8> {
        (from..from + n)
            .flat_map(|i| merkle::root(&all[i * span..((i + 1) * span).min(all.len())]))
            .collect()
    };
    assert_eq!(tile("0/273.p/112").await, Some(roots(1, 69_888, 112)));
    assert_eq!(tile("1/000").await, Some(roots(256, 0, 256)));
    assert_eq!(tile("1/001.p/17").await, Some(roots(256, 256, 17)));
    assert_eq!(tile("2/000.p/1").await, Some(roots(65_536, 0, 1)));
    for missing in ["0/273", "1/001", "1/001.p/18", "2/000", "3/000.p/1"] {
        assert_eq!(tile(missing).await, None, "{missing}");
    }
    assert_eq!(tiles::fill_in(events, 70_000).await.expect("fill in"), 0);
    let wipe = "DELETE FROM sealpost_audit_nodes";
    match &env.pg {
        Some(pg) => sqlx::query(wipe).execute(&pg.pool).await.map(|_| ()),
        None => {
            let pool = sqlite_pool(env.dir.as_ref().expect("dir").path()).await;
            sqlx::query(wipe).execute(&pool).await.map(|_| ())
        }
    }
    .expect("wipe the nodes");
    assert!(SubtreeReader::new(events)
        .ranges(&merkle::inclusion_ranges(0, 70_000).expect("ranges"))
        .await
        .is_err());
    assert_eq!(tiles::fill_in(events, 70_000).await.expect("fill in"), 274);
    check("filled in").await;
    env.finish().await;
}

#[tokio::test]
async fn sqlite_tiles_answer_like_the_whole_tree() {
    tiles_answer_like_the_whole_tree(sqlite_env().await).await;
}

#[tokio::test]
async fn postgres_tiles_answer_like_the_whole_tree() {
    let Some(env) = postgres_env("tiles").await else {
        return;
    };
    tiles_answer_like_the_whole_tree(env).await;
}

/// Each row's leaf is recorded by its append, before any sequencing, and is the leaf the
/// verifier computes from the row (RFC 6962 `leaf_hash` of the row's `leaf_data`).
#[tokio::test]
async fn appends_record_each_rows_leaf_as_the_verifier_computes_it() {
    use sealpost_audit::log::{leaf_data, sha256};
    use sealpost_audit::merkle;
    let env = sqlite_env().await;
    let events = env.app.stores().events.clone();
    let before = events.audit_size().await.expect("size");
    let b = env
        .app
        .catalog()
        .register_business("Leaves", Region::Eu)
        .await
        .expect("business");
    env.app
        .catalog()
        .add_phone_number(&b, "15550009999", Region::Eu)
        .await
        .expect("number");
    let rows = events.read_all(before, 1_000).await.expect("rows");
    let leaves = events.audit_leaves(before, 1_000).await.expect("leaves");
    assert!(!rows.is_empty());
    assert_eq!(rows.len(), leaves.len(), "a leaf per appended row");
    for (row, leaf) in rows.iter().zip(&leaves) {
        assert_eq!(row.position, leaf.position);
        let expected = merkle::leaf_hash(&leaf_data(&row.header, &sha256(&row.payload)));
        assert_eq!(leaf.hash, expected, "row {}", row.position);
    }
}

/// Rows without leaves (appended by a version before appenders recorded them, then a crash
/// before its sequencer ran) are hashed by the next sequencer from the rows themselves, and
/// the log verifies.
#[tokio::test]
async fn rows_an_older_version_left_without_leaves_are_sequenced_from_the_rows() {
    use sealpost_audit::log::AuditLog;
    let env = sqlite_env().await;
    let size = history(&env.app, 3).await;
    let pool = sqlite_pool(env.dir.as_ref().expect("dir").path()).await;
    sqlx::query("DELETE FROM sealpost_audit_leaves WHERE position > 2")
        .execute(&pool)
        .await
        .expect("forget leaves");
    let events = env.app.stores().events.clone();
    assert_eq!(events.audit_size().await.expect("size"), 2);
    let log = AuditLog::open(
        events.clone(),
        env.app.store().vault(),
        "sealpost/audit/v1",
        None,
        env.app.now(),
    )
    .await
    .expect("open");
    assert_eq!(log.sequence().await.expect("sequence"), size);
    let leaves = events.audit_leaves(0, 1_000).await.expect("leaves");
    assert_eq!(leaves.len() as u64, size, "every row has its leaf again");
    let key = log.public_key();
    let v = verify::verify_store(events.as_ref(), &[], Some(&key), &mut |_| {})
        .await
        .expect("verify");
    assert!(v.is_ok(), "{v:?}");
}
