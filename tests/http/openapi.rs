//! The OpenAPI document: what the server answers is what `sealpost openapi` prints; an
//! independent OpenAPI 3.1 model reads it; every reference resolves; every operation declares
//! its path parameters, a JSON success schema and the error envelope; and every operation in it
//! is served (none answers as an unknown path). That the server's answers match it is checked
//! on every exchange of the black-box suites (`tests/common/openapi.rs`).

use crate::common::openapi::document;
use crate::start;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_and_describes_what_is_served() {
    let s = start();
    let resp = s
        .request(reqwest::Method::GET, "/sealpost/v1/openapi.json")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    let served: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("JSON");
    assert_eq!(
        &served,
        document(),
        "serve answers what `sealpost openapi` prints"
    );

    let text = serde_json::to_string(&served).expect("text");
    let spec = oas3::from_json(&text).expect("an OpenAPI 3.1 model reads the document");
    assert!(spec.openapi.starts_with("3.1"), "{}", spec.openapi);

    let mut refs = Vec::new();
    references(&served, &mut refs);
    assert!(
        refs.len() > 40,
        "the schemas are referenced, not inlined away"
    );
    for r in &refs {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(served.pointer(pointer).is_some(), "{r} resolves");
    }

    let paths = served["paths"].as_object().expect("paths");
    assert!(paths.len() >= 40, "every route: {}", paths.len());
    let mut operations = 0;
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let id = op["operationId"].as_str().expect("an operationId");
            assert!(ids.insert(id.to_owned()), "operationId {id} is unique");
            described(path, method, op);
            served_at(&s, path, method).await;
        }
    }
    assert!(operations >= 50, "{operations} operations");
    s.assert_log_clean(&crate::NEVER_LOGGED, &crate::common::server::SECRET_KEYS);
}

/// Every `$ref` in `v`.
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.push(r.clone());
            }
            o.values().for_each(|x| references(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// One operation declares each parameter of its path, a success with a schema (JSON, or the
/// bytes or text it answers), and the error envelope for 4XX and 5XX.
fn described(path: &str, method: &str, op: &Value) {
    let what = format!("{method} {path}");
    let declared: Vec<&str> = op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    for name in path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
    {
        assert!(declared.contains(&name), "{what} declares {{{name}}}");
    }
    let responses = op["responses"].as_object().expect("responses");
    let success: Vec<&Value> = responses
        .iter()
        .filter(|(code, _)| code.starts_with('2'))
        .map(|(_, r)| r)
        .collect();
    assert!(!success.is_empty(), "{what} has a success answer");
    for r in success {
        let content = r["content"].as_object().expect("a success has content");
        assert!(
            content.values().all(|m| m.get("schema").is_some()),
            "{what}: every success has a schema"
        );
    }
    for range in ["4XX", "5XX"] {
        assert_eq!(
            responses[range]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error",
            "{what} answers the error envelope for {range}"
        );
    }
    assert!(
        op["summary"].as_str().is_some_and(|s| !s.is_empty()),
        "{what} has a summary"
    );
}

/// The operation is routed: without a token (or with a bad one) it answers anything but the
/// unknown-path envelope. The answer is checked against the document like every other.
async fn served_at(s: &crate::common::server::Node, path: &str, method: &str) {
    let concrete = path
        .replace("{version}", "v21.0")
        .replace("{kind}", "inclusion")
        .replace("{path}", "0/000")
        .split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("m");
    let (status, body) = s
        .call(method.clone(), &concrete, Some("not-a-token"), None)
        .await;
    assert!(
        !(status == 404 && body["error"]["details"] == "Unknown path or method."),
        "{method} {concrete} is described but not served"
    );
}

/// `docs/api.md`'s index of routes is the document's: every operation, its success answers and
/// their schemas. `SEALPOST_BLESS=1` rewrites the index from the document.
#[test]
fn docs_api_md_lists_every_route_of_the_document() {
    const BEGIN: &str = "<!-- routes: begin (tests/http/openapi.rs; SEALPOST_BLESS=1 rewrites) -->";
    const END: &str = "<!-- routes: end -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md");
    let text = std::fs::read_to_string(&path).expect("docs/api.md");
    let (Some(a), Some(b)) = (text.find(BEGIN), text.find(END)) else {
        panic!("docs/api.md holds the index between {BEGIN} and {END}");
    };
    let expected = index();
    let current = &text[a + BEGIN.len()..b];
    if current != expected && std::env::var_os("SEALPOST_BLESS").is_some() {
        let rewritten = format!("{}{BEGIN}{expected}{}", &text[..a], &text[b..]);
        std::fs::write(&path, rewritten).expect("write docs/api.md");
        return;
    }
    assert_eq!(
        current, expected,
        "docs/api.md's route index differs from the OpenAPI document (SEALPOST_BLESS=1 rewrites it)"
    );
}

/// The index: one row per operation, by path then method.
fn index() -> String {
    let doc = document();
    let mut rows = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete"] {
            let Some(op) = item.get(method) else {
                continue;
            };
            let answers: Vec<String> = op["responses"]
                .as_object()
                .expect("responses")
                .iter()
                .filter(|(code, _)| code.starts_with('2'))
                .map(|(code, r)| {
                    let kinds: Vec<String> = r["content"]
                        .as_object()
                        .map(|c| {
                            c.iter()
                                .map(|(t, m)| schema_name(t, &m["schema"]))
                                .collect()
                        })
                        .unwrap_or_default();
                    format!("{code} {}", kinds.join(" or "))
                })
                .collect();
            let tag = op["tags"][0].as_str().unwrap_or_default();
            rows.push(format!(
                "| {tag} | {} | `{path}` | {} |",
                method.to_ascii_uppercase(),
                answers.join("; ")
            ));
        }
    }
    format!(
        "\n| group | method | path | success answer |\n|---|---|---|---|\n{}\n",
        rows.join("\n")
    )
}

/// A schema as the index names it: its component's name, or what a JSON-less answer is.
fn schema_name(content_type: &str, schema: &Value) -> String {
    match schema["$ref"].as_str() {
        Some(r) => format!("`{}`", r.rsplit('/').next().unwrap_or(r)),
        None if content_type.starts_with("text/") => content_type.to_owned(),
        None if content_type == "application/octet-stream" || content_type == "*/*" => {
            "bytes".to_owned()
        }
        None => "JSON".to_owned(),
    }
}
