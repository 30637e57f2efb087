//! The PKCS#11 token the HSM custody's tests run against: SoftHSM2, with a token that `.ci/run`
//! initialises in a temporary directory (`SOFTHSM2_CONF`). Each test keeps its root keys under
//! labels of its own, so tests share the token without meeting.

use sealpost_adapters::vault::TokenConfig;

/// Environment variable that turns "no token" from a skip into a failure (`.ci/run` sets it).
pub const REQUIRE_HSM_ENV: &str = "SEALPOST_REQUIRE_HSM";
/// The PKCS#11 module (default: Debian's SoftHSM2).
pub const TEST_PKCS11_MODULE_ENV: &str = "SEALPOST_TEST_PKCS11_MODULE";
/// The token's label.
pub const TEST_PKCS11_TOKEN_ENV: &str = "SEALPOST_TEST_PKCS11_TOKEN";
/// The token's user PIN.
pub const TEST_PKCS11_PIN_ENV: &str = "SEALPOST_TEST_PKCS11_PIN";
/// Where Debian's `softhsm2` package puts the module.
pub const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The test token's configuration, its keys labelled `<label>-<random>-<REGION>`; `None` (after
/// a loud message) when there is no token and none is required. Panics when one is required.
pub fn test_token(label: &str) -> Option<TokenConfig> {
    let module =
        std::env::var(TEST_PKCS11_MODULE_ENV).unwrap_or_else(|_| SOFTHSM2_MODULE.to_owned());
    let found = (
        std::path::Path::new(&module).exists(),
        std::env::var("SOFTHSM2_CONF").is_ok() || !module.contains("softhsm"),
        std::env::var(TEST_PKCS11_TOKEN_ENV),
        std::env::var(TEST_PKCS11_PIN_ENV),
    );
    match found {
        (true, true, Ok(token), Ok(pin)) => Some(TokenConfig {
            module: module.into(),
            token,
            pin: pin.into(),
            key_label: format!("{label}-{}-{{region}}", uuid::Uuid::new_v4().simple()),
        }),
        _ if std::env::var(REQUIRE_HSM_ENV).is_ok_and(|v| v == "1") => panic!(
            "{REQUIRE_HSM_ENV}=1 but no PKCS#11 test token: set {TEST_PKCS11_TOKEN_ENV}, {TEST_PKCS11_PIN_ENV} and SOFTHSM2_CONF (.ci/run does)"
        ),
        _ => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPING HSM test '{label}': no PKCS#11 test token.\n!!! Set {REQUIRE_HSM_ENV}=1 to make this a failure.\n"
            );
            None
        }
    }
}

/// The environment a `sealpost` process is given to keep its root keys in `config`'s token.
pub fn token_env(config: &TokenConfig) -> Vec<(&'static str, String)> {
    use sealpost_adapters::vault::token_env as names;
    vec![
        (names::MODULE, config.module.display().to_string()),
        (names::TOKEN, config.token.clone()),
        (names::PIN, config.pin.to_string()),
        (names::KEY_LABEL, config.key_label.clone()),
    ]
}
