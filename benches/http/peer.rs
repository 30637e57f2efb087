//! What Sealpost's accept path is compared with, against the same database in the same run:
//! a raw batched insert of rows of the same size (the ceiling of the store), and a plain
//! `cqrs-es` + `postgres-es` program of the same command behind the same kind of HTTP server
//! (what the framework alone gives).

use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows per raw transaction and raw clients (as `benches/append.rs`).
const RAW_BATCH: usize = 100;
const RAW_CLIENTS: usize = 4;

/// Raw batched inserts of `row_bytes`-byte rows into a table of the same columns as the event
/// log, for `length`: rows per second.
pub async fn raw_postgres(pool: &sqlx::PgPool, row_bytes: usize, length: Duration) -> f64 {
    sqlx::query(
        "CREATE TABLE bench_raw (position BIGSERIAL PRIMARY KEY, stream_type TEXT NOT NULL,
         stream_id TEXT NOT NULL, sequence BIGINT NOT NULL, event_type TEXT NOT NULL,
         business_id TEXT NOT NULL, payload BYTEA NOT NULL, UNIQUE (stream_type, stream_id, sequence))",
    )
    .execute(pool)
    .await
    .expect("raw table");
    let rows = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..RAW_CLIENTS {
        let (pool, rows) = (pool.clone(), rows.clone());
        tasks.push(tokio::spawn(async move {
            let payload = vec![7u8; row_bytes];
            while start.elapsed() < length {
                let first = rows.fetch_add(RAW_BATCH as u64, Ordering::Relaxed);
                let ids: Vec<String> = (first..first + RAW_BATCH as u64)
                    .map(|i| i.to_string())
                    .collect();
                let payloads: Vec<&[u8]> = (0..RAW_BATCH).map(|_| payload.as_slice()).collect();
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query(
                    "INSERT INTO bench_raw (stream_type, stream_id, sequence, event_type, business_id, payload)
                     SELECT 'message', id, 1, 'OutboundMessageAccepted', '100000000000001', p
                     FROM UNNEST($1::text[], $2::bytea[]) AS t(id, p)",
                )
                .bind(&ids)
                .bind(&payloads)
                .execute(&mut *tx)
                .await
                .expect("insert");
                tx.commit().await.expect("commit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("raw client");
    }
    rows.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The same on SQLite (one writer: one client, `RAW_BATCH` rows per transaction), WAL and
/// `synchronous = FULL` as Sealpost's store.
pub async fn raw_sqlite(row_bytes: usize, length: Duration) -> f64 {
    let dir = tempfile::tempdir().expect("dir");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("raw.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("sqlite");
    sqlx::query(
        "CREATE TABLE bench_raw (position INTEGER PRIMARY KEY, stream_type TEXT NOT NULL,
         stream_id TEXT NOT NULL, sequence INTEGER NOT NULL, event_type TEXT NOT NULL,
         business_id TEXT NOT NULL, payload BLOB NOT NULL, UNIQUE (stream_type, stream_id, sequence))",
    )
    .execute(&pool)
    .await
    .expect("raw table");
    let payload = vec![7u8; row_bytes];
    let mut rows = 0u64;
    let start = Instant::now();
    let placeholders =
        vec!["('message', ?, 1, 'OutboundMessageAccepted', '100000000000001', ?)"; RAW_BATCH]
            .join(",");
    let sql = format!("INSERT INTO bench_raw (stream_type, stream_id, sequence, event_type, business_id, payload) VALUES {placeholders}");
    while start.elapsed() < length {
        let mut q = sqlx::query(&sql);
        for i in rows..rows + RAW_BATCH as u64 {
            q = q.bind(i.to_string()).bind(&payload);
        }
        let mut tx = pool.begin().await.expect("begin");
        q.execute(&mut *tx).await.expect("insert");
        tx.commit().await.expect("commit");
        rows += RAW_BATCH as u64;
    }
    rows as f64 / start.elapsed().as_secs_f64()
}

/// The plain program's aggregate: a message that is accepted once.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PlainMessage {
    accepted: bool,
}

/// Accept a text to a consumer.
#[derive(Debug)]
pub struct Accept {
    to: String,
    body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum PlainEvent {
    Accepted { to: String, body: String },
}

impl DomainEvent for PlainEvent {
    fn event_type(&self) -> String {
        "Accepted".into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("already accepted")]
pub struct Refused;

impl Aggregate for PlainMessage {
    const TYPE: &'static str = "message";
    type Command = Accept;
    type Event = PlainEvent;
    type Error = Refused;
    type Services = ();

    async fn handle(
        &mut self,
        command: Accept,
        _: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Refused> {
        if self.accepted {
            return Err(Refused);
        }
        sink.write(
            PlainEvent::Accepted {
                to: command.to,
                body: command.body,
            },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, _: PlainEvent) {
        self.accepted = true;
    }
}

type Plain = Arc<postgres_es::PostgresCqrs<PlainMessage>>;

/// `POST /{version}/{phone-number-id}/messages` of the plain program: the bearer token checked,
/// the same body parsed and checked, one command executed, the Cloud API's answer.
async fn plain_send(
    axum::extract::State(cqrs): axum::extract::State<Plain>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, String) {
    use axum::http::StatusCode;
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer plain") {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"error": {"code": 190}}).to_string(),
        );
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let (Some(to), Some(text)) = (v["to"].as_str(), v["text"]["body"].as_str()) else {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": 100}}).to_string(),
        );
    };
    if v["messaging_product"] != "whatsapp" || v["type"] != "text" {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": 100}}).to_string(),
        );
    }
    let id = format!("wamid.{}", uuid::Uuid::new_v4().simple());
    let cmd = Accept {
        to: to.to_owned(),
        body: text.to_owned(),
    };
    match cqrs.execute(&id, cmd).await {
        Ok(()) => (
            StatusCode::OK,
            json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                   "messages": [{"id": id}]})
            .to_string(),
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"code": 1}}).to_string(),
        ),
    }
}

/// Starts the plain program on a free loopback port, over `pool` (its own `events` table),
/// on a runtime of its own; returns its send URL.
pub async fn plain_server(pool: sqlx::PgPool) -> String {
    sqlx::query(
        "CREATE TABLE events (aggregate_type text NOT NULL, aggregate_id text NOT NULL,
         sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL,
         event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL,
         PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
    )
    .execute(&pool)
    .await
    .expect("events table");
    let cqrs: Plain = Arc::new(postgres_es::postgres_cqrs(pool, vec![], ()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/v21.0/{id}/messages", axum::routing::post(plain_send))
        .with_state(cqrs);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v21.0/1/messages")
}
