//! Where the root keys' token is and how to reach it, from the environment.

use sealpost_domain::Region;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The environment variables that configure the token.
pub mod env {
    /// The module's path (the PKCS#11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub const MODULE: &str = "SEALPOST_PKCS11_MODULE";
    /// The label of the token that holds the root keys.
    pub const TOKEN: &str = "SEALPOST_PKCS11_TOKEN";
    /// The user PIN.
    pub const PIN: &str = "SEALPOST_PKCS11_PIN";
    /// A file holding the user PIN (instead of [`PIN`]).
    pub const PIN_FILE: &str = "SEALPOST_PKCS11_PIN_FILE";
    /// The label of a region's root key, with `{region}` for its code.
    pub const KEY_LABEL: &str = "SEALPOST_PKCS11_KEY_LABEL";
}

/// The default label of a region's root key.
pub const DEFAULT_KEY_LABEL: &str = "sealpost-root-{region}";

/// Where the root keys' token is and how to reach it.
#[derive(Clone)]
pub struct TokenConfig {
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
    /// The label of a region's root key, with `{region}` for its code.
    pub key_label: String,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("key_label", &self.key_label)
            .finish_non_exhaustive()
    }
}

impl TokenConfig {
    /// The configuration in the environment: `None` unless [`env::MODULE`] is set; then the
    /// token label and exactly one of a PIN or a PIN file are needed.
    pub fn from_env() -> Result<Option<Self>, String> {
        let text = |name: &str| -> Result<Option<String>, String> {
            match std::env::var_os(name) {
                None => Ok(None),
                Some(v) => v
                    .into_string()
                    .map(Some)
                    .map_err(|_| format!("{name} is not valid UTF-8")),
            }
        };
        let Some(module) = text(env::MODULE)? else {
            return Ok(None);
        };
        let token = text(env::TOKEN)?
            .ok_or_else(|| format!("{} is set but {} is not", env::MODULE, env::TOKEN))?;
        let pin = match (text(env::PIN)?, text(env::PIN_FILE)?) {
            (Some(pin), None) => Zeroizing::new(pin),
            (None, Some(path)) => {
                let mut read = Zeroizing::new(
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {}", env::PIN_FILE, e.kind()))?,
                );
                let kept = read.trim_end_matches(['\n', '\r']).len();
                read.truncate(kept);
                read
            }
            (Some(_), Some(_)) => {
                return Err(format!("set {} or {}, not both", env::PIN, env::PIN_FILE))
            }
            (None, None) => {
                return Err(format!(
                    "{} is set but neither {} nor {}",
                    env::MODULE,
                    env::PIN,
                    env::PIN_FILE
                ))
            }
        };
        Self {
            module: module.into(),
            token,
            pin,
            key_label: text(env::KEY_LABEL)?.unwrap_or_else(|| DEFAULT_KEY_LABEL.to_owned()),
        }
        .checked()
        .map(Some)
    }

    /// The configuration, if its key label names the region (without `{region}` every region
    /// would share one root key).
    pub fn checked(self) -> Result<Self, String> {
        if !self.key_label.contains("{region}") {
            return Err(format!(
                "{} must contain {{region}}: each region has a root key of its own",
                env::KEY_LABEL
            ));
        }
        Ok(self)
    }

    /// The label of `region`'s root key.
    pub fn label(&self, region: Region) -> String {
        self.key_label.replace("{region}", region.code())
    }
}
