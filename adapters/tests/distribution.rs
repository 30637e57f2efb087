//! The schema is ready to be sharded by business (issue 13, docs/scale.md): every table of
//! business data carries `business_id`, the column a distributed Postgres (Citus) would shard
//! by; the tables that do not are the deployment's own, each named here with its role. A table
//! added without that decision fails this test.

#[macro_use]
mod common;
use common::{postgres_fixture, sqlite_fixture, Fixture};
use std::collections::{BTreeMap, BTreeSet};

/// Business data: distributed by `business_id`, co-located per business.
const DISTRIBUTED: [&str; 13] = [
    "sealpost_events",
    "sealpost_snapshots",
    "sealpost_keys",
    "sealpost_destroyed_keys",
    "sealpost_subject_index",
    "sealpost_signal_accounts",
    "sealpost_signal_sessions",
    "sealpost_ev_access",
    "sealpost_ev_messages",
    "sealpost_ev_stats",
    "sealpost_ev_stat_subjects",
    "sealpost_ev_billing",
    "sealpost_ev_erasures",
];

/// The deployment's own tables, with what they would be per shard group.
const GLOBAL: [(&str, &str); 8] = [
    ("sealpost_sequencer", "the log's order: one per shard group"),
    (
        "sealpost_checkpoints",
        "subscriber positions: per shard group",
    ),
    (
        "sealpost_audit_leaves",
        "the tamper-evident log: per shard group",
    ),
    (
        "sealpost_audit_nodes",
        "the tamper-evident log: per shard group",
    ),
    (
        "sealpost_audit_checkpoints",
        "signed tree heads: per shard group",
    ),
    (
        "sealpost_leases",
        "leases on background work: per shard group",
    ),
    (
        "sealpost_ev_days",
        "key destructions per day, all businesses: coordinator",
    ),
    ("_sqlx_migrations", "the migrations run: every database"),
];

/// Each table of the store with its columns (SQLite: both files; sqlite's own tables left out).
async fn tables(f: &Fixture) -> BTreeMap<String, BTreeSet<String>> {
    let rows: Vec<(String, String)> = match (f.pg(), f.dir()) {
        (Some(pg), _) => sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = $1",
        )
        .bind(&pg.schema)
        .fetch_all(&pg.pool)
        .await
        .expect("columns"),
        (None, Some(dir)) => {
            let mut rows = Vec::new();
            for file in ["events.db", "keys.db"] {
                let url = format!("sqlite://{}?mode=ro", dir.join(file).display());
                let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
                rows.extend(
                    sqlx::query_as::<_, (String, String)>(
                        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
                    )
                    .fetch_all(&pool)
                    .await
                    .expect("columns"),
                );
                pool.close().await;
            }
            rows
        }
        (None, None) => unreachable!("a fixture is one store or the other"),
    };
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (table, column) in rows {
        tables.entry(table).or_default().insert(column);
    }
    tables
}

async fn every_table_of_business_data_carries_the_business(f: &Fixture) {
    let tables = tables(f).await;
    let global: BTreeSet<&str> = GLOBAL.iter().map(|(t, _)| *t).collect();
    for (table, columns) in &tables {
        let distributed = DISTRIBUTED.contains(&table.as_str());
        assert!(
            distributed || global.contains(table.as_str()),
            "{table}: business data (add business_id and list it in DISTRIBUTED) or the \
             deployment's own (list it in GLOBAL with its role)? docs/scale.md"
        );
        assert_eq!(
            columns.contains("business_id"),
            distributed,
            "{table}: business_id is the distribution key of exactly the business data"
        );
    }
    if f.pg().is_some() {
        let named: BTreeSet<&str> = DISTRIBUTED.iter().copied().chain(global).collect();
        let present: BTreeSet<&str> = tables.keys().map(String::as_str).collect();
        assert_eq!(named, present, "every table named exists");
    }
}

on_every_store!(every_table_of_business_data_carries_the_business);
