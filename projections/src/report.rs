//! The retention report for a data-protection officer: what was created, what is still
//! readable, what was crypto-shredded, how erasure requests went, and where keys may still
//! linger. The figures are plain data; this module only renders them, as JSON (for machines),
//! CSV (for a spreadsheet) and one self-contained HTML document (for people and for print).
//!
//! The HTML loads nothing from anywhere: no scripts, fonts, images or links. Its headline
//! figures carry `data-metric` attributes so [`html_metrics`] can check them against the JSON.

use sealpost_domain::time::DAY_MS;
use sealpost_domain::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The DPO's retention report: what was created, what is still readable, what was shredded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// When the report was generated, in milliseconds since the Unix epoch.
    pub generated_at: i64,
    /// How long messages may live, in days (30).
    pub retention_days: u32,
    /// The event store the figures were read from: `"sqlite"` or `"postgres"`.
    pub store: String,
    /// What the report covers: `"all businesses"` or `"business <id>"`.
    pub scope: String,
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
}

/// Message totals. `created == live + shredded` when the books balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Erasure requests in aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Whether the oldest live message is within the retention period (true if none is live).
    fn oldest_within_retention(&self) -> bool {
        let limit = i64::from(self.retention_days).saturating_mul(DAY_MS);
        self.oldest_live_message_age_ms
            .is_none_or(|age| age <= limit)
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

    /// The report as one self-contained HTML5 document (inline CSS and SVG, nothing loaded).
    pub fn to_html(&self) -> String {
        let e = escape_html;
        let mut h = String::with_capacity(32 * 1024);
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        let (scope, store, at) = (e(&self.scope), e(&self.store), rfc3339(self.generated_at));
        h.push_str(&format!("<title>Retention report — {scope}</title>\n"));
        h.push_str(&format!(
            "<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        ));
        let days = self.retention_days;
        h.push_str(&format!(
            "<header>\n<h1>Retention report</h1>\n\
             <p class=\"meta\">Scope: <strong>{scope}</strong> · Store: <strong>{store}</strong> · \
             Generated: <strong>{at}</strong> · Retention: <strong>{days} days</strong></p>\n</header>\n"
        ));

        // Summary and checks.
        let m = &self.messages;
        let oldest = match self.oldest_live_message_age_ms {
            Some(ms) => format!(
                "<span data-metric=\"oldest_live_message_age_ms\">{ms}</span> ms ({})",
                duration(ms)
            ),
            None => "none — no message is live".to_owned(),
        };
        let checkpoint = match &self.checkpoint {
            Some(c) => format!(
                "<span data-metric=\"checkpoint_size\">{}</span> entries",
                c.size
            ),
            None => "none signed".to_owned(),
        };
        let rows: [(&str, String); 7] = [
            ("Messages created", metric("messages_created", m.created)),
            ("Messages live (readable)", metric("messages_live", m.live)),
            ("Messages shredded", metric("messages_shredded", m.shredded)),
            ("Oldest live message", oldest),
            (
                "Overdue epoch keys",
                metric("overdue_keys", self.overdue_keys),
            ),
            (
                "Erasure requests",
                format!(
                    "{} ({} completed)",
                    metric("erasure_requests", self.erasures.requests),
                    self.erasures.completed
                ),
            ),
            ("Audit-log checkpoint", checkpoint),
        ];
        h.push_str("<section>\n<h2>Summary</h2>\n");
        h.push_str(&kv_table("summary", &rows));
        let checks = [
            (
                "Counts reconcile: created = live + shredded".to_owned(),
                m.reconciles(),
            ),
            (
                format!("Oldest live message is at most {days} days old"),
                self.oldest_within_retention(),
            ),
            ("No overdue epoch keys".to_owned(), self.overdue_keys == 0),
        ];
        let badge = [
            "<span class=\"badge fail\">FAIL</span>",
            "<span class=\"badge pass\">PASS</span>",
        ];
        let checks = checks
            .into_iter()
            .map(|(label, ok)| vec![label, badge[usize::from(ok)].to_owned()]);
        h.push_str(&table("checks", "Check|Result", 2, checks));
        h.push_str("</section>\n");

        // Charts.
        let labels: Vec<&str> = self.days.iter().map(|d| d.day.as_str()).collect();
        let col = |f: fn(&DayRow) -> u64| self.days.iter().map(f).collect::<Vec<_>>();
        h.push_str("<section>\n<h2>Messages per day</h2>\n<figure>\n");
        h.push_str(&bar_chart(
            "chart-messages",
            "Messages created and shredded per UTC day",
            &labels,
            &[
                ("created", "#2b6cb0", col(|d| d.messages_created)),
                ("shredded", "#c05621", col(|d| d.messages_shredded)),
            ],
            false,
        ));
        h.push_str("</figure>\n</section>\n<section>\n<h2>Keys destroyed per day</h2>\n<figure>\n");
        h.push_str(&bar_chart(
            "chart-keys",
            "Keys destroyed per UTC day: epoch keys stacked with subject keys",
            &labels,
            &[
                ("epoch keys", "#2f855a", col(|d| d.epoch_keys_destroyed)),
                ("subject keys", "#805ad5", col(|d| d.subject_keys_destroyed)),
            ],
            true,
        ));
        h.push_str("</figure>\n</section>\n");

        // Daily table.
        h.push_str("<section>\n<h2>Daily activity (UTC)</h2>\n");
        if self.days.is_empty() {
            h.push_str("<p class=\"note\">No activity in the period.</p>\n");
        }
        let heads = "Day|Messages created|Messages shredded|Epoch keys destroyed|\
                     Subject keys destroyed|Erasures";
        let rows = self.days.iter().map(|d| {
            let n = [
                d.messages_created,
                d.messages_shredded,
                d.epoch_keys_destroyed,
            ];
            let n = n.into_iter().chain([d.subject_keys_destroyed, d.erasures]);
            std::iter::once(e(&d.day))
                .chain(n.map(|n| n.to_string()))
                .collect()
        });
        h.push_str(&table("days", heads, 1, rows));
        h.push_str("</section>\n");

        // Erasures.
        let er = &self.erasures;
        let lat = |v: Option<i64>| v.map_or_else(|| "—".to_owned(), duration);
        h.push_str(&format!(
            "<section>\n<h2>Erasure requests</h2>\n\
             <p>{} requested, {} completed; latency median {}, maximum {}.</p>\n",
            er.requests,
            er.completed,
            lat(er.latency_ms_p50),
            lat(er.latency_ms_max)
        ));
        if self.erasure_list.is_empty() {
            h.push_str("<p class=\"note\">No erasure requests.</p>\n");
        }
        let heads = "Subject|Business|Requested|Completed|Latency";
        let rows = self.erasure_list.iter().map(|r| {
            let done = r.completed_at.map_or_else(|| "pending".to_owned(), rfc3339);
            let [subject, business] = [&r.subject_id, &r.business_id].map(|id| code(&e(id)));
            vec![
                subject,
                business,
                rfc3339(r.requested_at),
                done,
                lat(r.latency_ms),
            ]
        });
        h.push_str(&table("erasures", heads, 4, rows));
        h.push_str("</section>\n");

        // Residual risks.
        h.push_str("<section>\n<h2>Residual risks</h2>\n");
        if self.residual_risks.is_empty() {
            h.push_str("<p class=\"note\">No residual risks recorded.</p>\n");
        }
        let heads = "Where keys may linger|Statement|What the operator must do";
        let rows = self
            .residual_risks
            .iter()
            .map(|r| vec![e(&r.location), e(&r.statement), e(&r.operator_action)]);
        h.push_str(&table("risks", heads, 3, rows));
        h.push_str("</section>\n");

        // Checkpoint.
        h.push_str("<section>\n<h2>Audit-log checkpoint</h2>\n");
        match &self.checkpoint {
            Some(c) => {
                let rows = [
                    ("Size", format!("{} entries", c.size)),
                    ("Root", code(&e(&c.root))),
                    ("Signed at", rfc3339(c.signed_at)),
                    ("Public key (Ed25519)", code(&e(&c.public_key))),
                ];
                h.push_str(&kv_table("checkpoint", &rows));
                h.push_str(
                    "<p class=\"note\">The figures above are consistent with this signed \
                     checkpoint of the audit log.</p>\n",
                );
            }
            None => h.push_str(
                "<p class=\"note\"><strong>No checkpoint was signed:</strong> these figures are \
                 not anchored to a signed state of the audit log.</p>\n",
            ),
        }
        h.push_str("</section>\n</main>\n</body>\n</html>\n");
        h
    }
}

/// The `data-metric` values of a report rendered by [`RetentionReport::to_html`], by name:
/// the trimmed text following each `data-metric="name"` element's opening tag.
pub fn html_metrics(html: &str) -> BTreeMap<String, String> {
    const ATTR: &str = "data-metric=\"";
    let mut out = BTreeMap::new();
    let mut rest = html;
    while let Some(start) = rest.find(ATTR) {
        rest = &rest[start + ATTR.len()..];
        let Some(name_end) = rest.find('"') else {
            break;
        };
        let name = rest[..name_end].to_owned();
        rest = &rest[name_end..];
        let Some(gt) = rest.find('>') else { break };
        rest = &rest[gt + 1..];
        let text_end = rest.find('<').unwrap_or(rest.len());
        out.insert(name, rest[..text_end].trim().to_owned());
        rest = &rest[text_end..];
    }
    out
}

/// A table with a header row (`heads` separated by `|`); columns from `num_from` on are
/// right-aligned numbers. Cells are HTML the caller has escaped. Nothing when there are no rows.
fn table(
    class: &str,
    heads: &str,
    num_from: usize,
    rows: impl Iterator<Item = Vec<String>>,
) -> String {
    let cls = |i: usize| if i >= num_from { " class=\"n\"" } else { "" };
    let mut body = String::new();
    for row in rows {
        body.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            body.push_str(&format!("<td{}>{cell}</td>", cls(i)));
        }
        body.push_str("</tr>\n");
    }
    if body.is_empty() {
        return body;
    }
    let head: String = heads
        .split('|')
        .enumerate()
        .map(|(i, t)| format!("<th{}>{t}</th>", cls(i)))
        .collect();
    format!(
        "<table class=\"{class}\">\n<thead><tr>{head}</tr></thead>\n\
         <tbody>\n{body}</tbody>\n</table>\n"
    )
}

/// A two-column table of row headings and (already escaped) values.
fn kv_table(class: &str, rows: &[(&str, String)]) -> String {
    let rows: String = rows
        .iter()
        .map(|(k, v)| format!("<tr><th scope=\"row\">{k}</th><td>{v}</td></tr>\n"))
        .collect();
    format!("<table class=\"{class}\">\n<tbody>\n{rows}</tbody>\n</table>\n")
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

/// Escaped text in a `<code>` element.
fn code(escaped: &str) -> String {
    format!("<code>{escaped}</code>")
}

/// A headline figure whose text is exactly the integer, for [`html_metrics`].
fn metric(name: &str, value: u64) -> String {
    format!("<span data-metric=\"{name}\">{value}</span>")
}

/// A duration for people: "850 ms", "12.5 s", "3.2 min", "4.1 h", "29.96 days".
fn duration(ms: i64) -> String {
    let f = ms as f64;
    match ms.unsigned_abs() {
        a if a < 1_000 => format!("{ms} ms"),
        a if a < 60_000 => format!("{:.1} s", f / 1e3),
        a if a < 3_600_000 => format!("{:.1} min", f / 6e4),
        a if a < 86_400_000 => format!("{:.1} h", f / 3.6e6),
        _ => format!("{:.2} days", f / DAY_MS as f64),
    }
}

/// The smallest 1/2/5×10ⁿ step such that four steps cover `max`.
fn axis_step(max: u64) -> u64 {
    let raw = max.div_ceil(4).max(1);
    let mut pow = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = pow.saturating_mul(m);
            if step >= raw {
                return step;
            }
        }
        pow = pow.saturating_mul(10);
    }
}

/// A hand-drawn SVG bar chart, one slot per day: the series side by side, or stacked.
fn bar_chart(
    id: &str,
    title: &str,
    days: &[&str],
    series: &[(&str, &str, Vec<u64>)],
    stacked: bool,
) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 280.0, 56.0, 12.0, 34.0, 40.0);
    let (plot_w, plot_h) = (w - left - right, h - top - bottom);
    let value = |s: usize, i: usize| series[s].2.get(i).copied().unwrap_or(0);
    let max = (0..days.len())
        .map(|i| {
            let vals = (0..series.len()).map(|s| value(s, i));
            if stacked {
                vals.fold(0u64, u64::saturating_add)
            } else {
                vals.max().unwrap_or(0)
            }
        })
        .max()
        .unwrap_or(0);
    let step = axis_step(max);
    let y_max = step.saturating_mul(4) as f64;
    let y = |v: f64| top + plot_h - v / y_max * plot_h;

    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"{id}-title\">\n\
         <title id=\"{id}-title\">{}</title>\n",
        escape_html(title)
    );
    for (j, (name, colour, _)) in series.iter().enumerate() {
        let x = left + j as f64 * 150.0;
        s.push_str(&format!(
            "<rect x=\"{x}\" y=\"10\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"20\">{}</text>\n",
            x + 18.0,
            escape_html(name)
        ));
    }
    for k in 0..=4u64 {
        let v = step.saturating_mul(k);
        let gy = y(v as f64);
        s.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\" stroke=\"{}\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>\n",
            w - right,
            if k == 0 { "#333" } else { "#ddd" },
            left - 6.0,
            gy + 4.0
        ));
    }
    if days.is_empty() {
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">No activity in the period</text>\n",
            left + plot_w / 2.0,
            top + plot_h / 2.0
        ));
    }
    let slot = plot_w / days.len().max(1) as f64;
    let group = slot * 0.8;
    let per_slot = if stacked { 1 } else { series.len().max(1) };
    let bar_w = group / per_slot as f64;
    let every = days.len().div_ceil((plot_w / 48.0) as usize).max(1);
    for (i, day) in days.iter().enumerate() {
        let x0 = left + i as f64 * slot + slot * 0.1;
        let mut base = 0u64;
        for (j, (name, colour, _)) in series.iter().enumerate() {
            let v = value(j, i);
            if v == 0 {
                continue;
            }
            let x = x0 + if stacked { 0.0 } else { j as f64 * bar_w };
            let lo = if stacked { base } else { 0 };
            let hi = lo.saturating_add(v);
            base = hi;
            s.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" \
                 fill=\"{colour}\">\
                 <title>{}: {v} {}</title></rect>\n",
                y(hi as f64),
                y(lo as f64) - y(hi as f64),
                escape_html(day),
                escape_html(name)
            ));
        }
        if i % every == 0 {
            // "MM-DD" keeps the labels short; the table below has the full dates.
            let label = day.get(5..).filter(|l| !l.is_empty()).unwrap_or(day);
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                x0 + group / 2.0,
                top + plot_h + 16.0,
                escape_html(label)
            ));
        }
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">UTC day</text>\n</svg>\n",
        left + plot_w / 2.0,
        h - 4.0
    ));
    s
}

const STYLE: &str = r#"
:root{color-scheme:light}
body{margin:0;background:#fff;color:#111;line-height:1.45;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
main{max-width:960px;margin:0 auto;padding:24px}
h1{font-size:1.8rem;margin:0 0 .25rem}
h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid #ccc;padding-bottom:.2rem}
.meta,.note{color:#444}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#f2f2f2} .n{text-align:right;font-variant-numeric:tabular-nums}
.summary th{width:40%;font-weight:500} .summary td{font-weight:600}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:700;font-size:.8rem}
.pass{background:#e6f4ea;color:#1e6b34;border:1px solid #1e6b34}
.fail{background:#fdecea;color:#a4161a;border:1px solid #a4161a}
figure{margin:0} svg{display:block;width:100%;height:auto} svg text{font-size:11px;fill:#222}
@media print{@page{size:A4;margin:15mm} main{max-width:none;padding:0}
body{background:#fff;color:#000;font-size:10pt} .meta,.note{color:#000}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
table,figure,svg{break-inside:avoid;page-break-inside:avoid}
h2{break-after:avoid;page-break-after:avoid}}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_800_000_000_000;

    fn sample() -> RetentionReport {
        let days = (0..40i64)
            .map(|i| {
                let n = u64::try_from(i).expect("small");
                DayRow {
                    day: Timestamp::from_millis(START + i * DAY_MS).utc_date(),
                    messages_created: 100 + n * 7 % 23,
                    messages_shredded: if i >= 30 { 90 + n % 11 } else { 0 },
                    epoch_keys_destroyed: if i >= 30 { 24 } else { 0 },
                    subject_keys_destroyed: n % 5,
                    erasures: u64::from(i % 9 == 0),
                }
            })
            .collect();
        RetentionReport {
            generated_at: START + 40 * DAY_MS,
            retention_days: 30,
            store: "sqlite".to_owned(),
            scope: "business \"acme, <b>inc</b>\"".to_owned(),
            messages: MessageCounts {
                created: 4_321,
                live: 3_300,
                shredded: 1_021,
            },
            oldest_live_message_age_ms: Some(29 * DAY_MS + 3_600_000),
            overdue_keys: 0,
            days,
            erasures: ErasureSummary {
                requests: 5,
                completed: 4,
                latency_ms_p50: Some(61_000),
                latency_ms_max: Some(3_700_000),
            },
            erasure_list: vec![ErasureRow {
                subject_id: "sub_7f3a".to_owned(),
                business_id: "biz_1".to_owned(),
                requested_at: START,
                completed_at: Some(START + 61_000),
                latency_ms: Some(61_000),
            }],
            residual_risks: vec![ResidualRisk {
                location: "Database backups".to_owned(),
                statement: "Backups taken before a key was destroyed still hold it.".to_owned(),
                operator_action: "Keep backups for at most 30 days & encrypt them.".to_owned(),
            }],
            checkpoint: Some(CheckpointRef {
                size: 98_765,
                root: "ab".repeat(32),
                signed_at: START + 40 * DAY_MS - 5_000,
                public_key: "cd".repeat(32),
            }),
        }
    }

    #[test]
    fn json_round_trips() {
        let r = sample();
        let back: RetentionReport =
            serde_json::from_str(&r.to_json()).expect("the report's own JSON parses");
        assert_eq!(back, r);
        assert_eq!(back.days.len(), 40);
    }

    #[test]
    fn csv_has_sections_and_escapes_fields() {
        let csv = sample().to_csv();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], "metric,value");
        assert_eq!(lines[1], "generated_at,2027-02-24T08:00:00Z");
        assert!(lines.contains(&"scope,\"business \"\"acme, <b>inc</b>\"\"\""));
        assert!(lines.contains(&"reconciles,true"));
        assert!(lines.contains(&"oldest_live_message_age_days,29.04"));
        assert!(lines.contains(&"checkpoint_size,98765"));
        let blank = lines
            .iter()
            .position(|l| l.is_empty())
            .expect("a blank line");
        assert_eq!(blank, 17, "16 metric rows after the header");
        assert_eq!(
            lines[blank + 1],
            "day,messages_created,messages_shredded,epoch_keys_destroyed,\
             subject_keys_destroyed,erasures"
        );
        assert!(lines[blank + 2].starts_with("2027-01-15,100,0,0,0,1"));
        assert_eq!(
            lines.len(),
            blank + 2 + 40 + 1,
            "40 days and a final newline"
        );
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn html_is_self_contained_with_two_charts_and_escapes() {
        let html = sample().to_html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<svg").count(), 2);
        assert_eq!(html.matches("role=\"img\"").count(), 2);
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("<img"));
        assert!(html.contains("@media print") && html.contains("print-color-adjust:exact"));
        assert!(html.contains("business &quot;acme, &lt;b&gt;inc&lt;/b&gt;&quot;"));
        assert!(!html.contains("<b>inc"));
        assert!(html.contains("&amp; encrypt them"));
        assert_eq!(html.matches("class=\"badge pass\"").count(), 3);
        assert!(
            html.contains("2027-02-23"),
            "the day table lists the last day"
        );
    }

    #[test]
    fn html_metrics_agree_with_the_struct() {
        let r = sample();
        let cp = r.checkpoint.as_ref().expect("sample has a checkpoint");
        let oldest = r
            .oldest_live_message_age_ms
            .expect("sample has live messages");
        let expected: BTreeMap<String, String> = [
            ("messages_created", r.messages.created.to_string()),
            ("messages_live", r.messages.live.to_string()),
            ("messages_shredded", r.messages.shredded.to_string()),
            ("overdue_keys", r.overdue_keys.to_string()),
            ("oldest_live_message_age_ms", oldest.to_string()),
            ("erasure_requests", r.erasures.requests.to_string()),
            ("checkpoint_size", cp.size.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(html_metrics(&r.to_html()), expected);
    }

    #[test]
    fn empty_report_renders_notes_and_failing_checks() {
        let mut r = sample();
        r.days.clear();
        r.erasure_list.clear();
        r.checkpoint = None;
        r.oldest_live_message_age_ms = Some(31 * DAY_MS);
        r.overdue_keys = 2;
        let html = r.to_html();
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("No erasure requests"));
        assert!(html.contains("No checkpoint was signed"));
        assert_eq!(html.matches("class=\"badge fail\"").count(), 2);
        assert!(!html_metrics(&html).contains_key("checkpoint_size"));
    }

    #[test]
    fn reconciles_only_when_counts_add_up() {
        let c = |created, live, shredded| MessageCounts {
            created,
            live,
            shredded,
        };
        assert!(c(10, 4, 6).reconciles());
        assert!(c(0, 0, 0).reconciles());
        assert!(!c(10, 4, 5).reconciles());
        assert!(!c(10, 5, 6).reconciles());
        assert!(
            !c(u64::MAX, u64::MAX, 1).reconciles(),
            "overflow is not a match"
        );
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(axis_step(0), 1);
        assert_eq!(axis_step(7), 2);
        assert_eq!(axis_step(130), 50);
        assert_eq!(axis_step(401), 200);
    }
}
