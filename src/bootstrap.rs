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
    let region = Region::Eu;
    let now = app.now();
    let business = app.register_business("Development tenant", region).await?;
    let number = app
        .add_phone_number(&business, DEV_DISPLAY_NUMBER, region)
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
        .map_err(|_| AppError::Inconsistent("four tokens"))?;
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
        .ok_or(AppError::Inconsistent("app secret"))?;
    let b = Bootstrap {
        base_url: base_url.to_owned(),
        business_id: business.to_string(),
        waba_id,
        app_id,
        app_secret,
        phone_number_id: number.to_string(),
        display_phone_number: DEV_DISPLAY_NUMBER.to_owned(),
        access_token,
        auditor_token,
        dpo_token,
        internal_token,
        transport_token,
    };
    let json = serde_json::to_vec_pretty(&b).map_err(|_| AppError::Inconsistent("bootstrap"))?;
    sealpost_adapters::vault::write_private_file(&data_dir.join(BOOTSTRAP_FILE), &json)
        .map_err(|_| AppError::Inconsistent("bootstrap.json could not be written"))?;
    Ok((b, business, number))
}
