//! What every request goes through (`src/http/hygiene.rs`), seen from outside: an id answered
//! as `x-request-id` and named by the error envelope's `fbtrace_id`, and gzip for an evidence
//! answer a client accepts it for.

use crate::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_names_its_request_and_evidence_is_gzipped_on_request() {
    let s = start();
    let token = s.s("access_token");
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    // A success and an error each name their request; the error's envelope names it too.
    let ok = s
        .request(reqwest::Method::GET, "/healthz")
        .send()
        .await
        .expect("get");
    let ok_id = header(&ok, "x-request-id");
    assert!(ok_id.starts_with('A'), "{ok_id:?}");
    let bad = s
        .request(reqwest::Method::GET, "/v21.0/1")
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("get");
    let bad_id = header(&bad, "x-request-id");
    let body: serde_json::Value =
        serde_json::from_slice(&bad.bytes().await.expect("body")).expect("json");
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(body["error"]["fbtrace_id"], bad_id.as_str());
    assert_ne!(ok_id, bad_id, "each request has its own id");

    // The retention report, gzipped when asked for, plain otherwise.
    let report = |gzip: bool| {
        let mut r = s
            .request(reqwest::Method::GET, "/sealpost/v1/dpo/retention")
            .bearer_auth(&token);
        if gzip {
            r = r.header("accept-encoding", "gzip");
        }
        r.send()
    };
    let plain = report(false).await.expect("get");
    assert_eq!(plain.status().as_u16(), 200);
    assert_eq!(header(&plain, "content-encoding"), "");
    let plain = plain.bytes().await.expect("body");
    assert!(serde_json::from_slice::<serde_json::Value>(&plain).is_ok());
    let zipped = report(true).await.expect("get");
    assert_eq!(zipped.status().as_u16(), 200);
    assert_eq!(header(&zipped, "content-encoding"), "gzip");
    let zipped = zipped.bytes().await.expect("body");
    assert_eq!(&zipped[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(zipped.len() < plain.len(), "smaller than the plain answer");
}
