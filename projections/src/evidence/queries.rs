//! The questions the fold answers: a page of the access log, statistics (small groups
//! suppressed), billing lines, and the retention report's figures with its residual risks.

use super::{
    day, AccessEntry, AccessPage, AccessQuery, BillingRow, DayFacts, EvidenceView, StatRow,
    PRICING_MODEL,
};
use crate::report::{
    DayRow, ErasureRow, ErasureSummary, MessageCounts, ResidualRisk, RetentionReport,
};
use sealpost_adapters::store::{KeyStore, StoreError};
use sealpost_adapters::vault::subject_key_id;
use sealpost_domain::{BusinessId, RetentionPolicy, Timestamp};
use std::collections::BTreeMap;

impl EvidenceView {
    /// Access entries matching `q`, one page.
    pub fn access(&self, q: &AccessQuery) -> AccessPage {
        let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
        let after = q.after.unwrap_or(0);
        let start = self.access.partition_point(|e| e.position <= after);
        let mut entries: Vec<AccessEntry> = Vec::new();
        let mut next = None;
        for e in &self.access[start..] {
            let keep = q.principal.as_ref().is_none_or(|p| *p == e.principal)
                && q.principal_kind.is_none_or(|k| k == e.principal_kind)
                && q.category.is_none_or(|c| c == e.category)
                && q.purpose.is_none_or(|p| p == e.purpose)
                && q.decision.as_ref().is_none_or(|d| *d == e.decision)
                && q.object
                    .as_ref()
                    .is_none_or(|o| e.object.as_ref() == Some(o))
                && q.business_id
                    .as_ref()
                    .is_none_or(|b| e.business_id.as_ref() == Some(b))
                && q.from.is_none_or(|f| e.at >= f)
                && q.to.is_none_or(|t| e.at < t);
            if !keep {
                continue;
            }
            // A page ends only between log positions: the allowed and denied entries of one
            // pipeline count share a position, and the cursor is a position.
            if let Some(last) = entries.last().filter(|_| entries.len() >= limit) {
                if last.position != e.position {
                    next = Some(last.position);
                    break;
                }
            }
            entries.push(e.clone());
        }
        AccessPage { entries, next }
    }

    /// Statistics groups (of one business, when given); groups with fewer than `min_group`
    /// distinct consumers have their count suppressed.
    pub fn statistics(&self, business: Option<&BusinessId>, min_group: u32) -> Vec<StatRow> {
        self.stats
            .iter()
            .filter(|(k, _)| business.is_none_or(|b| b.as_str() == k.business))
            .map(|(k, g)| StatRow {
                business_id: k.business.clone(),
                phone_number_id: k.phone.clone(),
                day: k.day.clone(),
                kind: k.kind,
                metric: k.metric.clone(),
                count: (g.subjects.len() as u64 >= u64::from(min_group)).then_some(g.count),
            })
            .collect()
    }

    /// Billing lines (of one business, when given).
    pub fn billing(&self, business: Option<&BusinessId>) -> Vec<BillingRow> {
        self.billing
            .iter()
            .filter(|((b, _, _), _)| business.is_none_or(|x| x.as_str() == b))
            .map(|((b, month, category), (billable, free))| BillingRow {
                business_id: b.clone(),
                month: month.clone(),
                category: *category,
                pricing_model: PRICING_MODEL.to_owned(),
                billable: *billable,
                free: *free,
            })
            .collect()
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
        let mine = |b: &BusinessId| business.is_none_or(|x| x == b);
        let mut counts = MessageCounts {
            created: 0,
            live: 0,
            shredded: 0,
        };
        let mut oldest: Option<i64> = None;
        let mut days: BTreeMap<String, DayFacts> = BTreeMap::new();
        for f in self.facts.iter().filter(|f| mine(&f.business)) {
            counts.created += 1;
            days.entry(day(f.created_at)).or_default().created += 1;
            match f.shredded_at {
                Some(at) => {
                    counts.shredded += 1;
                    days.entry(day(at)).or_default().shredded += 1;
                }
                None => {
                    counts.live += 1;
                    oldest = Some(oldest.map_or(f.created_at, |o| o.min(f.created_at)));
                }
            }
        }
        if business.is_none() {
            // Key destructions are per business too, but counted from the whole log only.
            for (d, facts) in &self.days {
                let row = days.entry(d.clone()).or_default();
                row.epoch_keys = facts.epoch_keys;
                row.subject_keys = facts.subject_keys;
                row.erasures = facts.erasures;
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
        for e in self.erasures.iter().filter(|e| mine(&e.business)) {
            let key = subject_key_id(e.business.as_str(), e.region, &e.subject);
            let completed_at = keys.destroyed_at(&key).await?;
            erasure_list.push(ErasureRow {
                subject_id: e.subject.as_str().to_owned(),
                business_id: e.business.as_str().to_owned(),
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
            retention_days: (policy.retention_ms / sealpost_domain::time::DAY_MS) as u32,
            store: store.to_owned(),
            scope: business.map_or_else(
                || "all businesses".to_owned(),
                |b| format!("business {}", b.as_str()),
            ),
            messages: counts,
            oldest_live_message_age_ms: oldest.map(|o| (now.millis() - o).max(0)),
            overdue_keys: overdue,
            days: days
                .into_iter()
                .map(|(day, f)| DayRow {
                    day,
                    messages_created: f.created,
                    messages_shredded: f.shredded,
                    epoch_keys_destroyed: f.epoch_keys,
                    subject_keys_destroyed: f.subject_keys,
                    erasures: f.erasures,
                })
                .collect(),
            erasures,
            erasure_list,
            residual_risks: residual_risks(store),
            checkpoint: None,
        })
    }
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
            r("Postgres key table", "A destroyed key is deleted at once; its dead tuple leaves the table files at the next VACUUM FULL of the key and index tables, within about a second (at the next start if the process died first).", "None; the freed file blocks are covered by full-disk encryption."),
            r("Postgres WAL and WAL archives", "A destroyed key's wrapped bytes stay in WAL segments until they are recycled, and in any WAL archive.", "Keep WAL archives no longer than the retention period (30 days) or encrypt them under a key you rotate and destroy."),
            r("Postgres replicas", "Streaming replicas replay the deletion and their own VACUUM; a lagging or detached replica keeps the key.", "Monitor replica lag; rebuild or destroy detached replicas."),
            r("Database backups", "A base backup taken before a destruction holds the key until the backup is deleted.", "Expire backups within 30 days, or keep the root key of each backup period separately and destroy it."),
        ]
    } else {
        vec![
            r("SQLite keys.db", "secure_delete overwrites deleted key rows and the WAL is checkpointed (TRUNCATE) within about a second of a destruction (at the next start if the process died first).", "None while the data directory is on an ordinary file system; on copy-on-write or journaling storage old blocks may survive: use full-disk encryption."),
            r("Copies of the data directory", "A copy or snapshot of keys.db taken before a destruction holds the key.", "Expire backups and snapshots within 30 days."),
        ]
    };
    risks.push(r("Root key", "Wrapped keys are useless without the region root key; a root key copied elsewhere with an old key table copy re-opens it.", "Keep root keys in a KMS or off the data host; never back them up beside the data."));
    risks
}
