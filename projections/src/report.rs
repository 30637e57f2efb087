//! The retention report for a data-protection officer: what was created, what is still
//! readable, what was crypto-shredded, how erasure requests went, and where keys may still
//! linger. The figures are plain data; this module only renders them, as JSON (for machines),
//! CSV (for a spreadsheet) and one self-contained HTML document (for people and for print).
//!
//! The HTML loads nothing from anywhere: no scripts, fonts, images or links. Its headline
//! figures carry `data-metric` attributes so [`html_metrics`] can check them against the JSON.

mod chart;
mod html;

pub use html::html_metrics;

use sealpost_domain::time::DAY_MS;
use sealpost_domain::Timestamp;
use serde::{Deserialize, Serialize};

/// The DPO's retention report: what was created, what is still readable, what was shredded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionReport {
    /// When the report was generated, in milliseconds since the Unix epoch.
    pub generated_at: i64,
    /// How long messages may live, in days (30).
    pub retention_days: u32,
    /// The event store the figures were read from: `"sqlite"` or `"postgres"`.
    pub store: String,
    /// What the report covers: `"all businesses"` or `"business <id>"`.
    pub scope: String,
    /// The business's name, when the report covers one business.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_name: Option<String>,
    /// Messages created, still readable, and shredded.
    pub messages: MessageCounts,
    /// Age of the oldest message whose key still exists, in milliseconds; `None` when nothing
    /// is live.
    pub oldest_live_message_age_ms: Option<i64>,
    /// Epoch keys past `start + retention` that still exist: must be 0.
    pub overdue_keys: u64,
    /// One row per UTC day that had any activity, in ascending order.
    pub days: Vec<DayRow>,
    /// Erasure requests in aggregate.
    pub erasures: ErasureSummary,
    /// Every erasure request, one row each.
    pub erasure_list: Vec<ErasureRow>,
    /// Where keys or plaintext may linger beyond the system's control, and what to do about it.
    pub residual_risks: Vec<ResidualRisk>,
    /// The signed audit-log checkpoint the figures are consistent with, if one was signed.
    pub checkpoint: Option<CheckpointRef>,
    /// The physical stores the data is in: the home store first, then each Local Storage
    /// region's own.
    #[serde(default)]
    pub stores: Vec<StoreRow>,
    /// Data of each Local Storage region the home node held in memory, as the retention duty
    /// accounted it (deployment-wide; issue 14).
    #[serde(default)]
    pub data_in_use: Vec<DataInUseRow>,
    /// Every key rotation recorded up to the checkpoint (of the scope's business), in log
    /// order (ADR 0024).
    #[serde(default)]
    pub key_rotations: Vec<KeyRotationRow>,
}

/// One key rotation, as the retention report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyRotationRow {
    /// The business whose key it is (`0`: the deployment's own).
    pub business_id: String,
    /// The region.
    pub region: String,
    /// Which key (`ledger`).
    pub key: String,
    /// The version made.
    pub version: u32,
    /// `scheduled` or `on demand`.
    pub reason: String,
    /// When (ms).
    pub at: i64,
}

/// What the home node held of one Local Storage region's data in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataInUseRow {
    /// The region.
    pub region: String,
    /// Hourly accounts recorded.
    pub periods: u64,
    /// Holds (a hand-over, a decryption, a webhook attempt, a media transfer), each of which
    /// dropped its data when done.
    pub held: u64,
    /// The longest hold, in milliseconds.
    pub longest_ms: i64,
    /// Holds that outlived the limit.
    pub over_limit: u64,
    /// The limit, in milliseconds (60 minutes).
    pub limit_ms: i64,
    /// The first account's start and the last one's end (ms), if any was recorded.
    pub from: Option<i64>,
    /// See `from`.
    pub to: Option<i64>,
}

/// One physical store, as the retention report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreRow {
    /// The Local Storage region whose own store it is; `None` for the home store.
    pub region: Option<String>,
    /// Where it is: a directory, or a Postgres database (or schema) and host.
    pub location: String,
    /// What it holds.
    pub holds: String,
    /// Which tamper-evident log covers its rows: the home store's is the one whose checkpoint
    /// the report names; a Local Storage region's store has its own (ADR 0020).
    pub audit_log: String,
    /// The checkpoint of a region's own log the report draws on (`None` for the home store:
    /// the report's `checkpoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointRef>,
}

/// Message totals. `created == live + shredded` when the books balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageCounts {
    /// Messages ever accepted or received.
    pub created: u64,
    /// Messages whose key still exists, so they are still readable.
    pub live: u64,
    /// Messages whose key has been destroyed.
    pub shredded: u64,
}

impl MessageCounts {
    /// Whether `created == live + shredded` (false, not a panic, if the sum overflows).
    pub fn reconciles(&self) -> bool {
        self.live.checked_add(self.shredded) == Some(self.created)
    }
}

/// Activity on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayRow {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Messages created that day.
    pub messages_created: u64,
    /// Messages shredded that day (their epoch key was destroyed).
    pub messages_shredded: u64,
    /// Retention-epoch keys destroyed that day.
    pub epoch_keys_destroyed: u64,
    /// Subject keys destroyed that day (expiry or erasure).
    pub subject_keys_destroyed: u64,
    /// Erasure requests completed that day.
    pub erasures: u64,
}

impl DayRow {
    /// Day `day` with nothing in it.
    pub fn quiet(day: String) -> Self {
        Self {
            day,
            messages_created: 0,
            messages_shredded: 0,
            epoch_keys_destroyed: 0,
            subject_keys_destroyed: 0,
            erasures: 0,
        }
    }
}

/// Erasure requests in aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasureSummary {
    /// Erasure requests received.
    pub requests: u64,
    /// Erasure requests completed (the subject key is destroyed).
    pub completed: u64,
    /// Median time from request to completion, in milliseconds; `None` when none completed.
    pub latency_ms_p50: Option<i64>,
    /// Longest time from request to completion, in milliseconds; `None` when none completed.
    pub latency_ms_max: Option<i64>,
}

/// One erasure request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasureRow {
    /// The subject's random identifier (not personal data).
    pub subject_id: String,
    /// The business the subject belongs to.
    pub business_id: String,
    /// When the erasure was requested, in milliseconds since the Unix epoch.
    pub requested_at: i64,
    /// When the subject key was destroyed, if it has been.
    pub completed_at: Option<i64>,
    /// `completed_at - requested_at`, if completed.
    pub latency_ms: Option<i64>,
}

/// A place where keys or plaintext may linger outside the system's control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResidualRisk {
    /// Where keys may linger (e.g. "database backups").
    pub location: String,
    /// What the risk is.
    pub statement: String,
    /// What the operator must do about it.
    pub operator_action: String,
}

/// A signed audit-log checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckpointRef {
    /// Number of audit-log entries covered.
    pub size: u64,
    /// Merkle root over those entries, hex.
    pub root: String,
    /// When the checkpoint was signed, in milliseconds since the Unix epoch.
    pub signed_at: i64,
    /// The Ed25519 public key that signed it, hex.
    pub public_key: String,
}

impl RetentionReport {
    /// Every UTC day from the first row's to the last's, with zeros where [`Self::days`] has
    /// none (a continuous date axis for people; the rows stay as recorded for machines).
    pub fn every_day(&self) -> Vec<DayRow> {
        let (Some(first), Some(last)) = (self.days.first(), self.days.last()) else {
            return Vec::new();
        };
        let (Some(from), Some(to)) = (
            Timestamp::from_utc_date(&first.day),
            Timestamp::from_utc_date(&last.day),
        ) else {
            return self.days.clone();
        };
        // Ten years of days at most; rows out of order are shown as they are.
        if to.millis() < from.millis() || to.millis() - from.millis() > 3_660 * DAY_MS {
            return self.days.clone();
        }
        let mut recorded = self.days.iter().peekable();
        let mut all = Vec::new();
        let mut at = from;
        while at.millis() <= to.millis() {
            let day = at.utc_date();
            match recorded.next_if(|d| d.day == day) {
                Some(row) => all.push(row.clone()),
                None => all.push(DayRow::quiet(day)),
            }
            at = at.plus_millis(DAY_MS);
        }
        all
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("serialising plain data cannot fail")
    }

    /// The report as CSV: `metric,value` rows, a blank line, then one row per day.
    pub fn to_csv(&self) -> String {
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let cp = self.checkpoint.as_ref();
        let metrics: [(&str, String); 16] = [
            ("generated_at", rfc3339(self.generated_at)),
            ("retention_days", self.retention_days.to_string()),
            ("store", self.store.clone()),
            ("scope", self.scope.clone()),
            ("messages_created", self.messages.created.to_string()),
            ("messages_live", self.messages.live.to_string()),
            ("messages_shredded", self.messages.shredded.to_string()),
            ("reconciles", self.messages.reconciles().to_string()),
            (
                "oldest_live_message_age_days",
                self.oldest_live_message_age_ms
                    .map(|ms| format!("{:.2}", ms as f64 / DAY_MS as f64))
                    .unwrap_or_default(),
            ),
            ("overdue_keys", self.overdue_keys.to_string()),
            ("erasure_requests", self.erasures.requests.to_string()),
            ("erasures_completed", self.erasures.completed.to_string()),
            ("erasure_latency_ms_p50", opt(self.erasures.latency_ms_p50)),
            ("erasure_latency_ms_max", opt(self.erasures.latency_ms_max)),
            (
                "checkpoint_size",
                cp.map(|c| c.size.to_string()).unwrap_or_default(),
            ),
            (
                "checkpoint_root",
                cp.map(|c| c.root.clone()).unwrap_or_default(),
            ),
        ];
        let mut out = String::from("metric,value\r\n");
        for (name, value) in &metrics {
            out.push_str(&format!("{name},{}\r\n", csv_field(value)));
        }
        out.push_str("\r\n");
        out.push_str(
            "day,messages_created,messages_shredded,epoch_keys_destroyed,\
             subject_keys_destroyed,erasures\r\n",
        );
        for d in &self.days {
            out.push_str(&format!(
                "{},{},{},{},{},{}\r\n",
                csv_field(&d.day),
                d.messages_created,
                d.messages_shredded,
                d.epoch_keys_destroyed,
                d.subject_keys_destroyed,
                d.erasures
            ));
        }
        out
    }
}

use sealpost_audit::html::escape as escape_html;

/// One CSV field, quoted per RFC 4180 when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn rfc3339(ms: i64) -> String {
    Timestamp::from_millis(ms).utc_rfc3339()
}

#[cfg(test)]
mod tests;
