//! The schema is ready to be sharded by business (issue 13, docs/scale.md): every table of
//! business data carries `business_id`, the column a distributed Postgres (Citus) would shard
//! by; the tables that do not are the deployment's own, each named here with its role. A table
//! added without that decision fails this test.

#[macro_use]
mod common;
use common::{postgres_fixture, sqlite_fixture, Fixture};
use std::collections::{BTreeMap, BTreeSet};

/// Business data: distributed by `business_id`, co-located per business.
const DISTRIBUTED: [&str; 14] = [
    "sealpost_events",
    "sealpost_snapshots",
    "sealpost_keys",
    "sealpost_destroyed_keys",
    "sealpost_subject_index",
    "sealpost_signal_accounts",
    "sealpost_signal_sessions",
    "sealpost_media_chunks",
    "sealpost_ev_access",
    "sealpost_ev_messages",
    "sealpost_ev_stats",
    "sealpost_ev_stat_subjects",
    "sealpost_ev_billing",
    "sealpost_ev_erasures",
];

/// The deployment's own tables, with what they would be per shard group.
const GLOBAL: [(&str, &str); 10] = [
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
    (
        "sealpost_region_stores",
        "which Local Storage regions have a store: coordinator",
    ),
    (
        "sealpost_root_generations",
        "each region's current root-key generation: coordinator",
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

/// Statements of business data that reach across businesses by design, each with why: a
/// sharded deployment runs them per shard group, or fans a rare lookup out (docs/scale.md).
/// Every entry must match a statement, so one that gains its business filter must leave this
/// list.
const ACROSS_BUSINESSES: [(&str, &str); 17] = [
    (
        "FROM sealpost_keys WHERE region = $1 AND root_generation",
        "a root-key rotation's rewrap of every business's keys in a region: per shard group",
    ),
    (
        "FROM sealpost_signal_accounts WHERE region = $1 AND root_generation",
        "a root-key rotation's rewrap of every business's Signal accounts in a region: per \
         shard group",
    ),
    (
        "FROM sealpost_events WHERE position > $1 ORDER BY position",
        "the log in order: per shard group",
    ),
    (
        "FROM sealpost_events WHERE position IN",
        "a Local Storage region's bodies by position, for the home rows that reference them: \
         per shard group (positions are the group's)",
    ),
    (
        "FROM sealpost_events WHERE stream_type = $1 AND position > $2",
        "a rare kind (tokens) in log order: per shard group",
    ),
    (
        "FROM sealpost_events WHERE position > $1 AND event_type IN",
        "followed event types in log order: per shard group",
    ),
    (
        "SELECT COALESCE(MAX(position), 0) FROM sealpost_events",
        "the log's head: per shard group",
    ),
    (
        "WHERE kind = 'ledger' GROUP BY business_id, region",
        "the key rotation's pass over every business's ledger keys: per shard group",
    ),
    (
        "FROM sealpost_media_chunks WHERE expires_at <= $1",
        "retention's sweep of every business's expired media chunks: per shard group",
    ),
    (
        "WHERE kind = 'epoch' AND epoch <= $1",
        "retention's expired epochs of every business: per shard group",
    ),
    (
        "FROM sealpost_ev_access WHERE position >",
        "the auditor's access log, in order: per shard group",
    ),
    (
        "count, subjects FROM sealpost_ev_stats",
        "a report: `WHERE business_id =` when one business asks, else every business's",
    ),
    (
        "billable, free FROM sealpost_ev_billing",
        "a report: `WHERE business_id =` when one business asks, else every business's",
    ),
    (
        "THEN created_at END) FROM sealpost_ev_messages",
        "a report: `WHERE business_id =` when one business asks, else every business's",
    ),
    (
        "AS d, COUNT(*) FROM sealpost_ev_messages",
        "a report: `WHERE business_id =` when one business asks, else every business's",
    ),
    (
        "requested_at FROM sealpost_ev_erasures",
        "a report: `WHERE business_id =` when one business asks, else every business's",
    ),
    (
        "SELECT business_id FROM sealpost_events WHERE stream_type = $1 AND stream_id = $2",
        "the lookup of an id's business, for a principal of no business (DPO, auditor) and a \
         node attaching its numbers at start: never on the message path",
    ),
];

/// The SQL statements in the store's sources: every string literal (continuation lines
/// joined) that starts a statement or continues one built in pieces, with its file.
fn statements() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    // Its files and those of its modules' directories (`sql_evidence/`, …).
    let mut paths = Vec::new();
    let mut dirs = vec![dir];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/store") {
            let path = entry.expect("entry").path();
            match path.is_dir() {
                true => dirs.push(path),
                false => paths.push(path),
            }
        }
    }
    let mut out = Vec::new();
    for path in paths {
        let source = std::fs::read_to_string(&path).expect("source");
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        out.extend(
            joined(literals(&source))
                .into_iter()
                .map(|l| (file.clone(), l)),
        );
    }
    out
}

/// A statement built in pieces around a list of values (`… FROM (` values `) AS v WHERE …`)
/// as one: each literal that opens a parenthesis joined with the next that closes it.
fn joined(literals: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in literals {
        match out.last_mut() {
            Some(open) if open.trim_end().ends_with('(') && l.trim_start().starts_with(')') => {
                open.push_str(" … ");
                open.push_str(&l);
            }
            _ => out.push(l),
        }
    }
    out
}

/// The string literals of Rust `source` (outside comments), escapes and `\`-newline
/// continuations resolved.
fn literals(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\'' if chars.get(i + 2) == Some(&'\'') => i += 3,
            '"' => {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                        if chars[i] == '\n' {
                            while chars[i + 1].is_whitespace() {
                                i += 1;
                            }
                        } else {
                            s.push(chars[i]);
                        }
                    } else {
                        s.push(chars[i]);
                    }
                    i += 1;
                }
                out.push(s);
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Every statement that reads, changes or deletes rows of business data names the business
/// (`business_id = …`, the key a sharded Postgres routes by), and every insert writes it; the
/// exceptions are listed above with their reasons (issue 13, ADR 0016, docs/scale.md).
#[test]
fn every_statement_of_business_data_names_the_business() {
    let mut unexplained = Vec::new();
    let mut matched = vec![0usize; ACROSS_BUSINESSES.len()];
    let mut checked = 0;
    for (file, sql) in statements() {
        let touched: Vec<&str> = tables_named(&sql)
            .into_iter()
            .filter(|t| DISTRIBUTED.contains(t))
            .collect();
        if touched.is_empty() {
            continue;
        }
        checked += 1;
        let upper = sql.trim_start().to_ascii_uppercase();
        let names_it = if upper.starts_with("INSERT") {
            sql.contains("business_id")
        } else {
            sql.contains("business_id = ")
        };
        if names_it {
            continue;
        }
        match ACROSS_BUSINESSES
            .iter()
            .position(|(fragment, _)| sql.contains(fragment))
        {
            Some(i) => matched[i] += 1,
            None => unexplained.push(format!("{file}: {sql}")),
        }
    }
    assert!(
        checked > 30,
        "the scan finds the store's statements ({checked})"
    );
    assert!(
        unexplained.is_empty(),
        "statements of business data that do not name the business:\n{}",
        unexplained.join("\n")
    );
    for ((fragment, why), n) in ACROSS_BUSINESSES.iter().zip(matched) {
        assert!(
            n >= 1,
            "`{fragment}` ({why}) matches no statement: it names its business now, or changed; \
             update the list"
        );
    }
}

/// The `sealpost_*` tables a statement names after FROM, INTO, UPDATE or JOIN.
fn tables_named(sql: &str) -> Vec<&str> {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .filter(|w| {
            matches!(
                w[0].to_ascii_uppercase().as_str(),
                "FROM" | "INTO" | "UPDATE" | "JOIN"
            )
        })
        .map(|w| w[1])
        .filter(|t| t.starts_with("sealpost_"))
        .collect()
}
