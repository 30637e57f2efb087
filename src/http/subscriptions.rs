//! Webhook subscriptions (`POST /{version}/{app-id}/subscriptions`, JSON or form-encoded) and
//! the app's webhook worker, (re)started on a subscription, at start-up, and when another node
//! recorded a subscription ([`follow_subscriptions`]).

use super::extract::{App, BodyBytes, Management, OwnedApp};
use super::{ApiError, Shared};
use crate::app::AppError;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use sealpost_domain::apps::AppEvent;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tokio::sync::watch;

/// Starts (or restarts) the webhook worker of an app.
pub(super) async fn start_hook(
    s: &Shared,
    app_id: &str,
    callback_url: String,
) -> Result<(), AppError> {
    let Some((business, waba_id, region)) = s.apps.lock().await.get(app_id).cloned() else {
        return Err(AppError::Domain(sealpost_domain::DomainError::NotFound));
    };
    let secret = s
        .app
        .store()
        .vault()
        .app_secret(business.as_str(), region, app_id, None)
        .await?
        .ok_or(AppError::KeyMissing("app secret"))?;
    let url = callback_url.clone();
    let hook = crate::webhooks::Hook {
        app_id: app_id.to_owned(),
        business,
        waba_id,
        region,
        callback_url,
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
        .insert(app_id.to_owned(), (tx, task, url));
    Ok(())
}

/// Starts the worker of every app whose newest subscription (recorded by any node since the
/// last call) names a callback this node's worker does not post to, so that whichever node
/// holds an app's webhook lease posts to its current callback.
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
    // Each app's newest subscription: a worker never starts on a callback that was already
    // replaced.
    let mut newest = BTreeMap::new();
    for e in &events {
        if let AppEvent::WebhookSubscribed { callback_url, .. } = e.decode::<AppEvent>()? {
            newest.insert(e.header.stream.id.clone(), callback_url);
        }
    }
    for (app_id, callback_url) in newest {
        let current = s
            .hooks
            .lock()
            .await
            .get(&app_id)
            .map(|(_, _, url)| url.clone());
        if current.as_deref() != Some(callback_url.as_str())
            && s.apps.lock().await.contains_key(&app_id)
        {
            tracing::info!(app = %app_id, "webhook subscription recorded elsewhere: worker restarted");
            start_hook(s, &app_id, callback_url).await?;
        }
    }
    *followed = last;
    Ok(())
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
pub(super) async fn subscribe(
    State(s): State<Shared>,
    app: OwnedApp<Management>,
    headers: HeaderMap,
    BodyBytes(bytes): BodyBytes,
) -> Result<Json<Value>, ApiError> {
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
    start_hook(&s, &app_id, callback_url).await?;
    Ok(Json(json!({ "success": true })))
}
