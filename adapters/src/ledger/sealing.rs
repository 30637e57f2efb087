//! The outer layer: event rows sealed under their business's ledger key (the associated data
//! binds the row header) and opened on every read (`read_stream`, `read_all`, `scan`).

use super::{EventContext, EventStore, LedgerError, OpenedEvent, PlainEvent};
use crate::crypto;
use crate::store::{AppendCommand, NewRow, RowHeader, StoreError, StoredRow, StreamId};
use sealpost_domain::{EpochId, Region};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    payload: Value,
    metadata: BTreeMap<String, String>,
}

fn event_aad(h: &RowHeader) -> Vec<u8> {
    crypto::aad(&[
        b"sealpost/event/v1",
        h.stream.kind.as_bytes(),
        h.stream.id.as_bytes(),
        &h.sequence.to_be_bytes(),
        h.event_type.as_bytes(),
        &h.event_version.to_be_bytes(),
        h.business_id.as_bytes(),
        h.region.as_bytes(),
    ])
}

impl EventStore {
    /// Seals events into rows for `stream` after version `expected`.
    pub async fn seal(
        &self,
        stream: &StreamId,
        expected: u64,
        ctx: &EventContext,
        events: Vec<PlainEvent>,
    ) -> Result<AppendCommand, LedgerError> {
        let now = self.clock.now();
        let (version, key) = self
            .vault
            .ledger_key(&ctx.business_id, ctx.region, now)
            .await?;
        let mut rows = Vec::with_capacity(events.len());
        for (i, e) in events.into_iter().enumerate() {
            let header = RowHeader {
                stream: stream.clone(),
                sequence: expected + i as u64 + 1,
                event_type: e.event_type,
                event_version: e.event_version,
                business_id: ctx.business_id.clone(),
                region: ctx.region.code().to_owned(),
                epoch: ctx.epoch.map(EpochId::index),
                recorded_at: now.millis(),
            };
            let plain = serde_json::to_vec(&Envelope {
                payload: e.payload,
                metadata: e.metadata,
            })
            .map_err(|_| StoreError::Invalid("event does not serialize"))?;
            let mut payload = version.to_be_bytes().to_vec();
            payload.extend_from_slice(&crypto::seal(&key, &plain, &event_aad(&header)));
            rows.push(NewRow { header, payload });
        }
        Ok(AppendCommand {
            stream: stream.clone(),
            expected,
            rows,
        })
    }

    /// Every event whose row header passes `keep`, from the start of the log, in order.
    pub async fn scan(
        &self,
        keep: impl Fn(&RowHeader) -> bool,
    ) -> Result<Vec<OpenedEvent>, LedgerError> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let rows = self.log.read_all(after, 1_000).await?;
            let Some(last) = rows.last() else {
                return Ok(out);
            };
            after = last.position;
            let kept = rows.into_iter().filter(|r| keep(&r.header)).collect();
            out.extend(self.open_rows(kept).await?);
        }
    }

    pub(super) async fn ledger_key_for(
        &self,
        business: &str,
        region: &str,
        payload: &[u8],
    ) -> Result<(Arc<crypto::SecretKey>, usize), LedgerError> {
        let region: Region = region
            .parse()
            .map_err(|_| StoreError::Corrupt("unknown region"))?;
        let version_bytes: [u8; 4] = payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(StoreError::Corrupt("payload too short"))?;
        let key = self
            .vault
            .ledger_key_version(business, region, u32::from_be_bytes(version_bytes), None)
            .await?;
        Ok((key, 4))
    }

    /// Opens one stored row's outer layer (its body read from its region when the home row
    /// references one).
    pub async fn open_row(&self, row: StoredRow) -> Result<OpenedEvent, LedgerError> {
        let mut opened = self.open_rows(vec![row]).await?;
        opened
            .pop()
            .ok_or_else(|| StoreError::Corrupt("a row did not open").into())
    }

    /// Opens rows' outer layers, reading the regions' bodies they reference together.
    pub async fn open_rows(&self, rows: Vec<StoredRow>) -> Result<Vec<OpenedEvent>, LedgerError> {
        let rows = self.resolved(rows).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.open_body(r).await?);
        }
        Ok(out)
    }

    /// Opens one row whose payload is its sealed body.
    async fn open_body(&self, row: StoredRow) -> Result<OpenedEvent, LedgerError> {
        let (key, skip) = self
            .ledger_key_for(&row.header.business_id, &row.header.region, &row.payload)
            .await?;
        let plain = crypto::open(&key, &row.payload[skip..], &event_aad(&row.header))
            .map_err(|_| StoreError::Corrupt("event payload does not open"))?;
        let env: Envelope = serde_json::from_slice(&plain)
            .map_err(|_| StoreError::Corrupt("event payload is not JSON"))?;
        Ok(OpenedEvent {
            position: row.position,
            header: row.header,
            payload: env.payload,
            metadata: env.metadata,
        })
    }

    /// Events of one stream after sequence `after`.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        after: u64,
    ) -> Result<Vec<OpenedEvent>, LedgerError> {
        super::reads::note(stream);
        let rows = self.log.read_stream(stream, after).await?;
        self.open_rows(rows).await
    }

    /// The business of the stream `kind`/`id` (`None` if it has no events): a lookup across
    /// businesses, for a caller that holds an id and no business (ADR 0018).
    pub async fn business_of(&self, kind: &str, id: &str) -> Result<Option<String>, LedgerError> {
        Ok(self.log.business_of(kind, id).await?)
    }

    /// Every event of `business`'s streams of type `kind` named by `ids`, in one read of the
    /// log, by id (a stream with no events maps to an empty list).
    pub async fn read_streams(
        &self,
        business: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<OpenedEvent>>, LedgerError> {
        let mut out: std::collections::HashMap<String, Vec<OpenedEvent>> = ids
            .iter()
            .map(|id| {
                super::reads::note(&StreamId::new(business, kind, id.as_str()));
                (id.clone(), Vec::new())
            })
            .collect();
        let rows = self.log.read_streams(business, kind, ids).await?;
        for event in self.open_rows(rows).await? {
            out.entry(event.header.stream.id.clone())
                .or_default()
                .push(event);
        }
        Ok(out)
    }

    /// Up to `limit` events of streams of type `kind` after global position `after`.
    pub async fn read_kind(
        &self,
        kind: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<OpenedEvent>, LedgerError> {
        let rows = self.log.read_kind(kind, after, limit).await?;
        self.open_rows(rows).await
    }

    /// Every event of streams of type `kind` after global position `after`, in log order, read
    /// a page at a time: how a node follows a rare kind (tokens, apps) that others write. The
    /// caller moves its own position to the last event's once it has folded them.
    pub async fn read_kind_since(
        &self,
        kind: &str,
        after: u64,
    ) -> Result<Vec<OpenedEvent>, LedgerError> {
        const PAGE: u32 = 1_000;
        let mut events = Vec::new();
        let mut position = after;
        loop {
            let page = self.read_kind(kind, position, PAGE).await?;
            let Some(last) = page.last().map(|e| e.position) else {
                return Ok(events);
            };
            position = last;
            events.extend(page);
        }
    }

    /// Up to `limit` events after global position `after`.
    pub async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<OpenedEvent>, LedgerError> {
        let rows = self.log.read_all(after, limit).await?;
        self.open_rows(rows).await
    }
}
