//! Webhook subscriptions (`POST /{version}/{app-id}/subscriptions`, JSON or form-encoded) and
//! the app's webhook worker, (re)started on a subscription, at start-up, and when another node
//! recorded a subscription ([`follow_subscriptions`]).

use super::bodies::Success;
use super::extract::{App, BodyBytes, Management, OwnedApp};
use super::{ApiError, Shared};
use crate::app::AppError;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use sealpost_domain::apps::AppEvent;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use tokio::sync::watch;
use utoipa::ToSchema;

/// The webhook fields an app may subscribe to (those Sealpost posts changes of, and those it
/// accepts though nothing it does changes them yet).
pub(super) const WEBHOOK_FIELDS: [&str; 6] = [
    "messages",
    "message_template_status_update",
    "phone_number_quality_update",
    "account_update",
    "phone_number_name_update",
    "business_capability_update",
];

/// Starts (or restarts) the webhook worker of an app, as `row` (the apps projection) has it:
/// its callback, the fields it takes and whether it is subscribed to its WABA.
pub(super) async fn start_hook(s: &Shared, app_id: &str) -> Result<(), AppError> {
    // One restart at a time, from the app as the log has it once this restart's turn comes:
    // two restarts racing never leave a worker on the older subscription, or two workers.
    let _one = s.hook_restarts.lock().await;
    let apps = crate::app::apps(s.app.store()).await?;
    let Some(row) = apps.get(app_id) else {
        return Err(AppError::Domain(sealpost_domain::DomainError::NotFound));
    };
    let Some(subscription) = row.subscription.clone() else {
        return Ok(());
    };
    let secret = s
        .app
        .store()
        .vault()
        .app_secret(row.business.as_str(), row.region, app_id, None)
        .await?
        .ok_or(AppError::KeyMissing("app secret"))?;
    let hook = crate::webhooks::Hook {
        app_id: app_id.to_owned(),
        business: row.business.clone(),
        waba_id: row.waba_id.clone(),
        region: row.region,
        callback_url: subscription.callback_url,
        fields: subscription.fields,
        muted: row.muted.clone(),
        secret,
        numbers: s.numbers.clone(),
    };
    // Stop the app's old worker before the new one starts: one worker per app at a time.
    let old = s.hooks.lock().await.remove(app_id);
    if let Some((stop, handle, _)) = old {
        let _ = stop.send(true);
        let _ = handle.await;
    }
    // A new subscription gets what happens from now on, not the history still in retention.
    let checkpoint = crate::webhooks::checkpoint_name(app_id);
    let log = s.app.store().log();
    if log.load_checkpoint(&checkpoint).await? == 0 {
        log.save_checkpoint(&checkpoint, log.head().await?, None)
            .await?;
    }
    let (tx, rx) = watch::channel(false);
    let claim = s.claim(&crate::nodes::webhook(app_id));
    let task = tokio::spawn(crate::webhooks::run(
        s.app.clone(),
        hook,
        s.poster.clone(),
        claim,
        rx,
    ));
    s.hooks
        .lock()
        .await
        .insert(app_id.to_owned(), (tx, task, row.clone()));
    Ok(())
}

/// Restarts the worker of every app whose subscription changed since the last call (a
/// callback, its fields, the WABA subscription; recorded here or by another node), so that
/// whichever node holds an app's webhook lease posts what the app asked for, where it asked.
pub(super) async fn follow_subscriptions(s: &Shared) -> Result<(), AppError> {
    let mut followed = s.apps_followed.lock().await;
    let events = s
        .app
        .store()
        .read_kind_since(sealpost_domain::apps::APP_STREAM_TYPE, *followed)
        .await?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(());
    };
    let changed: std::collections::BTreeSet<String> = events
        .iter()
        .filter(|e| e.header.event_type != "WebhookDeliveryExhausted")
        .map(|e| e.header.stream.id.clone())
        .collect();
    let apps = crate::app::apps(s.app.store()).await?;
    for app_id in changed {
        let Some(row) = apps.get(&app_id) else {
            continue;
        };
        let running = s
            .hooks
            .lock()
            .await
            .get(&app_id)
            .map(|(_, _, started)| started.clone());
        if row.subscription.is_some()
            && running.as_ref() != Some(row)
            && s.apps.lock().await.contains_key(&app_id)
        {
            tracing::info!(app = %app_id, "webhook subscription changed: worker restarted");
            start_hook(s, &app_id).await?;
        }
    }
    *followed = last;
    Ok(())
}

/// Restarts `app_id`'s worker as the log has the app now (after this node recorded a change).
pub(super) async fn restart_from_log(s: &Shared, app_id: &str) -> Result<(), AppError> {
    start_hook(s, app_id).await
}

/// The parameters of a subscription body: form-encoded (every value a string) or JSON.
fn params(headers: &HeaderMap, bytes: &[u8]) -> Result<BTreeMap<String, Value>, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        Ok(serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
            .map_err(|_| ApiError::invalid("The form body is malformed."))?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect())
    } else {
        serde_json::from_slice(bytes)
            .map_err(|_| ApiError::invalid("The request body is not valid JSON."))
    }
}

/// `POST /{version}/{app-id}/subscriptions` (`object`, `callback_url`, `verify_token`,
/// `fields`): verified by `hub.challenge`, recorded, and the app's worker (re)started.
#[utoipa::path(
    post,
    path = "/{version}/{id}/subscriptions",
    tag = "webhooks",
    params(super::openapi::Version, super::openapi::AppPath),
    request_body(
        description = "JSON or form-encoded",
        content(
            (Subscription = "application/json"),
            (Subscription = "application/x-www-form-urlencoded"),
        ),
    ),
    responses((status = 200, description = "Verified, recorded, and posted to from now on", body = Success)),
    security(("bearer" = [])),
)]
pub(super) async fn subscribe(
    State(s): State<Shared>,
    app: OwnedApp<Management>,
    headers: HeaderMap,
    BodyBytes(bytes): BodyBytes,
) -> Result<Json<Success>, ApiError> {
    let params = params(&headers, &bytes)?;
    let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
    if text("object").as_deref() != Some("whatsapp_business_account") {
        return Err(ApiError::invalid(
            "object must be whatsapp_business_account.",
        ));
    }
    let callback_url =
        text("callback_url").ok_or_else(|| ApiError::invalid("callback_url is required."))?;
    s.poster
        .admits(&callback_url)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let verify_token =
        text("verify_token").ok_or_else(|| ApiError::invalid("verify_token is required."))?;
    let fields: Vec<String> = match params.get("fields") {
        Some(Value::String(f)) => f
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec!["messages".to_owned()],
    };
    if fields.is_empty() || !fields.iter().all(|f| WEBHOOK_FIELDS.contains(&f.as_str())) {
        return Err(ApiError::invalid(format!(
            "fields must name one or more of: {}.",
            WEBHOOK_FIELDS.join(", ")
        )));
    }
    if !s.poster.verify(&callback_url, &verify_token).await {
        return Err(ApiError::invalid(
            "The callback URL did not answer the hub.challenge verification.",
        ));
    }
    let App {
        id: app_id,
        business,
        region,
    } = app.resource;
    let event = AppEvent::WebhookSubscribed {
        object: "whatsapp_business_account".into(),
        callback_url: callback_url.clone(),
        fields,
        at: s.app.now(),
    };
    crate::webhooks::record(&s.app, &app_id, &business, region, event).await?;
    restart_from_log(&s, &app_id).await?;
    Ok(Success::done())
}

/// A webhook subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member (JSON or form) for the API's codes; its schema.
pub(super) struct Subscription {
    /// Always `whatsapp_business_account`.
    object: String,
    /// `https://` (plain `http://` for loopback, or when the operator allows it).
    callback_url: String,
    /// Echoed back by the callback's `hub.challenge` verification.
    verify_token: String,
    /// The fields to post (default `messages`): an array, or comma-separated.
    fields: Option<Value>,
}
