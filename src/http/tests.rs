//! The router in process (`oneshot`, no socket): every extractor's rejection and every error
//! envelope the handlers' preamble can answer, over the real embedded store in a temporary
//! directory with two tenants and no simulator.

use super::startup::business_numbers;
use super::{router, Limits, Shared};
use crate::app::Sealpost;
use crate::bootstrap::{tenant, Bootstrap};
use crate::identity::Tokens;
use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use axum::Router;
use sealpost_adapters::clock::SystemClock;
use sealpost_domain::identity::{SCOPE_MANAGEMENT, SCOPE_MESSAGING};
use sealpost_domain::ports::Clock;
use sealpost_domain::{Principal, Region, RetentionPolicy};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt as _;

/// Two tenants, A and B, on one store; the router has no simulator.
struct Fixture {
    router: Router,
    a: Bootstrap,
    b: Bootstrap,
    /// A's tokens with one scope each: messaging, management.
    a_messaging: String,
    a_management: String,
    /// The places of sends in progress ([`super::limits::SENDS_IN_FLIGHT`]).
    sends: Arc<tokio::sync::Semaphore>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    sealpost_adapters::files::prepare_data_dir(dir.path()).expect("data directory");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let app = Sealpost::open_sqlite(dir.path(), clock, RetentionPolicy::default())
        .await
        .expect("store");
    let tokens = Tokens::load(app.store().clone()).await.expect("tokens");
    let (a, business_a, _) = tenant(&app, &tokens, "A", "15550000001", "")
        .await
        .expect("tenant A");
    let (b, _, _) = tenant(&app, &tokens, "B", "15550000002", "")
        .await
        .expect("tenant B");
    let scoped = |scope: &'static str| {
        let (tokens, business) = (tokens.clone(), business_a.clone());
        let now = app.now();
        async move {
            tokens
                .issue(
                    Principal::business(business, "one-scope"),
                    &[scope],
                    Region::Eu,
                    now,
                )
                .await
                .expect("token")
        }
    };
    let (a_messaging, a_management) = (
        scoped(SCOPE_MESSAGING).await,
        scoped(SCOPE_MANAGEMENT).await,
    );
    let numbers = business_numbers(&app).await.expect("numbers");
    let apps = crate::app::apps(app.store()).await.expect("apps");
    let shared = Shared::new(app, tokens, numbers, &apps, Limits::default());
    Fixture {
        sends: shared.sends.clone(),
        router: router(shared),
        a,
        b,
        a_messaging,
        a_management,
        _dir: dir,
    }
}

impl Fixture {
    /// One request: status and JSON body.
    async fn call(&self, method: &str, uri: &str, token: Option<&str>, body: Body) -> (u16, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let request = request
            .header("content-type", "application/json")
            .body(body)
            .expect("request");
        let response = self.router.clone().oneshot(request).await.expect("answer");
        let status = response.status().as_u16();
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> (u16, Value) {
        self.call("GET", uri, token, Body::empty()).await
    }

    async fn post(&self, uri: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        self.call("POST", uri, token, Body::from(body.to_owned()))
            .await
    }
}

/// The Graph error envelope with this status, code and details.
#[track_caller]
fn assert_envelope(got: &(u16, Value), status: u16, code: u64, details: &str) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    assert_eq!(e["type"], "OAuthException", "{body}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&format!("(#{code}) "))),
        "{body}"
    );
    assert_eq!(e["error_data"]["messaging_product"], "whatsapp", "{body}");
    assert_eq!(e["error_data"]["details"], details, "{body}");
    assert!(
        e["fbtrace_id"].as_str().is_some_and(|t| t.starts_with('A')),
        "{body}"
    );
    let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["error"], "nothing but the envelope");
}

const BAD_TOKEN: &str = "Invalid OAuth access token - Cannot parse access token";
const DENIED: &str = "The access token does not have permission for this phone number.";

#[tokio::test]
async fn the_version_is_checked_first() {
    let f = fixture().await;
    let number = &f.a.phone_number_id;
    for version in ["v16.0", "v27.0", "v21", "21.0", "v21.1", "vx.0"] {
        for (method, uri) in [
            ("GET", format!("/{version}/{number}")),
            ("POST", format!("/{version}/{number}/messages")),
            ("GET", format!("/{version}/{number}/settings")),
            (
                "GET",
                format!("/{version}/{}/message_templates", f.a.waba_id),
            ),
            ("POST", format!("/{version}/{}/subscriptions", f.a.app_id)),
        ] {
            // Before the token: none is given.
            let got = f.call(method, &uri, None, Body::from("{")).await;
            assert_envelope(&got, 400, 100, "Unsupported API version.");
        }
    }
    // Every version from v17.0 to v26.0 is served; the send also answers without one.
    for v in 17..=26 {
        let got = f.get(&format!("/v{v}.0/{number}/settings"), None).await;
        assert_envelope(&got, 401, 190, BAD_TOKEN);
    }
    let got = f.post(&format!("/{number}/messages"), None, "{").await;
    assert_envelope(&got, 401, 190, BAD_TOKEN);
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_190() {
    let f = fixture().await;
    let number = &f.a.phone_number_id;
    let uris = [
        format!("/v21.0/{number}"),
        format!("/v21.0/{number}/settings"),
        format!("/v21.0/{}/message_templates", f.a.waba_id),
        "/sealpost/v1/tokens".to_owned(),
        "/sealpost/v1/audit/checkpoint".to_owned(),
        "/sealpost/v1/messages/wamid.x".to_owned(),
    ];
    for uri in &uris {
        assert_envelope(&f.get(uri, None).await, 401, 190, BAD_TOKEN);
        assert_envelope(
            &f.get(uri, Some("SPnot-a-token")).await,
            401,
            190,
            BAD_TOKEN,
        );
        let basic = Request::builder()
            .uri(uri.as_str())
            .header("authorization", format!("Basic {}", f.a.access_token))
            .body(Body::empty())
            .expect("request");
        let response = f.router.clone().oneshot(basic).await.expect("answer");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
    // Before the number: a foreign number without a token is still 190.
    let foreign = format!("/v21.0/{}/settings", f.b.phone_number_id);
    assert_envelope(&f.get(&foreign, None).await, 401, 190, BAD_TOKEN);
}

#[tokio::test]
async fn another_business_s_resource_answers_as_an_unknown_one() {
    let f = fixture().await;
    let token = Some(f.a.access_token.as_str());
    let cases = [
        ("GET", format!("/v21.0/{}", f.b.phone_number_id)),
        ("GET", "/v21.0/106540352242922".to_owned()),
        ("POST", format!("/v21.0/{}/messages", f.b.phone_number_id)),
        ("POST", format!("/{}/messages", f.b.phone_number_id)),
        ("POST", format!("/v21.0/{}/media", f.b.phone_number_id)),
        ("GET", format!("/v21.0/{}/settings", f.b.phone_number_id)),
        ("POST", format!("/v21.0/{}/register", f.b.phone_number_id)),
        ("POST", format!("/v21.0/{}/deregister", f.b.phone_number_id)),
        ("GET", format!("/v21.0/{}/message_templates", f.b.waba_id)),
        ("GET", "/v21.0/123/message_templates".to_owned()),
        ("POST", format!("/v21.0/{}/subscriptions", f.b.app_id)),
        ("POST", "/v21.0/123/subscriptions".to_owned()),
    ];
    for (method, uri) in &cases {
        // Before the body: it is not JSON.
        let got = f.call(method, uri, token, Body::from("{")).await;
        assert_envelope(&got, 403, 200, DENIED);
    }
    // Before the scope: a token lacking it gets the same 200, not 10.
    let settings = format!("/v21.0/{}/settings", f.b.phone_number_id);
    let got = f.get(&settings, Some(&f.a_messaging)).await;
    assert_envelope(&got, 403, 200, DENIED);
    // A principal that is no business is refused the same way.
    let own = format!("/v21.0/{}/settings", f.a.phone_number_id);
    for other in [&f.a.auditor_token, &f.a.dpo_token, &f.a.internal_token] {
        assert_envelope(&f.get(&own, Some(other)).await, 403, 200, DENIED);
        let tokens = f.get("/sealpost/v1/tokens", Some(other)).await;
        assert_envelope(&tokens, 403, 200, DENIED);
    }
}

#[tokio::test]
async fn a_token_without_the_scope_is_10() {
    let f = fixture().await;
    let number = &f.a.phone_number_id;
    let lacks = |scope: &str| format!("The access token lacks {scope}.");
    let management = lacks(SCOPE_MANAGEMENT);
    let messaging = lacks(SCOPE_MESSAGING);
    let token = Some(f.a_messaging.as_str());
    for (method, uri) in [
        ("GET", format!("/v21.0/{number}/settings")),
        ("POST", format!("/v21.0/{number}/register")),
        ("POST", format!("/v21.0/{}/message_templates", f.a.waba_id)),
        ("POST", format!("/v21.0/{}/subscriptions", f.a.app_id)),
        ("POST", "/sealpost/v1/tokens".to_owned()),
    ] {
        // Before the body: it is not JSON.
        let got = f.call(method, &uri, token, Body::from("{")).await;
        assert_envelope(&got, 403, 10, &management);
    }
    let token = Some(f.a_management.as_str());
    for (method, uri) in [
        ("POST", format!("/v21.0/{number}/messages")),
        ("POST", format!("/{number}/messages")),
        ("GET", format!("/v21.0/{number}")),
        ("DELETE", "/v21.0/999999999999999".to_owned()),
        (
            "GET",
            "/sealpost/v1/media/1?expires=1&signature=x".to_owned(),
        ),
    ] {
        let got = f.call(method, &uri, token, Body::from("{")).await;
        assert_envelope(&got, 403, 10, &messaging);
    }
    // With the scope, the request goes on to the body.
    let send = format!("/v21.0/{number}/messages");
    let got = f.post(&send, Some(&f.a_messaging), "{").await;
    assert_envelope(&got, 400, 100, "The request body is not valid JSON.");
}

#[tokio::test]
async fn bodies_are_json_of_at_most_max_body() {
    let f = fixture().await;
    let token = Some(f.a.access_token.as_str());
    let number = &f.a.phone_number_id;
    let not_json = "The request body is not valid JSON.";
    let too_large = "The request body is too large or unreadable.";
    let big = "x".repeat(super::MAX_BODY + 1);
    for uri in [
        format!("/v21.0/{number}/messages"),
        format!("/{number}/messages"),
        format!("/v21.0/{number}/settings"),
        format!("/v21.0/{number}/register"),
        format!("/v21.0/{}/message_templates", f.a.waba_id),
        format!("/v21.0/{}/subscriptions", f.a.app_id),
        "/sealpost/v1/tokens".to_owned(),
        "/sealpost/v1/dpo/erasures".to_owned(),
    ] {
        assert_envelope(&f.post(&uri, token, "{not json").await, 400, 100, not_json);
        assert_envelope(&f.post(&uri, token, &big).await, 400, 100, too_large);
    }
    // Exactly MAX_BODY bytes are read (and then parsed).
    let padded = format!("{{\"pad\":\"{}\"}}", "x".repeat(super::MAX_BODY - 10));
    assert_eq!(padded.len(), super::MAX_BODY);
    let (status, issued) = f.post("/sealpost/v1/tokens", token, &padded).await;
    assert_eq!(status, 200, "read and answered: {issued}");
}

#[tokio::test]
async fn a_path_segment_that_is_not_utf8_is_100() {
    let f = fixture().await;
    let token = Some(f.a.access_token.as_str());
    let number = &f.a.phone_number_id;
    for (method, uri, key) in [
        ("GET", "/v21.0/%FF%FE".to_owned(), "id"),
        ("DELETE", "/v21.0/%FF".to_owned(), "id"),
        ("POST", "/v21.0/%C3%28/messages".to_owned(), "id"),
        ("POST", "/%C3%28/messages".to_owned(), "id"),
        ("POST", format!("/%FF/{number}/messages"), "version"),
        ("GET", "/v21.0/%FF/settings".to_owned(), "id"),
        ("GET", "/v21.0/%FF/message_templates".to_owned(), "id"),
        ("POST", "/v21.0/%FF/subscriptions".to_owned(), "id"),
        ("GET", "/sealpost/v1/media/%FF".to_owned(), "id"),
        ("DELETE", "/sealpost/v1/tokens/%FF".to_owned(), "token_id"),
        ("GET", "/sealpost/v1/audit/proofs/%FF".to_owned(), "kind"),
    ] {
        // Before the token: the request has none.
        let details = format!("The path parameter {key} is not valid UTF-8.");
        let got = f.call(method, &uri, None, Body::from("{}")).await;
        assert_envelope(&got, 400, 100, &details);
        let got = f.call(method, &uri, token, Body::from("{}")).await;
        assert_envelope(&got, 400, 100, &details);
    }
}

#[tokio::test]
async fn a_query_that_does_not_parse_is_100() {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[allow(dead_code)]
        n: u32,
    }
    let typed = Router::new().route(
        "/",
        axum::routing::get(|super::extract::Query(_): super::extract::Query<Typed>| async {}),
    );
    for uri in ["/?n=x", "/?n=-1", "/"] {
        let request = Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let response = typed.clone().oneshot(request).await.expect("answer");
        let status = response.status().as_u16();
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        assert_envelope(&(status, body), 400, 100, "The query string is not valid.");
    }
    let f = fixture().await;
    let token = Some(f.a.access_token.as_str());
    let got = f.get("/sealpost/v1/audit/access?nope=1", token).await;
    assert_envelope(&got, 400, 100, "Unknown parameter nope.");
    let got = f
        .get("/sealpost/v1/media/1?expires=soon&signature=x", token)
        .await;
    assert_envelope(&got, 400, 100, "The download URL is incomplete.");
    let got = f
        .get("/sealpost/v1/audit/proofs/inclusion?position=x", token)
        .await;
    assert_envelope(&got, 400, 131_009, "The value of position is not valid.");
}

#[tokio::test]
async fn unknown_paths_and_the_absent_simulator_are_404() {
    let f = fixture().await;
    let token = Some(f.a.access_token.as_str());
    let unknown = "Unknown path or method.";
    for (method, uri) in [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/v21.0/1/2/3"),
        ("POST", "/sealpost/v2/tokens"),
        // No simulator in this process: its routes are not there.
        ("POST", "/sim/v1/devices/4915112345678/messages"),
        ("GET", "/sim/v1/devices/4915112345678/inbox"),
        ("POST", "/sim/v1/devices/4915112345678/report"),
        ("POST", "/sim/v1/devices/4915112345678/presence"),
        ("POST", "/sim/v1/clock/advance"),
    ] {
        let got = f.call(method, uri, token, Body::from("{}")).await;
        assert_envelope(&got, 404, 100, unknown);
        let got = f.call(method, uri, None, Body::from("{}")).await;
        assert_envelope(&got, 404, 100, unknown);
    }
    // A proof of a kind there is none of is an unknown path too (after the token).
    let got = f.get("/sealpost/v1/audit/proofs/nope", token).await;
    assert_envelope(&got, 404, 100, unknown);
    // What is there still answers.
    let (status, doc) = f.get("/sealpost/v1/openapi.json", None).await;
    assert_eq!((status, doc["openapi"].as_str()), (200, Some("3.1.0")));
}

#[tokio::test]
async fn the_owner_passes_every_check() {
    let f = fixture().await;
    let token = Some(f.a.access_token.as_str());
    let number = &f.a.phone_number_id;
    let (status, settings) = f.get(&format!("/v21.0/{number}/settings"), token).await;
    assert_eq!(
        (status, settings),
        (
            200,
            json!({ "storage_configuration": { "status": "IN_COUNTRY_STORAGE_DISABLED" } })
        )
    );
    let (status, described) = f.get(&format!("/v21.0/{number}"), token).await;
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["id"], number.as_str());
    let (status, listed) = f
        .get(&format!("/v21.0/{}/message_templates", f.a.waba_id), token)
        .await;
    assert_eq!(status, 200, "{listed}");
    let (status, tokens) = f.get("/sealpost/v1/tokens", token).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["data"].as_array().map(Vec::len), Some(3));
    // A send passes the checks and reaches the body's own: the recipient is missing.
    let send = json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}});
    let got = f
        .post(&format!("/{number}/messages"), token, &send.to_string())
        .await;
    assert_envelope(&got, 400, 131_008, "The parameter to is required.");
}

#[tokio::test]
async fn a_send_over_http_reads_each_stream_once() {
    let f = fixture().await;
    let token = Some(f.a.access_token.as_str());
    let number = &f.a.phone_number_id;
    let send = json!({
        "messaging_product": "whatsapp",
        "to": "4915100000042",
        "type": "text",
        "text": {"body": "hello"}
    });
    let ((status, body), reads) = sealpost_adapters::ledger::traced(f.post(
        &format!("/v21.0/{number}/messages"),
        token,
        &send.to_string(),
    ))
    .await;
    // Outside the service window a text is refused (131047), after the number was read and the
    // consumer routed: each stream the decision needed, once.
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!(131_047)),
        "{body}"
    );
    let mut seen = std::collections::BTreeMap::new();
    for r in &reads {
        *seen.entry(format!("{}/{}", r.kind, r.id)).or_insert(0) += 1;
    }
    assert!(
        seen.keys().any(|k| k.starts_with("phone_number/")),
        "{seen:?}"
    );
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "read more than once: {repeated:?}");
}

#[tokio::test]
async fn a_send_beyond_the_sends_in_progress_is_answered_131016_at_once() {
    let f = fixture().await;
    let token = Some(f.a.access_token.as_str());
    let uri = format!("/v21.0/{}/messages", f.a.phone_number_id);
    let send = json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}});
    let all = u32::try_from(super::limits::SENDS_IN_FLIGHT).expect("fits");
    let held = f
        .sends
        .clone()
        .acquire_many_owned(all)
        .await
        .expect("places");
    let got = f.post(&uri, token, &send.to_string()).await;
    assert_envelope(
        &got,
        503,
        131_016,
        "Service temporarily unavailable. Please retry.",
    );
    // A place free again: the send is taken in and reaches its own checks.
    drop(held);
    let got = f.post(&uri, token, &send.to_string()).await;
    assert_envelope(&got, 400, 131_008, "The parameter to is required.");
}

/// The body of an answer as JSON, with its `x-request-id`.
async fn answered(response: axum::response::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get(super::hygiene::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        id,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(start_paused = true)]
async fn a_panic_and_a_request_out_of_time_answer_the_envelope_naming_the_request() {
    let routes = super::hygiene::guarded(
        Router::new()
            .route(
                "/panics",
                axum::routing::get(|| async {
                    if std::hint::black_box(true) {
                        panic!("a secret in a panic message");
                    }
                }),
            )
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(super::hygiene::REQUEST_TIMEOUT * 2).await;
                }),
            )
            .route(
                "/fails",
                axum::routing::get(|| async { super::ApiError::unknown() }),
            ),
    );
    let get = |uri: &str| {
        Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request")
    };
    let mut ids = std::collections::BTreeSet::new();
    for (uri, status, code) in [
        ("/panics", 500, 131_000),
        ("/slow", 503, 131_016),
        ("/fails", 500, 131_000),
    ] {
        let (got, id, body) =
            answered(routes.clone().oneshot(get(uri)).await.expect("answer")).await;
        assert_eq!(
            (got, &body["error"]["code"]),
            (status, &json!(code)),
            "{uri}: {body}"
        );
        assert!(
            id.starts_with('A') && id.len() > 20,
            "{uri} answers its id: {id:?}"
        );
        assert_eq!(
            body["error"]["fbtrace_id"],
            id.as_str(),
            "{uri}: the envelope names the request"
        );
        assert!(
            !body.to_string().contains("secret"),
            "no panic message in an answer"
        );
        ids.insert(id);
    }
    assert_eq!(ids.len(), 3, "every request has an id of its own");
}
