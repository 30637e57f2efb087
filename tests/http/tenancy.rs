//! Tenancy, a property test: three businesses on one `serve`, each with a media object, a
//! template, a sent message and a token; no token of one reaches another's data.

use crate::common::server::{tenant_add, Data, Node, Serve};
use crate::common::{canary, text, CONSUMER};
use crate::{png, start_on};
use serde_json::{json, Value};

/// One tenant as the tenancy test sees it: its ids and its system-user token.
#[derive(Clone, Debug)]
struct Tenant {
    token: String,
    phone: String,
    waba: String,
    app: String,
    media: String,
    message: String,
    token_id: String,
    template: String,
}

/// A request of the tenancy property: method, path, JSON body (or none).
type Probe = (&'static str, String, Option<Value>);

/// The requests a token of `attacker` makes against `target`'s data (or a fabricated tenant).
fn probes(attacker: &Tenant, target: &Tenant) -> Vec<Probe> {
    let t = target;
    vec![
        ("GET", format!("/v21.0/{}", t.phone), None),
        (
            "POST",
            format!("/v21.0/{}/messages", t.phone),
            Some(text(CONSUMER, "x")),
        ),
        ("GET", format!("/v21.0/{}/settings", t.phone), None),
        (
            "POST",
            format!("/v21.0/{}/settings", t.phone),
            Some(
                json!({"storage_configuration": {"status": "IN_COUNTRY_STORAGE_ENABLED", "data_localization_region": "DE"}}),
            ),
        ),
        (
            "POST",
            format!("/v21.0/{}/register", t.phone),
            Some(json!({"messaging_product": "whatsapp", "pin": "123456"})),
        ),
        (
            "POST",
            format!("/v21.0/{}/deregister", t.phone),
            Some(json!({"messaging_product": "whatsapp"})),
        ),
        ("GET", format!("/v21.0/{}/message_templates", t.waba), None),
        ("GET", format!("/v21.0/{}", t.waba), None),
        ("GET", format!("/v21.0/{}/phone_numbers", t.waba), None),
        ("GET", format!("/v21.0/{}/subscribed_apps", t.waba), None),
        (
            "POST",
            format!("/v21.0/{}/subscribed_apps", t.waba),
            Some(json!({})),
        ),
        ("DELETE", format!("/v21.0/{}/subscribed_apps", t.waba), None),
        (
            "GET",
            format!("/v21.0/{}/whatsapp_business_profile", t.phone),
            None,
        ),
        (
            "POST",
            format!("/v21.0/{}/whatsapp_business_profile", t.phone),
            Some(json!({"messaging_product": "whatsapp", "about": "intruder"})),
        ),
        (
            "POST",
            format!("/v21.0/{}/message_templates", t.waba),
            Some(json!({"name": "intruder", "language": "en_US", "category": "MARKETING"})),
        ),
        (
            "DELETE",
            format!("/v21.0/{}/message_templates?name={}", t.waba, t.template),
            None,
        ),
        (
            "POST",
            format!("/v21.0/{}/subscriptions", t.app),
            Some(
                json!({"object": "whatsapp_business_account", "callback_url": "http://127.0.0.1:9/hook", "verify_token": "x"}),
            ),
        ),
        ("GET", format!("/v21.0/{}", t.media), None),
        ("DELETE", format!("/v21.0/{}", t.media), None),
        (
            "GET",
            format!(
                "/sealpost/v1/media/{}?expires=9999999999&signature=00",
                t.media
            ),
            None,
        ),
        (
            "POST",
            format!("/v21.0/{}/messages", attacker.phone),
            Some(
                json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "image", "image": {"id": t.media}}),
            ),
        ),
        (
            "POST",
            format!("/v21.0/{}/messages", attacker.phone),
            Some(
                json!({"messaging_product": "whatsapp", "status": "read", "message_id": t.message}),
            ),
        ),
        (
            "POST",
            format!("/v21.0/{}/messages", attacker.phone),
            Some(
                json!({"messaging_product": "whatsapp", "type": "reaction", "to": CONSUMER, "reaction": {"message_id": t.message, "emoji": "👍"}}),
            ),
        ),
        (
            "DELETE",
            format!("/sealpost/v1/tokens/{}", t.token_id),
            None,
        ),
        ("POST", format!("/v21.0/{}/media", t.phone), Some(json!({}))),
    ]
}

/// `probe` with `token`; the answer without what varies per answer.
async fn call(s: &Node, token: &str, probe: &Probe) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(probe.0.as_bytes()).expect("method");
    let (status, mut body) = s.call(method, &probe.1, Some(token), probe.2.clone()).await;
    if let Some(e) = body.get_mut("error").and_then(Value::as_object_mut) {
        e.remove("fbtrace_id"); // random per answer
    }
    (status, body)
}

/// For random pairs of businesses and random endpoints, a token of one business never reads,
/// changes or learns the existence of the other's data: every answer about the other's real
/// number, WABA, app, media, message, template or token is a refusal, and the very same answer
/// as about ids that exist nowhere. Afterwards every business's data is as it was.
#[test]
fn a_business_token_never_reaches_another_business() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (s, boots) = three_tenants();
    let tenants = rt.block_on(set_up(&s, &boots));
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 96,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    let endpoints = probes(&tenants[0], &tenants[1]).len();
    runner
        .run(
            &(0..3usize, 1..3usize, 0..endpoints, proptest::num::u64::ANY),
            |(a, offset, e, n)| {
                let (attacker, victim) = (&tenants[a], &tenants[(a + offset) % 3]);
                let real = &probes(attacker, victim)[e];
                let fake = &probes(attacker, &nowhere(n))[e];
                let (got, control) = rt.block_on(async {
                    (
                        call(&s, &attacker.token, real).await,
                        call(&s, &attacker.token, fake).await,
                    )
                });
                proptest::prop_assert!(
                    (400..500).contains(&got.0),
                    "{} {} answered {}: {}",
                    real.0,
                    real.1,
                    got.0,
                    got.1
                );
                proptest::prop_assert_eq!(
                    &got,
                    &control,
                    "{} {} tells the other business's data from none",
                    real.0,
                    real.1
                );
                Ok(())
            },
        )
        .expect("no business reaches another's data");
    rt.block_on(nothing_changed(&s, &tenants));
}

/// Three tenants: the development tenant of a first start, then two added by `sealpost tenant
/// add`; the server started again on them, and the three bootstrap files.
fn three_tenants() -> (Node, Vec<Value>) {
    let data = Data::fresh(None);
    let first = Serve::on(&data)
        .log_to(data.dir.with_file_name("first.log"))
        .start();
    first.kill();
    let files = [("Tenant B", "15550001111"), ("Tenant C", "15550002222")]
        .map(|(name, number)| tenant_add(&data.dir, name, number));
    let s = start_on(&data);
    let mut boots = vec![s.boot.clone()];
    for f in &files {
        boots.push(serde_json::from_slice(&std::fs::read(f).expect("tenant file")).expect("json"));
    }
    (s, boots)
}

/// Each tenant gets a template, a media object and (once the templates are approved) a sent
/// message.
async fn set_up(s: &Node, boots: &[Value]) -> Vec<Tenant> {
    let mut out = Vec::new();
    for (i, b) in boots.iter().enumerate() {
        let f = |k: &str| b[k].as_str().expect("field").to_owned();
        let token = f("access_token");
        let template = format!("greeting_{i}");
        let (st, _) = s
            .post(
                &format!("/v21.0/{}/message_templates", f("waba_id")),
                Some(&token),
                json!({"name": template, "language": "en_US", "category": "UTILITY"}),
            )
            .await;
        assert_eq!(st, 200);
        let picture = png(&canary(10 + i, "tenant media"), &[]);
        let upload = s
            .upload_to(
                &f("phone_number_id"),
                &token,
                &[
                    ("messaging_product", None, b"whatsapp"),
                    ("file", Some(("p.png", "image/png")), &picture),
                ],
            )
            .await;
        assert_eq!(upload.0, 200, "{}", upload.1);
        let (_, tokens) = s.get("/sealpost/v1/tokens", &token).await;
        out.push(Tenant {
            token,
            phone: f("phone_number_id"),
            waba: f("waba_id"),
            app: f("app_id"),
            media: upload.1["id"].as_str().expect("media").to_owned(),
            message: String::new(),
            token_id: tokens["data"][0]["id"]
                .as_str()
                .expect("token id")
                .to_owned(),
            template,
        });
    }
    s.advance(61).await;
    for t in &mut out {
        let (st, v) = s
            .post(
                &format!("/v21.0/{}/messages", t.phone),
                Some(&t.token),
                json!({"messaging_product": "whatsapp", "to": CONSUMER, "type": "template", "template": {"name": t.template, "language": {"code": "en_US"}}}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        t.message = v["messages"][0]["id"].as_str().expect("id").to_owned();
    }
    out
}

/// A tenant that exists nowhere.
fn nowhere(n: u64) -> Tenant {
    Tenant {
        token: String::new(),
        phone: format!("{}", 190_000_000_000_000 + n),
        waba: format!("{}", 290_000_000_000_000 + n),
        app: format!("{}", 390_000_000_000_000 + n),
        media: format!("{}", 490_000_000_000_000 + n),
        message: format!("wamid.AAAAAAAAAAAAAAAAAAAAAAA{}", n % 10),
        token_id: format!("tok_{n:032x}"),
        template: "greeting_9".into(),
    }
}

/// Nothing of anyone's changed.
async fn nothing_changed(s: &Node, tenants: &[Tenant]) {
    for t in tenants {
        // Each business lists its own number only, and its profile is untouched.
        let (st, numbers) = s
            .get(&format!("/v21.0/{}/phone_numbers", t.waba), &t.token)
            .await;
        assert_eq!(st, 200, "{numbers}");
        let ids: Vec<&str> = numbers["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|n| n["id"].as_str())
            .collect();
        assert_eq!(ids, [t.phone.as_str()], "{numbers}");
        let (_, profile) = s
            .get(
                &format!("/v21.0/{}/whatsapp_business_profile", t.phone),
                &t.token,
            )
            .await;
        assert_eq!(profile["data"][0]["about"], "", "{profile}");
        let (_, apps) = s
            .get(&format!("/v21.0/{}/subscribed_apps", t.waba), &t.token)
            .await;
        assert_eq!(apps["data"].as_array().map(Vec::len), Some(1), "{apps}");
        let (st, number) = s.get(&format!("/v21.0/{}", t.phone), &t.token).await;
        assert_eq!(
            (st, number["status"].as_str()),
            (200, Some("PENDING")),
            "still unregistered: {number}"
        );
        assert_eq!(
            s.get(&format!("/v21.0/{}/settings", t.phone), &t.token)
                .await
                .1,
            json!({"storage_configuration": {"status": "IN_COUNTRY_STORAGE_DISABLED"}})
        );
        let (_, list) = s
            .get(&format!("/v21.0/{}/message_templates", t.waba), &t.token)
            .await;
        let names: Vec<&str> = list["data"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|x| x["name"].as_str())
            .collect();
        assert_eq!(names, [t.template.as_str()]);
        assert_eq!(
            s.get(&format!("/v21.0/{}", t.media), &t.token).await.0,
            200,
            "media intact"
        );
        assert_eq!(
            s.get("/sealpost/v1/tokens", &t.token).await.0,
            200,
            "token intact"
        );
    }
}
