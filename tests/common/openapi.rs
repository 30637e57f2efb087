//! Every exchange of the black-box tests checked against the OpenAPI document the binary
//! describes itself with (`sealpost openapi`, the same document `serve` answers): the route and
//! method must be described, the status must be among the operation's answers, a JSON answer
//! must validate against its schema (JSON Schema 2020-12), and a JSON request the server
//! accepted must validate against the request body's.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The document, read once per test binary.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealpost"))
            .arg("openapi")
            .output()
            .expect("sealpost openapi");
        assert!(out.status.success(), "sealpost openapi failed");
        serde_json::from_slice(&out.stdout).expect("the document is JSON")
    })
}

/// The described path template `path` (no query) falls under, if any: literal segments
/// first, as the router matches them.
/// A trailing `{path}` (the router's catch-all tail, `{*path}`, whose marker OpenAPI's templates
/// cannot carry) may span several segments when no template fits segment for segment.
pub fn template_of(path: &str) -> Option<&'static str> {
    template_fitting(path, false).or_else(|| template_fitting(path, true))
}

fn template_fitting(path: &str, tails: bool) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut best: Option<(&'static str, usize)> = None;
    for template in document()["paths"].as_object().expect("paths").keys() {
        let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        let tail = tails && parts.last() == Some(&"{path}");
        let fits = if tail {
            segments.len() >= parts.len()
        } else {
            segments.len() == parts.len()
        };
        if !fits {
            continue;
        }
        let mut literal = 0;
        let matches = parts.iter().zip(&segments).all(|(p, s)| {
            if p.starts_with('{') {
                !s.is_empty()
            } else {
                literal += 1;
                p == s
            }
        });
        if matches && best.is_none_or(|(_, l)| literal > l) {
            best = Some((template.as_str(), literal));
        }
    }
    best.map(|(t, _)| t)
}

/// A validator of `schema` (inside the document, so its `$ref`s resolve), cached.
fn validator(key: String, schema: &Value) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().expect("cache").get(&key) {
        return v.clone();
    }
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
    });
    root["components"] = document()["components"].clone();
    let v = Arc::new(
        jsonschema::options()
            .build(&root)
            .unwrap_or_else(|e| panic!("the schema of {key} does not compile: {e}")),
    );
    cache.lock().expect("cache").insert(key, v.clone());
    v
}

/// `value` validates against `schema`, or the test fails naming `what` and the first errors.
fn validates(what: &str, schema: &Value, value: &Value) {
    let v = validator(what.to_owned(), schema);
    let errors: Vec<String> = v
        .iter_errors(value)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match the OpenAPI document: {errors:?}\nvalue: {value}"
    );
}

/// The media type's schema of `content` for `content_type` (its `application/json` member for
/// any JSON).
fn schema_for<'a>(content: &'a Value, content_type: &str) -> Option<&'a Value> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    content
        .get(essence)
        .or_else(|| content.get("*/*"))
        .and_then(|m| m.get("schema"))
}

/// Checks one exchange. `request` is the JSON body sent, if one was; `answer` the JSON body
/// answered (`Null` when it was not JSON).
pub fn check(
    method: &str,
    path: &str,
    request: Option<&Value>,
    status: u16,
    content_type: &str,
    answer: &Value,
) {
    let Some(template) = template_of(path) else {
        // A path no route answers: the fallback's unknown-path envelope, nothing else.
        assert_eq!(
            (status, &answer["error"]["code"]),
            (404, &json!(100)),
            "{method} {path} is not in the OpenAPI document but answered {status}: {answer}"
        );
        return;
    };
    let Some(op) = document()["paths"][template].get(method.to_ascii_lowercase()) else {
        assert_eq!(
            (status, &answer["error"]["code"]),
            (404, &json!(100)),
            "{method} {template} is not in the OpenAPI document but answered {status}"
        );
        return;
    };
    let responses = &op["responses"];
    let code = status.to_string();
    let range = format!("{}XX", status / 100);
    let described = responses
        .get(&code)
        .or_else(|| responses.get(&range))
        .or_else(|| responses.get("default"))
        .unwrap_or_else(|| {
            panic!("{method} {template} answered {status}, which its operation does not describe")
        });
    // What it answered is a media type the operation answers (or any, for `*/*`).
    if let (Some(content), false) = (described["content"].as_object(), content_type.is_empty()) {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        assert!(
            content.contains_key(essence) || content.contains_key("*/*"),
            "{method} {template} answered {status} as {essence}, which the document does not say"
        );
    }
    let json = content_type.starts_with("application/json");
    if let (true, Some(schema)) = (json, schema_for(&described["content"], content_type)) {
        validates(
            &format!("the {status} answer of {method} {template}"),
            schema,
            answer,
        );
    }
    if let (true, Some(body)) = ((200..300).contains(&status), request) {
        if let Some(schema) = op["requestBody"]["content"]["application/json"].get("schema") {
            validates(
                &format!("the accepted request of {method} {template}"),
                schema,
                body,
            );
        }
    }
}
