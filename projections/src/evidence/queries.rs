//! The questions the fold answers: a page of the access log, statistics (small groups
//! suppressed), billing lines, and the retention report's figures with its residual risks.

use super::{day, AccessPage, BillingRow, EvidenceProjection, StatRow, PRICING_MODEL};
use crate::report::{
    DayRow, ErasureRow, ErasureSummary, MessageCounts, ResidualRisk, RetentionReport,
};
use sealpost_adapters::store::{
    AccessEntry, AccessQuery, KeyStore, MessageTotals, StatKey, StoreError,
};
use sealpost_adapters::vault::subject_key_id;
use sealpost_domain::time::DAY_MS;
use sealpost_domain::{BusinessId, Region, RetentionPolicy, SubjectId, Timestamp};
use std::collections::{BTreeMap, HashMap};

impl EvidenceProjection<'_> {
    /// Access entries matching `q`, one page.
    pub async fn access(&self, q: &AccessQuery) -> Result<AccessPage, StoreError> {
        let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
        // A page ends only between log positions: the allowed and denied entries of one
        // pipeline count share a position, and the cursor is a position. Two more rows than
        // the page tell both whether one of them belongs to it and whether a next page exists.
        let rows = self.rows.evidence_access(q, limit + 2).await?;
        Ok(page(rows, limit))
    }

    /// Statistics groups (of one business, when given); groups with fewer than `min_group`
    /// distinct consumers have their count suppressed.
    pub async fn statistics(
        &self,
        business: Option<&BusinessId>,
        min_group: u32,
    ) -> Result<Vec<StatRow>, StoreError> {
        let scope = business.map(BusinessId::as_str);
        let mut groups = self.rows.evidence_stats(scope).await?;
        // A Local Storage region's consumers are counted in its own store only (ADR 0021).
        let mut regional: HashMap<StatKey, u64> = HashMap::new();
        for (_, rows) in self.regions().await? {
            for (k, g) in rows.evidence_stats(scope).await? {
                *regional.entry(k).or_default() += g.subjects;
            }
        }
        for (k, g) in &mut groups {
            g.subjects += regional.get(k).copied().unwrap_or(0);
        }
        Ok(groups
            .into_iter()
            .map(|(k, g)| StatRow {
                business_id: k.business_id,
                phone_number_id: k.phone_number_id,
                day: k.day,
                kind: k.kind,
                metric: k.metric,
                count: (g.subjects >= u64::from(min_group)).then_some(g.count),
            })
            .collect())
    }

    /// Billing lines (of one business, when given).
    pub async fn billing(
        &self,
        business: Option<&BusinessId>,
    ) -> Result<Vec<BillingRow>, StoreError> {
        let lines = self
            .rows
            .evidence_billing(business.map(BusinessId::as_str))
            .await?;
        Ok(lines
            .into_iter()
            .map(
                |((business_id, month, category), (billable, free))| BillingRow {
                    business_id,
                    month,
                    category,
                    pricing_model: PRICING_MODEL.to_owned(),
                    billable,
                    free,
                },
            )
            .collect())
    }

    /// The retention report's figures at `now` (of one business, when given). Overdue keys and
    /// erasure completion times come from the key store; the caller adds the checkpoint.
    pub async fn retention_report(
        &self,
        keys: &dyn KeyStore,
        policy: RetentionPolicy,
        now: Timestamp,
        store: &str,
        business: Option<&BusinessId>,
    ) -> Result<RetentionReport, StoreError> {
        let scope = business.map(BusinessId::as_str);
        let totals = self.totals(scope).await?;
        let mut days: BTreeMap<String, DayRow> = BTreeMap::new();
        for (d, n) in &totals.created_per_day {
            day_row(&mut days, day(d * DAY_MS)).messages_created += n;
        }
        for (d, n) in &totals.shredded_per_day {
            day_row(&mut days, day(d * DAY_MS)).messages_shredded += n;
        }
        if business.is_none() {
            // Key destructions are per business too, but counted from the whole log only.
            for (d, k) in self.rows.evidence_days().await? {
                let row = day_row(&mut days, d);
                row.epoch_keys_destroyed = k.epoch_keys;
                row.subject_keys_destroyed = k.subject_keys;
                row.erasures = k.erasures;
            }
        }
        let up_to = policy.last_expired_epoch(now).index();
        let overdue = keys
            .expired_epochs(up_to, 10_000)
            .await?
            .into_iter()
            .filter(|k| business.is_none_or(|b| b.as_str() == k.business_id))
            .count() as u64;
        let mut erasure_list = Vec::new();
        for e in self.rows.evidence_erasures(scope).await? {
            let (Ok(region), Ok(subject)) =
                (e.region.parse::<Region>(), SubjectId::parse(&e.subject_id))
            else {
                return Err(StoreError::Invalid("an erasure row names no subject"));
            };
            let key = subject_key_id(&e.business_id, region, &subject);
            let completed_at = keys.destroyed_at(&e.business_id, &key).await?;
            erasure_list.push(ErasureRow {
                subject_id: e.subject_id,
                business_id: e.business_id,
                requested_at: e.requested_at,
                completed_at,
                latency_ms: completed_at.map(|c| (c - e.requested_at).max(0)),
            });
        }
        let mut latencies: Vec<i64> = erasure_list.iter().filter_map(|e| e.latency_ms).collect();
        latencies.sort_unstable();
        let erasures = ErasureSummary {
            requests: erasure_list.len() as u64,
            completed: latencies.len() as u64,
            latency_ms_p50: latencies
                .get(latencies.len().saturating_sub(1) / 2)
                .copied(),
            latency_ms_max: latencies.last().copied(),
        };
        Ok(RetentionReport {
            generated_at: now.millis(),
            retention_days: (policy.retention_ms / DAY_MS) as u32,
            store: store.to_owned(),
            scope: business.map_or_else(
                || "all businesses".to_owned(),
                |b| format!("business {}", b.as_str()),
            ),
            business_name: None,
            messages: MessageCounts {
                created: totals.created,
                live: totals.created - totals.shredded,
                shredded: totals.shredded,
            },
            oldest_live_message_age_ms: totals.oldest_live.map(|o| (now.millis() - o).max(0)),
            overdue_keys: overdue,
            stores: Vec::new(),
            data_in_use: Vec::new(),
            key_rotations: Vec::new(),
            days: days.into_values().collect(),
            erasures,
            erasure_list,
            residual_risks: residual_risks(store),
            checkpoint: None,
        })
    }
}

impl EvidenceProjection<'_> {
    /// The message totals: a Local Storage region's messages from its own store (where their
    /// consumers' shredding is known), every other region's from the home store.
    async fn totals(&self, scope: Option<&str>) -> Result<MessageTotals, StoreError> {
        let local: Vec<&str> = match self.store.region_stores() {
            Some(_) => Region::ALL
                .iter()
                .filter(|r| r.is_local_storage())
                .map(|r| r.code())
                .collect(),
            None => Vec::new(),
        };
        let mut totals = self.rows.evidence_totals(scope, &local).await?;
        for (_, rows) in self.regions().await? {
            let more = rows.evidence_totals(scope, &[]).await?;
            totals.created += more.created;
            totals.shredded += more.shredded;
            totals.oldest_live = match (totals.oldest_live, more.oldest_live) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            totals.created_per_day = add_days(&totals.created_per_day, &more.created_per_day);
            totals.shredded_per_day = add_days(&totals.shredded_per_day, &more.shredded_per_day);
        }
        Ok(totals)
    }
}

/// Two per-day counts added, in day order.
fn add_days(a: &[(i64, u64)], b: &[(i64, u64)]) -> Vec<(i64, u64)> {
    let mut sum: BTreeMap<i64, u64> = BTreeMap::new();
    for (d, n) in a.iter().chain(b) {
        *sum.entry(*d).or_default() += n;
    }
    sum.into_iter().collect()
}

/// The report's row of day `d`, added if absent.
fn day_row(days: &mut BTreeMap<String, DayRow>, d: String) -> &mut DayRow {
    days.entry(d.clone()).or_insert_with(|| DayRow::quiet(d))
}

/// The page of `limit` entries that `rows` (matching entries in log order, at least two more
/// than `limit` if there are that many) begins with: it may run over by the entries that share
/// the last one's position, and names the next page's cursor if more follow.
pub(super) fn page(rows: Vec<AccessEntry>, limit: usize) -> AccessPage {
    let mut entries: Vec<AccessEntry> = Vec::new();
    let mut next = None;
    for e in rows {
        if let Some(last) = entries.last().filter(|_| entries.len() >= limit) {
            if last.position != e.position {
                next = Some(last.position);
                break;
            }
        }
        entries.push(e);
    }
    AccessPage { entries, next }
}

/// Where a destroyed key may still linger on this backend, and what the operator must do.
pub fn residual_risks(store: &str) -> Vec<ResidualRisk> {
    let r = |location: &str, statement: &str, action: &str| ResidualRisk {
        location: location.to_owned(),
        statement: statement.to_owned(),
        operator_action: action.to_owned(),
    };
    let mut risks = if store.starts_with("postgres") {
        vec![
            r("Postgres key tables (the home database and each Local Storage region's)", "A destroyed key is deleted at once; its dead tuple leaves the table files at the next VACUUM FULL of the key and index tables, within about a second (at the next start if the process died first).", "None; the freed file blocks are covered by full-disk encryption."),
            r("Postgres WAL and WAL archives", "A destroyed key's wrapped bytes stay in WAL segments until they are recycled, and in any WAL archive.", "Keep WAL archives no longer than the retention period (30 days) or encrypt them under a key you rotate and destroy."),
            r("Postgres replicas", "Streaming replicas replay the deletion and their own VACUUM; a lagging or detached replica keeps the key.", "Monitor replica lag; rebuild or destroy detached replicas."),
            r("Database backups", "A base backup taken before a destruction, of the home database or a region's, holds the key until the backup is deleted.", "Expire backups within 30 days, or keep the root key of each backup period separately and destroy it."),
        ]
    } else {
        vec![
            r("SQLite keys.db (and each Local Storage region's regions/<CODE>/keys.db)", "secure_delete overwrites deleted key rows and the WAL is checkpointed (TRUNCATE) within about a second of a destruction (at the next start if the process died first).", "None while the data directory is on an ordinary file system; on copy-on-write or journaling storage old blocks may survive: use full-disk encryption."),
            r("Copies of the data directory", "A copy or snapshot of keys.db or a region's regions/<CODE>/keys.db taken before a destruction holds the key.", "Expire backups and snapshots within 30 days."),
        ]
    };
    risks.push(r("Root key", "Wrapped keys are useless without the region root key; a root key copied elsewhere with an old key table copy re-opens it.", "Keep root keys in a KMS or off the data host; never back them up beside the data."));
    risks
}
