//! The development tenant `sealpost serve` makes on an empty store, and `bootstrap.json`
//! (mode 0600) that hands its identifiers and tokens to the person running it.

use crate::app::{AppError, Sealpost};
use crate::identity::Tokens;
use rand::RngCore as _;
use sealpost_domain::apps::AppEvent;
use sealpost_domain::identity::{SCOPE_MANAGEMENT, SCOPE_MESSAGING};
use sealpost_domain::{BusinessId, PhoneNumberId, Principal, PrincipalKind, Region};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The business number of the development tenant.
pub const DEV_DISPLAY_NUMBER: &str = "15550783881";
/// The file, in the data directory.
pub const BOOTSTRAP_FILE: &str = "bootstrap.json";

/// What `bootstrap.json` holds. Secrets: the file is created 0600 and never logged.
#[derive(Clone, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Where the API is.
    pub base_url: String,
    /// The business.
    pub business_id: String,
    /// Its WhatsApp Business Account.
    pub waba_id: String,
    /// Its app (webhook subscriptions).
    pub app_id: String,
    /// The app secret that signs webhooks.
    pub app_secret: String,
    /// The business phone number's id.
    pub phone_number_id: String,
    /// The business phone number.
    pub display_phone_number: String,
    /// The business system user's token.
    pub access_token: String,
    /// An auditor's token.
    pub auditor_token: String,
    /// The DPO's token.
    pub dpo_token: String,
    /// The operator's analytics token ("rest of the operator").
    pub internal_token: String,
    /// The transport's token.
    pub transport_token: String,
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("business_id", &self.business_id)
            .field("phone_number_id", &self.phone_number_id)
            .finish_non_exhaustive()
    }
}

/// Makes the development tenant and writes `<data_dir>/bootstrap.json`.
pub async fn bootstrap(
    app: &Sealpost,
    tokens: &Tokens,
    data_dir: &Path,
    base_url: &str,
) -> Result<(Bootstrap, BusinessId, PhoneNumberId), AppError> {
    let made = tenant(
        app,
        tokens,
        "Development tenant",
        DEV_DISPLAY_NUMBER,
        base_url,
    )
    .await?;
    let json = serde_json::to_vec_pretty(&made.0).map_err(|_| AppError::Encode("bootstrap"))?;
    sealpost_adapters::vault::write_private_file(&data_dir.join(BOOTSTRAP_FILE), &json).map_err(
        |source| AppError::File {
            what: "bootstrap.json",
            source,
        },
    )?;
    Ok(made)
}

/// `sealpost tenant add`: opens the store of `data_dir` (or Postgres), makes a tenant and
/// writes its secrets to `<data_dir>/tenant-<business-id>.json` (mode 0600); returns the path.
pub async fn add_tenant(
    data_dir: &Path,
    database_url: Option<&str>,
    region_database_url: Option<&str>,
    name: &str,
    display_number: &str,
) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context as _;
    let clock: std::sync::Arc<dyn sealpost_domain::ports::Clock> =
        std::sync::Arc::new(sealpost_adapters::clock::SystemClock);
    let policy = sealpost_domain::RetentionPolicy::default();
    if sealpost_domain::E164::parse(display_number).is_err() {
        anyhow::bail!("--display-number must be a phone number in E.164 digits");
    }
    sealpost_adapters::files::create_private_dir_all(data_dir).context("data directory")?;
    let app = Sealpost::open(
        data_dir,
        database_url,
        region_database_url,
        4,
        clock,
        policy,
    )
    .await?;
    let tokens = Tokens::load(app.store().clone()).await?;
    let base_url = std::fs::read(data_dir.join(BOOTSTRAP_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Bootstrap>(&b).ok())
        .map(|b| b.base_url)
        .unwrap_or_default();
    let (made, business, _) = tenant(&app, &tokens, name, display_number, &base_url).await?;
    let path = data_dir.join(format!("tenant-{business}.json"));
    let json = serde_json::to_vec_pretty(&made).context("tenant file")?;
    sealpost_adapters::vault::write_private_file(&path, &json).context("tenant file")?;
    app.gate().flush().await?;
    Ok(path)
}

/// Makes a tenant in Business Manager: a business, its WABA, a phone number, an app with its
/// secret, a system-user token with both scopes, and tokens for Sealpost's own principals
/// (auditor, DPO, internal analytics, transport). The returned secrets are the only copies.
pub async fn tenant(
    app: &Sealpost,
    tokens: &Tokens,
    name: &str,
    display_number: &str,
    base_url: &str,
) -> Result<(Bootstrap, BusinessId, PhoneNumberId), AppError> {
    let region = Region::Eu;
    let now = app.now();
    let business = app.catalog().register_business(name, region).await?;
    let number = app
        .catalog()
        .add_phone_number(&business, display_number, region)
        .await?;
    let access_token = tokens
        .issue(
            Principal::business(business.clone(), "system-user"),
            &[SCOPE_MESSAGING, SCOPE_MANAGEMENT],
            region,
            now,
        )
        .await?;
    let mut others = Vec::new();
    for (kind, id) in [
        (PrincipalKind::Auditor, "auditor"),
        (PrincipalKind::Dpo, "dpo"),
        (PrincipalKind::Operator, "internal-analytics"),
        (PrincipalKind::Transport, "transport"),
    ] {
        others.push(
            tokens
                .issue(Principal::of_kind(kind, id), &[], region, now)
                .await?,
        );
    }
    let [auditor_token, dpo_token, internal_token, transport_token]: [String; 4] = others
        .try_into()
        .map_err(|_| AppError::Encode("four tokens"))?;
    let app_id = BusinessId::from_random(rand::rng().next_u64()).to_string();
    let waba_id = BusinessId::from_random(rand::rng().next_u64()).to_string();
    crate::webhooks::record(
        app,
        &app_id,
        &business,
        region,
        AppEvent::AppRegistered {
            app_id: app_id.clone(),
            business_id: business.clone(),
            waba_id: waba_id.clone(),
            at: now,
        },
    )
    .await?;
    let app_secret = app
        .store()
        .vault()
        .app_secret(business.as_str(), region, &app_id, Some(now))
        .await?
        .ok_or(AppError::KeyMissing("app secret"))?;
    let b = Bootstrap {
        base_url: base_url.to_owned(),
        business_id: business.to_string(),
        waba_id,
        app_id,
        app_secret,
        phone_number_id: number.to_string(),
        display_phone_number: display_number.to_owned(),
        access_token,
        auditor_token,
        dpo_token,
        internal_token,
        transport_token,
    };
    Ok((b, business, number))
}
