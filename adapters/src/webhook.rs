//! The HTTP client side of webhooks: posting signed notifications and the `hub.challenge`
//! verification handshake. URLs are business information; error texts drop them anyway.

use std::time::Duration;

/// Posts webhooks.
#[derive(Debug, Clone)]
pub struct Poster {
    client: reqwest::Client,
}

impl Default for Poster {
    fn default() -> Self {
        Self::new()
    }
}

impl Poster {
    /// A poster with a 10-second timeout per request.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { client }
    }

    /// Posts `body` with the given extra headers; the endpoint's HTTP status, or why there was none.
    pub async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<u16, String> {
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        req.send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.without_url().to_string())
    }

    /// The verification handshake: `GET url?hub.mode=subscribe&hub.challenge=…&hub.verify_token=…`
    /// must answer 200 with the challenge as its body.
    pub async fn verify(&self, url: &str, verify_token: &str) -> bool {
        let challenge = format!("{}", rand::random::<u64>());
        let req = self.client.get(url).query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", challenge.as_str()),
            ("hub.verify_token", verify_token),
        ]);
        match req.send().await {
            Ok(r) if r.status().as_u16() == 200 => {
                r.text().await.is_ok_and(|t| t.trim() == challenge)
            }
            _ => false,
        }
    }
}
