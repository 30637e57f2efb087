//! The report as one self-contained HTML page (no script, font, image or link), and
//! [`html_metrics`], which reads its headline figures back.

use super::chart::bar_chart;
use super::{escape_html, rfc3339, DayRow, RetentionReport};
use sealpost_domain::time::DAY_MS;
use std::collections::BTreeMap;

impl RetentionReport {
    /// Whether the oldest live message is within the retention period (true if none is live).
    fn oldest_within_retention(&self) -> bool {
        let limit = i64::from(self.retention_days).saturating_mul(DAY_MS);
        self.oldest_live_message_age_ms
            .is_none_or(|age| age <= limit)
    }

    /// The report as one self-contained HTML5 document (inline CSS and SVG, nothing loaded).
    pub fn to_html(&self) -> String {
        let e = escape_html;
        let mut h = String::with_capacity(32 * 1024);
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        let scope = match &self.business_name {
            Some(name) => format!("{} ({})", e(name), e(&self.scope)),
            None => e(&self.scope),
        };
        let (store, at) = (e(&self.store), rfc3339(self.generated_at));
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
                "{} <span class=\"note\">(<span data-metric=\"oldest_live_message_age_ms\">{ms}</span> ms)</span>",
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

        // Charts, on a continuous date axis: a day without activity is a day of zeros.
        let every_day = self.every_day();
        let labels: Vec<&str> = every_day.iter().map(|d| d.day.as_str()).collect();
        let col = |f: fn(&DayRow) -> u64| every_day.iter().map(f).collect::<Vec<_>>();
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
        if every_day.is_empty() {
            h.push_str("<p class=\"note\">No activity in the period.</p>\n");
        }
        let heads = "Day|Messages created|Messages shredded|Epoch keys destroyed|\
                     Subject keys destroyed|Erasures";
        let rows = every_day.iter().map(|d| {
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

        // Stores.
        h.push_str("<section>\n<h2>Stores</h2>\n");
        let heads = "Store|Where|Holds|Tamper-evident log";
        let rows = self.stores.iter().map(|s| {
            let name = s
                .region
                .as_deref()
                .map_or("home".to_owned(), |r| format!("{r} (Local Storage)"));
            vec![e(&name), e(&s.location), e(&s.holds), e(&s.audit_log)]
        });
        h.push_str(&table("stores", heads, 4, rows));
        h.push_str("</section>\n");

        // Data in use outside its region.
        h.push_str("<section>\n<h2>Data in use outside its region</h2>\n");
        let heads = "Region|Accounts (hourly, per node)|Holds|Longest hold|Over the limit|Limit";
        let minutes = |ms: i64| format!("{:.1} min", ms as f64 / 60_000.0);
        let rows = self.data_in_use.iter().map(|d| {
            vec![
                e(&d.region),
                d.periods.to_string(),
                d.held.to_string(),
                minutes(d.longest_ms),
                d.over_limit.to_string(),
                minutes(d.limit_ms),
            ]
        });
        h.push_str(&table("data-in-use", heads, 1, rows));
        h.push_str("</section>\n");

        // Key rotations.
        h.push_str("<section>\n<h2>Key rotations</h2>\n");
        let heads = "Business|Region|Key|Version|Reason|When";
        let rows = self.key_rotations.iter().map(|k| {
            vec![
                e(&k.business_id),
                e(&k.region),
                e(&k.key),
                k.version.to_string(),
                e(&k.reason),
                rfc3339(k.at),
            ]
        });
        h.push_str(&table("key-rotations", heads, 3, rows));
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

/// Escaped text in a `<code>` element.
fn code(escaped: &str) -> String {
    format!("<code>{escaped}</code>")
}

/// A headline figure whose text is exactly the integer, for [`html_metrics`].
fn metric(name: &str, value: u64) -> String {
    format!("<span data-metric=\"{name}\">{value}</span>")
}

/// A duration for people: "850 ms", "12.5 s", "3.2 min", "4 h 12 min", "29 d 23 h".
fn duration(ms: i64) -> String {
    const HOUR: u64 = 3_600_000;
    let (f, a) = (ms as f64, ms.unsigned_abs());
    let sign = if ms < 0 { "-" } else { "" };
    match a {
        a if a < 1_000 => format!("{ms} ms"),
        a if a < 60_000 => format!("{:.1} s", f / 1e3),
        a if a < HOUR => format!("{:.1} min", f / 6e4),
        a if a < DAY_MS as u64 => format!("{sign}{} h {} min", a / HOUR, a % HOUR / 60_000),
        a => format!(
            "{sign}{} d {} h",
            a / DAY_MS as u64,
            a % DAY_MS as u64 / HOUR
        ),
    }
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
@media print{@page{size:A4;margin:15mm 15mm 18mm;
@bottom-left{content:"Sealpost retention report";font-size:8pt;color:#444}
@bottom-right{content:"Page " counter(page) " of " counter(pages);font-size:8pt;color:#444}}
main{max-width:none;padding:0}
body{background:#fff;color:#000;font-size:10pt} .meta,.note{color:#000}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
table,figure,svg{break-inside:avoid;page-break-inside:avoid}
h2{break-after:avoid;page-break-after:avoid}}
"#;
