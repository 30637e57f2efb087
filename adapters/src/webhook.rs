//! The HTTP client side of webhooks: posting signed notifications and the `hub.challenge`
//! verification handshake. URLs are business information; error texts drop them anyway.

use std::time::Duration;

/// Posts webhooks: over https with rustls, trusting the webpki roots and any extra CAs the
/// operator names; over plain http only to a loopback address unless the operator allows it.
#[derive(Debug, Clone)]
pub struct Poster {
    client: reqwest::Client,
    allow_http: bool,
}

impl Default for Poster {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a callback URL is refused, said to the business that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefused {
    /// Not an absolute http(s) URL with a host.
    #[error("callback_url must be an https:// URL.")]
    NotAUrl,
    /// Plain http to a host that is not this machine.
    #[error(
        "callback_url must be https://; plain http:// is accepted for a loopback address only."
    )]
    PlainHttp,
}

/// Why the extra trusted CAs could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the webhook CA file holds no usable PEM certificate: {0}")]
pub struct BadCaFile(String);

impl Poster {
    /// A poster trusting the webpki roots only, plain http to loopback only.
    pub fn new() -> Self {
        Self::with(None, false).unwrap_or_else(|_| Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            allow_http: false,
        })
    }

    /// A poster trusting the webpki roots and the certificates of `extra_ca_pem` (a PEM
    /// bundle), with a 10-second timeout per request; `allow_http` admits plain http to any
    /// host.
    pub fn with(extra_ca_pem: Option<&[u8]>, allow_http: bool) -> Result<Self, BadCaFile> {
        // No redirects: a 3xx would re-send a signed body to a URL `admits` never saw.
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        if let Some(pem) = extra_ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| BadCaFile(e.to_string()))?;
            if certs.is_empty() {
                return Err(BadCaFile("no certificate in it".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| BadCaFile(e.to_string()))?;
        Ok(Self { client, allow_http })
    }

    /// Whether webhooks may be posted to `url`: https anywhere, http to loopback (or anywhere
    /// when allowed).
    pub fn admits(&self, url: &str) -> Result<(), CallbackRefused> {
        let parsed = reqwest::Url::parse(url).map_err(|_| CallbackRefused::NotAUrl)?;
        let host = parsed.host().ok_or(CallbackRefused::NotAUrl)?;
        match parsed.scheme() {
            "https" => Ok(()),
            "http" if self.allow_http || is_loopback(&host) => Ok(()),
            "http" => Err(CallbackRefused::PlainHttp),
            _ => Err(CallbackRefused::NotAUrl),
        }
    }

    /// Posts `body` with the given extra headers; the endpoint's HTTP status, or why there was none.
    pub async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<u16, String> {
        self.admits(url).map_err(|e| e.to_string())?;
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
            .map_err(reason)
    }

    /// The verification handshake: `GET url?hub.mode=subscribe&hub.challenge=…&hub.verify_token=…`
    /// must answer 200 with the challenge as its body.
    pub async fn verify(&self, url: &str, verify_token: &str) -> bool {
        if self.admits(url).is_err() {
            return false;
        }
        let challenge = format!("{}", rand::random::<u64>());
        let req = self.client.get(url).query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", challenge.as_str()),
            ("hub.verify_token", verify_token),
        ]);
        match req.send().await {
            Ok(r) if r.status().as_u16() == 200 => match r.text().await {
                Ok(t) => t.trim() == challenge,
                Err(e) => {
                    tracing::warn!(error = %reason(e), "the webhook handshake's answer did not read");
                    false
                }
            },
            Ok(r) => {
                tracing::warn!(
                    status = r.status().as_u16(),
                    "the webhook handshake was refused"
                );
                false
            }
            Err(e) => {
                // The reason (an untrusted certificate, a refused connection), never the URL.
                tracing::warn!(error = %reason(e), "the webhook handshake failed");
                false
            }
        }
    }
}

/// Why a request failed, with its causes (an untrusted certificate, a refused connection),
/// never its URL.
fn reason(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut said = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        said.push_str(": ");
        said.push_str(&c.to_string());
        cause = c.source();
    }
    said
}

/// Whether `host` is this machine: `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_to_loopback_only() {
        let strict = Poster::new();
        for ok in [
            "https://hooks.example.com/wa",
            "https://10.0.0.5:8443/x",
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:80/",
        ] {
            assert_eq!(strict.admits(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("http://hooks.example.com/wa", CallbackRefused::PlainHttp),
            ("http://10.0.0.5/x", CallbackRefused::PlainHttp),
            ("http://localhost.example.com/", CallbackRefused::PlainHttp),
            ("ftp://hooks.example.com/", CallbackRefused::NotAUrl),
            ("hooks.example.com/wa", CallbackRefused::NotAUrl),
            ("https://", CallbackRefused::NotAUrl),
        ] {
            assert_eq!(strict.admits(bad), Err(why), "{bad}");
        }
        let open = Poster::with(None, true).expect("a poster");
        assert_eq!(open.admits("http://hooks.example.com/wa"), Ok(()));
        assert_eq!(
            open.admits("ftp://hooks.example.com/"),
            Err(CallbackRefused::NotAUrl)
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        assert!(Poster::with(Some(b"not a pem"), false).is_err());
        assert!(Poster::with(Some(b""), false).is_err());
    }
}
