//! The configuration file of `sealpost serve` (`--config FILE`, TOML). Precedence, highest
//! first: a command-line flag, its environment variable, the file, the default.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "./sealpost-data"
//! # database_url = "postgres://postgres@127.0.0.1:5432/postgres"
//! sim_clock = false
//! throughput_per_second = 80            # a business number's standard throughput
//! upgraded_throughput_per_second = 1000 # after an upgrade
//! connect_timeout_seconds = 10          # wait for Postgres at start and per request
//! lease_ttl_seconds = 10                # a node's leases on background work last this long
//! lease_renew_seconds = 3               # and are renewed this often (at most half the TTL)
//! # transport_url = "http://127.0.0.1:9100" # a shared `sealpost transport` instead of the world in process
//! # webhook_ca_file = "/etc/sealpost/webhook-ca.pem" # CAs trusted beside the webpki roots
//! webhook_allow_http = false            # plain http:// callbacks to loopback only
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What the file may set. Unknown keys are refused, so a typo is not silently ignored.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where to listen.
    pub listen: Option<SocketAddr>,
    /// The data directory (relative paths are relative to the working directory).
    pub data_dir: Option<PathBuf>,
    /// Postgres instead of the embedded store.
    pub database_url: Option<String>,
    /// Where each Local Storage region's Postgres store is: a URL with `{region}` (the
    /// lower-case region code). Default: beside `database_url`, its name + `_<region>`.
    pub region_database_url: Option<String>,
    /// Run on the simulated clock.
    pub sim_clock: Option<bool>,
    /// Messages per second a business number may send (Cloud API default 80).
    pub throughput_per_second: Option<f64>,
    /// Messages per second after a throughput upgrade (Cloud API 1,000).
    pub upgraded_throughput_per_second: Option<f64>,
    /// How long to wait for Postgres: at start (then `serve` exits naming the host and port it
    /// tried) and for a pooled connection per request (then 503, code 131016). Default 10.
    pub connect_timeout_seconds: Option<u64>,
    /// How long a node's lease on background work lasts unless renewed (ADR 0016). Default 10.
    pub lease_ttl_seconds: Option<u64>,
    /// How often a node renews its leases; at most half the TTL. Default 3.
    pub lease_renew_seconds: Option<u64>,
    /// A `sealpost transport` shared by the nodes, instead of the simulated world in process.
    pub transport_url: Option<String>,
    /// A PEM file of CAs webhooks trust beside the webpki roots.
    pub webhook_ca_file: Option<PathBuf>,
    /// Plain http:// callbacks to any host, not only to loopback.
    pub webhook_allow_http: Option<bool>,
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML of this shape (the message names the line and key).
    #[error("the configuration file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// The accepted range of a throughput setting, messages per second.
pub const THROUGHPUT_RANGE: std::ops::RangeInclusive<f64> = 1.0..=100_000.0;

/// The accepted range of a lease's time to live, seconds.
pub const LEASE_TTL_RANGE: std::ops::RangeInclusive<u64> = 2..=300;

/// The accepted range of a lease's renewal interval, seconds (at most half the TTL, checked
/// with the TTL).
pub const LEASE_RENEW_RANGE: std::ops::RangeInclusive<u64> = 1..=150;

/// The accepted range of the connect timeout, seconds.
pub const CONNECT_TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=600;

impl FileConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and checks the text of a configuration file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        for (key, value) in [
            ("throughput_per_second", config.throughput_per_second),
            (
                "upgraded_throughput_per_second",
                config.upgraded_throughput_per_second,
            ),
        ] {
            if value.is_some_and(|v| !THROUGHPUT_RANGE.contains(&v)) {
                return Err(format!(
                    "{key} must be between {} and {} messages per second",
                    THROUGHPUT_RANGE.start(),
                    THROUGHPUT_RANGE.end()
                ));
            }
        }
        for (key, value, range) in [
            (
                "connect_timeout_seconds",
                config.connect_timeout_seconds,
                CONNECT_TIMEOUT_RANGE,
            ),
            (
                "lease_ttl_seconds",
                config.lease_ttl_seconds,
                LEASE_TTL_RANGE,
            ),
            (
                "lease_renew_seconds",
                config.lease_renew_seconds,
                LEASE_RENEW_RANGE,
            ),
        ] {
            if value.is_some_and(|v| !range.contains(&v)) {
                return Err(format!(
                    "{key} must be between {} and {} seconds",
                    range.start(),
                    range.end()
                ));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = FileConfig::parse(
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\nsim_clock = true\nthroughput_per_second = 20\nconnect_timeout_seconds = 3\n",
        )
        .expect("valid");
        assert_eq!(c.listen, Some("127.0.0.1:9000".parse().expect("addr")));
        assert_eq!(c.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(c.sim_clock, Some(true));
        assert_eq!(c.throughput_per_second, Some(20.0));
        assert_eq!(c.upgraded_throughput_per_second, None);
        assert_eq!(c.connect_timeout_seconds, Some(3));
    }

    #[test]
    fn typos_bad_values_and_bad_ranges_are_refused() {
        assert!(FileConfig::parse("lissten = \"127.0.0.1:1\"")
            .expect_err("unknown key")
            .contains("lissten"));
        assert!(FileConfig::parse("listen = \"not an address\"").is_err());
        assert!(FileConfig::parse("throughput_per_second = 0").is_err());
        assert!(FileConfig::parse("upgraded_throughput_per_second = -5").is_err());
        assert!(FileConfig::parse("connect_timeout_seconds = 0").is_err());
        assert!(FileConfig::parse("connect_timeout_seconds = 601").is_err());
        assert!(FileConfig::parse("lease_ttl_seconds = 1").is_err());
        assert!(FileConfig::parse("lease_renew_seconds = 0").is_err());
        assert!(FileConfig::parse("lease_ttl_seconds = 4\nlease_renew_seconds = 2").is_ok());
        assert_eq!(FileConfig::parse(""), Ok(FileConfig::default()));
    }
}
