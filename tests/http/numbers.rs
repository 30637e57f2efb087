//! A business number and its limits: the number's page, Local Storage, registration, the
//! throughput, pair-rate and messaging limits, quality reports; `--config`; system-user tokens.

use crate::common::server::{Data, Node};
use crate::common::{text, CONSUMER};
use crate::{assert_error, checked, serve, start};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// The steps in order: the limits are met after the number moved to Local Storage in DE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_number_management_and_rate_limits() {
    let s = start();
    // Deleting a template that does not exist is an error.
    let ghost = format!("/v21.0/{}/message_templates?name=ghost", s.s("waba_id"));
    assert_eq!(s.delete(&ghost, &s.s("access_token")).await.0, 400);
    the_number_page(&s).await;
    local_storage_then_registration(&s).await;
    throughput_then_pair_rate(&s).await;
    the_messaging_limit_spares_service_windows(&s).await;
    reports_lower_the_quality_rating(&s).await;
}

/// `GET` of the number: for its business, not for the DPO.
async fn the_number_page(s: &Node) {
    let (st, v) = s.number().await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["display_phone_number"],
        format!("+{}", s.s("display_phone_number"))
    );
    assert_eq!(
        (
            v["quality_rating"].as_str(),
            v["throughput"]["level"].as_str(),
            v["messaging_limit_tier"].as_str()
        ),
        (Some("GREEN"), Some("STANDARD"), Some("TIER_250"))
    );
    let path = format!("/v21.0/{}", s.s("phone_number_id"));
    assert_error(&s.get(&path, &s.s("dpo_token")).await, 403, 200);
}

/// Local Storage can be elected while unregistered, not after; ten register/deregister calls
/// in 72 hours, then 133016.
async fn local_storage_then_registration(s: &Node) {
    let (token, id) = (s.s("access_token"), s.s("phone_number_id"));
    let settings = format!("/v21.0/{id}/settings");
    assert_eq!(
        s.get(&settings, &token).await.1,
        json!({"storage_configuration": {"status": "IN_COUNTRY_STORAGE_DISABLED"}})
    );
    let enable = json!({"storage_configuration": {"status": "IN_COUNTRY_STORAGE_ENABLED", "data_localization_region": "DE"}});
    assert_eq!(
        s.post(&settings, Some(&token), enable.clone()).await.1,
        json!({"success": true})
    );
    assert_eq!(
        s.get(&settings, &token).await.1["storage_configuration"]["data_localization_region"],
        "DE"
    );
    let bad_region = json!({"storage_configuration": {"status": "IN_COUNTRY_STORAGE_ENABLED", "data_localization_region": "XX"}});
    assert_error(
        &s.post(&settings, Some(&token), bad_region).await,
        400,
        131_009,
    );
    let register = format!("/v21.0/{id}/register");
    let pin = |pin: &str| json!({"messaging_product": "whatsapp", "pin": pin});
    assert_error(
        &s.post(&register, Some(&token), pin("12ab56")).await,
        400,
        131_009,
    );
    assert_eq!(
        s.post(&register, Some(&token), pin("123456")).await.1,
        json!({"success": true})
    );
    assert_error(&s.post(&settings, Some(&token), enable).await, 400, 100);
    assert_eq!(s.number().await.1["platform_type"], "CLOUD_API");
    for i in 0..9 {
        let path = if i % 2 == 0 {
            format!("/v21.0/{id}/deregister")
        } else {
            register.clone()
        };
        let (st, v) = s.post(&path, Some(&token), pin("123456")).await;
        assert_eq!(st, 200, "call {i}: {v}");
    }
    assert_error(
        &s.post(&register, Some(&token), pin("123456")).await,
        429,
        133_016,
    );
}

/// A send of the approved template `hello` to `to`.
fn hello(to: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "template", "template": {"name": "hello", "language": {"code": "en_US"}}})
}

/// Throughput: 80 messages per second per number (the simulated clock stands still). Pair
/// rate: after a second the number may send again, but 45 is the burst to one user.
async fn throughput_then_pair_rate(s: &Node) {
    s.approved_template("hello").await;
    for i in 0..80 {
        let (st, v) = s.send(hello(&format!("4915112{:06}", i))).await;
        assert_eq!(st, 200, "message {i}: {v}");
    }
    assert_error(&s.send(hello("4915112999999")).await, 429, 130_429);
    s.advance(1).await;
    for i in 0..45 {
        let (st, v) = s.send(hello("4915112888888")).await;
        assert_eq!(st, 200, "pair message {i}: {v}");
    }
    assert_error(&s.send(hello("4915112888888")).await, 429, 131_056);
}

/// The messaging limit: 250 unique users outside a service window in 24 hours (81 so far).
/// The 251st is refused by the transport (failed, 131048) and turns the throttle on; from
/// then on a send to a new user is refused at once with 131048. (Sends are admitted at 80
/// per second of the simulated clock, so it moves on a second every 70.)
async fn the_messaging_limit_spares_service_windows(s: &Node) {
    let mut sent = 0usize;
    let mut refused = None;
    for i in 0..2_000 {
        if i % 70 == 0 {
            s.advance(1).await;
        }
        let got = s.send(hello(&format!("4915113{:06}", i))).await;
        if got.0 != 200 {
            refused = Some(got);
            break;
        }
        sent += 1;
        if sent >= 170 {
            // Past the limit: wait for the pipeline to hand the 251st user's message over.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let got = refused.expect("the throttle came on");
    assert!(sent >= 170, "not before the limit: refused after {sent}");
    assert_error(&got, 429, 131_048);
    // A user in a service window may still be answered (a second later: throughput refills).
    s.advance(1).await;
    let (answered, _) = s.converse("hi", text(CONSUMER, "still here")).await;
    assert_eq!(answered, 200, "the throttle spares service-window replies");
    // (All of this after the number moved to Local Storage in DE: the pipeline followed it.)
    let inbox = s.wait_inbox(CONSUMER, 1).await;
    assert_eq!(inbox[0]["content"]["text"]["body"], "still here");
}

/// Consumers report the number as spam and block it: the quality rating falls.
async fn reports_lower_the_quality_rating(s: &Node) {
    s.reported(&["spam", "spam", "block"]).await;
    assert_error(
        &s.post(
            "/sim/v1/devices/4915114000000/report",
            None,
            json!({"to": s.s("display_phone_number"), "type": "hug"}),
        )
        .await,
        400,
        131_009,
    );
    let mut rating = Value::Null;
    for _ in 0..200 {
        rating = s.number().await.1["quality_rating"].clone();
        if rating == "YELLOW" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rating, "YELLOW");
}

/// `--config`: the file's settings apply (simulated clock, a throughput of 2 messages per
/// second), an environment variable overrides the file (the data directory), and a file with
/// a typo is refused with a message that names the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_sets_up_serve_and_the_environment_overrides_it() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("sealpost.toml");
    let ignored = dir.path().join("from-file");
    let data = dir.path().join("from-env");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nsim_clock = true\nthroughput_per_second = 2\n",
            ignored.display()
        ),
    )
    .expect("config");
    let s = serve(&Data::at(data.clone()))
        .config_only()
        .args([std::ffi::OsStr::new("--config"), file.as_os_str()])
        .env("SEALPOST_DATA_DIR", data.to_string_lossy())
        .start();
    let s = checked(s);
    assert!(!ignored.exists(), "the environment overrode the file");
    // The simulated clock came from the file: it moves, so the template gets approved.
    s.approved_template("hello").await;
    let template = hello("4915112000001");
    for _ in 0..2 {
        let (st, v) = s.send(template.clone()).await;
        assert_eq!(st, 200, "{v}");
    }
    assert_error(&s.send(template).await, 429, 130_429);

    let bad = tempfile::tempdir().expect("dir");
    let typo = bad.path().join("typo.toml");
    std::fs::write(&typo, "lissten = \"127.0.0.1:0\"\n").expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["serve", "--config"])
        .arg(&typo)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lissten"), "{stderr}");
}

/// System-user tokens: issued with at most the caller's scopes, listed without secrets, and
/// revoked with immediate effect; only the business's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_and_revoked_with_immediate_effect() {
    let s = start();
    let admin = s.s("access_token");
    let number = format!("/v21.0/{}", s.s("phone_number_id"));
    let scopes = |scope: &str| json!({ "scopes": [scope] });
    let (st, issued) = s
        .post(
            "/sealpost/v1/tokens",
            Some(&admin),
            scopes("whatsapp_business_messaging"),
        )
        .await;
    assert_eq!(st, 200, "{issued}");
    let (id, token) = (
        issued["id"].as_str().expect("id").to_owned(),
        issued["access_token"].as_str().expect("token").to_owned(),
    );
    assert!(token.len() >= 43, "at least 32 random bytes");
    assert_eq!(s.get(&number, &token).await.0, 200, "the new token works");
    let (st, list) = s.get("/sealpost/v1/tokens", &admin).await;
    assert_eq!(st, 200);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    assert!(
        !list.to_string().contains(&token) && !list.to_string().contains(&admin),
        "listing never shows a token"
    );
    // A messaging-only token cannot manage tokens; nobody gets more than they hold.
    assert_error(&s.get("/sealpost/v1/tokens", &token).await, 403, 10);
    assert_error(
        &s.post_raw("/sealpost/v1/tokens", Some(&token), "{}").await,
        403,
        10,
    );
    assert_error(
        &s.post(
            "/sealpost/v1/tokens",
            Some(&admin),
            scopes("ads_management"),
        )
        .await,
        400,
        131_009,
    );
    assert_error(
        &s.get("/sealpost/v1/tokens", &s.s("auditor_token")).await,
        403,
        200,
    );
    // Revocation takes effect at once.
    let path = format!("/sealpost/v1/tokens/{id}");
    assert_eq!(
        s.delete(&path, &admin).await,
        (200, json!({"success": true}))
    );
    assert_error(&s.get(&number, &token).await, 401, 190);
    assert_error(&s.delete(&path, &admin).await, 400, 100);
    assert_error(
        &s.delete("/sealpost/v1/tokens/tok_unknown", &admin).await,
        400,
        100,
    );
    assert_eq!(s.get(&number, &admin).await.0, 200, "the others still work");
}

/// A throughput upgrade (issue 16, code 131057): only the operator may ask for it; while it is
/// under way the number is in maintenance and a send is 503 with 131057 in the envelope; then
/// the number sends at the upgraded rate (more than the standard 80 in one second), and its
/// page says `HIGH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_puts_the_number_in_maintenance_then_sends_faster() {
    let s = start();
    s.approved_template("hello").await;
    let path = format!("/sealpost/v1/numbers/{}/throughput", s.s("phone_number_id"));
    let operator = s.s("internal_token");
    let high = json!({"level": "HIGH"});
    assert_error(
        &s.post(&path, Some(&s.s("access_token")), high.clone())
            .await,
        403,
        200,
    );
    assert_error(
        &s.post(&path, Some(&operator), json!({"level": "TURBO"}))
            .await,
        400,
        131_009,
    );
    let (st, upgraded) = s.post(&path, Some(&operator), high).await;
    assert_eq!(st, 200, "{upgraded}");
    assert_eq!(upgraded["throughput"]["level"], "HIGH");
    assert!(upgraded["maintenance_until"].is_string(), "{upgraded}");
    let refused = s.send(hello("4915112777777")).await;
    assert_error(&refused, 503, 131_057);
    assert_eq!(s.number().await.1["throughput"]["level"], "HIGH");
    s.advance(61).await;
    for i in 0..100 {
        let (st, v) = s.send(hello(&format!("4915115{:06}", i))).await;
        assert_eq!(st, 200, "message {i} after the upgrade: {v}");
    }
}
