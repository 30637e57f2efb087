//! Tests of the retention report's renderings: JSON round-trips, CSV escapes, the HTML is
//! self-contained and its metrics agree with the struct, and the chart axes are round.

use super::chart::axis_step;
use super::*;
use std::collections::BTreeMap;

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
        business_name: Some("Canary <Shop>".to_owned()),
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
        stores: vec![
            StoreRow {
                region: None,
                location: "/srv/sealpost".to_owned(),
                holds: "everything else".to_owned(),
                audit_log: "this store's".to_owned(),
                checkpoint: None,
            },
            StoreRow {
                region: Some("DE".to_owned()),
                location: "/srv/sealpost/regions/DE".to_owned(),
                holds: "DE's <keys>".to_owned(),
                audit_log: "its own".to_owned(),
                checkpoint: Some(CheckpointRef {
                    size: 12,
                    root: "ef".repeat(32),
                    signed_at: START + 40 * DAY_MS - 5_000,
                    public_key: "01".repeat(32),
                }),
            },
        ],
        data_in_use: vec![DataInUseRow {
            region: "DE".to_owned(),
            periods: 3,
            held: 41,
            longest_ms: 90_000,
            over_limit: 0,
            limit_ms: 3_600_000,
            from: Some(START),
            to: Some(START + 3 * 3_600_000),
        }],
        key_rotations: vec![KeyRotationRow {
            business_id: "100000000000001".to_owned(),
            region: "EU".to_owned(),
            key: "ledger".to_owned(),
            version: 2,
            reason: "scheduled".to_owned(),
            at: START + 30 * DAY_MS,
        }],
    }
}

#[test]
fn html_lists_every_store() {
    let html = sample().to_html();
    assert!(html.contains("<h2>Stores</h2>"), "{html}");
    assert!(html.contains("DE (Local Storage)"), "{html}");
    assert!(html.contains("/srv/sealpost/regions/DE"), "{html}");
    assert!(
        html.contains("DE&#39;s &lt;keys&gt;") || html.contains("DE's &lt;keys&gt;"),
        "{html}"
    );
    assert!(
        html.contains("<h2>Data in use outside its region</h2>"),
        "{html}"
    );
    assert!(
        html.contains("1.5 min") && html.contains("60.0 min"),
        "{html}"
    );
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

#[test]
fn people_read_ages_in_days_and_hours_and_the_business_by_name() {
    let mut r = sample();
    r.oldest_live_message_age_ms = Some(29 * DAY_MS + 23 * 3_600_000 + 59 * 60_000);
    r.erasures.latency_ms_max = Some(4 * 3_600_000 + 12 * 60_000);
    let html = r.to_html();
    assert!(html.contains("29 d 23 h"), "{html}");
    assert!(html.contains("4 h 12 min"), "{html}");
    assert!(
        html.contains("Canary &lt;Shop&gt; (business &quot;acme, &lt;b&gt;inc&lt;/b&gt;&quot;)"),
        "{html}"
    );
    assert_eq!(
        html_metrics(&html).get("oldest_live_message_age_ms"),
        Some(&(29 * DAY_MS + 23 * 3_600_000 + 59 * 60_000).to_string())
    );
}

#[test]
fn the_date_axis_is_continuous() {
    let mut r = sample();
    let gap: Vec<String> = r.days.drain(5..12).map(|d| d.day).collect();
    let every = r.every_day();
    assert_eq!(every.len(), 40, "the days without a row are back, as zeros");
    assert_eq!(every[5].day, gap[0]);
    assert_eq!(every[5].messages_created, 0);
    assert_eq!(every[12], r.days[5], "recorded days unchanged");
    let html = r.to_html();
    assert!(html.contains(&format!("<td>{}</td>", gap[3])), "{html}");
    assert_eq!(
        r.to_json().matches("\"day\"").count(),
        33,
        "JSON keeps the recorded rows"
    );
}

#[test]
fn printed_pages_are_numbered() {
    let html = sample().to_html();
    let print = &html[html.find("@media print").expect("a print style")..];
    assert!(
        print.contains("@bottom-right{content:\"Page \" counter(page) \" of \" counter(pages)"),
        "{print}"
    );
}
