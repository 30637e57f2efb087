//! Webhooks: every subscribed app gets signed Cloud API notifications of its business's
//! inbound messages and message statuses.
//!
//! Each app has its own worker and its own durable checkpoint (`webhook:<app id>`), so a slow or
//! dead endpoint of one business never delays another's. A worker builds a batch of
//! notifications ([`notification`]: what each says), posts them several consumers at a time,
//! each consumer's in log order, and moves its checkpoint past the batch only once every one was
//! answered 200 or given up on and recorded: delivery is at-least-once and survives a restart (re-sent notifications carry the same
//! `X-Sealpost-Notification-Id`, and the Cloud API ids inside let the business de-duplicate).
//! A non-200 answer is retried with exponential backoff and jitter for up to 7 days, never
//! beyond the message's retention; an exhausted delivery is recorded.

use crate::app::{AppError, Sealpost};
use rand::Rng as _;
use sealpost_adapters::crypto;
use sealpost_adapters::ledger::{OpenedEvent, PlainEvent};
use sealpost_adapters::store::StreamId;
use sealpost_adapters::webhook::Poster;
use sealpost_domain::apps::{AppEvent, APP_STREAM_TYPE};
use sealpost_domain::time::DAY_MS;
use sealpost_domain::{BusinessId, Principal, Region};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

mod notification;
use notification::{build, notifiable, Built, Known};

/// How long a notification is retried: 7 days.
pub const RETRY_WINDOW_MS: i64 = 7 * DAY_MS;
/// First retry delay; doubled per attempt up to [`RETRY_MAX`].
pub const RETRY_BASE: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(3_600);
/// The principal webhooks read content and numbers as.
pub const WEBHOOK_PRINCIPAL: &str = "webhooks";

/// One app's subscription.
#[derive(Clone)]
pub struct Hook {
    /// The app.
    pub app_id: String,
    /// Its business.
    pub business: BusinessId,
    /// The WABA id that goes in `entry[].id`.
    pub waba_id: String,
    /// Where the business's data lives.
    pub region: Region,
    /// The verified callback URL.
    pub callback_url: String,
    /// The fields subscribed (`messages`, …): a change of another field is not posted.
    pub fields: Vec<String>,
    /// The log positions between which the app was unsubscribed from its WABA (the last one
    /// open while it still is): nothing that happened then is posted.
    pub muted: Vec<(u64, Option<u64>)>,
    /// The app secret (signs the body).
    pub secret: String,
    /// Business numbers: phone number id → display number.
    pub numbers: Arc<BTreeMap<String, String>>,
}

impl Hook {
    /// Whether a change of `field` recorded at log `position` is posted to this app.
    pub fn delivers(&self, field: &str, position: u64) -> bool {
        let muted = self
            .muted
            .iter()
            .any(|(from, to)| position > *from && to.is_none_or(|to| position < to));
        !muted && self.fields.iter().any(|f| f == field)
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

fn principal() -> Principal {
    Principal::processor(WEBHOOK_PRINCIPAL)
}

/// Records an app event.
pub async fn record(
    app: &Sealpost,
    app_id: &str,
    business: &BusinessId,
    region: Region,
    event: AppEvent,
) -> Result<(), AppError> {
    let metadata = sealpost_adapters::exec::CommandMeta::new(
        business.as_str(),
        region,
        &Principal::processor("business-manager"),
    )
    .to_map();
    let ctx = sealpost_adapters::ledger::EventContext {
        business_id: business.as_str().to_owned(),
        region,
        epoch: None,
    };
    let stream = StreamId::new(business.as_str(), APP_STREAM_TYPE, app_id);
    app.store()
        .append_at_end(&stream, &ctx, vec![PlainEvent::of(&event, metadata)?])
        .await?;
    Ok(())
}

/// One attempt at posting `n`: whether the endpoint took it (`None`: it no longer builds,
/// nothing to tell). A Local Storage region's body is built for the attempt, under a hold on
/// its region, and dropped with the hold when the attempt ends.
async fn post_once(
    app: &Sealpost,
    hook: &Hook,
    client: &Poster,
    n: &Built,
    attempt: u32,
) -> Result<Option<bool>, AppError> {
    let _in_use = n.source.as_ref().and_then(|e| {
        e.header
            .region
            .parse()
            .ok()
            .map(|region| app.transit().hold(region))
    });
    let body = match &n.source {
        Some(e) => match build(app, hook, e, &Known::default()).await {
            Ok(Some(b)) => zeroize::Zeroizing::new(b.body),
            Ok(None) => return Ok(None),
            // The store is out of reach: the attempt is tried again.
            Err(err) if err.is_unavailable() => return Err(err),
            // It no longer builds (its keys destroyed, its subject erased): given up, so the
            // app's later notifications are not held up behind it.
            Err(err) => {
                tracing::warn!(error = %err, app_id = %hook.app_id, "webhook notification no longer builds; given up");
                return Ok(None);
            }
        },
        None => zeroize::Zeroizing::new(n.body.clone()),
    };
    let signature = format!("sha256={}", crypto::hmac_hex(hook.secret.as_bytes(), &body));
    // The post is a span of the trace of the event it tells of (the request that caused it);
    // the callback gets that trace as `traceparent`. Its URL is not recorded.
    let span = tracing::info_span!(
        "webhook POST",
        otel.kind = "client",
        http.request.method = "POST",
        http.response.status_code = tracing::field::Empty,
        attempt,
    );
    sealpost_adapters::telemetry::continue_trace(&span, n.trace.as_deref());
    let mut headers = vec![
        ("x-hub-signature-256", signature),
        ("x-sealpost-notification-id", n.id.clone()),
    ];
    if let Some(tp) = span.in_scope(sealpost_adapters::telemetry::current_traceparent) {
        headers.push(("traceparent", tp));
    }
    let started = std::time::Instant::now();
    let answered = tracing::Instrument::instrument(
        client.post(&hook.callback_url, body.to_vec(), &headers),
        span.clone(),
    )
    .await;
    if let Ok(status) = &answered {
        span.record("http.response.status_code", status);
    }
    let outcome = match &answered {
        Ok(200) => "delivered",
        Ok(_) => "refused",
        Err(_) => "error",
    };
    crate::metrics::metrics().webhook(outcome, started.elapsed().as_secs_f64());
    match answered {
        Ok(200) => return Ok(Some(true)),
        Ok(status) => {
            tracing::warn!(attempt, status, app_id = %hook.app_id, "webhook not accepted; retrying")
        }
        Err(e) => {
            tracing::warn!(attempt, error = %e, app_id = %hook.app_id, "webhook not delivered; retrying")
        }
    }
    Ok(Some(false))
}

/// Posts one notification until the endpoint answers 200, the retry window closes or the
/// worker is stopped. Returns whether it was delivered (`None`: stopped).
async fn deliver(
    app: &Sealpost,
    hook: &Hook,
    client: &Poster,
    n: &Built,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<bool>, AppError> {
    let first = n.since;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match post_once(app, hook, client, n, attempt).await? {
            Some(true) => return Ok(Some(true)),
            // Gone meanwhile (its subject erased, its keys destroyed): nothing to tell.
            None => return Ok(Some(false)),
            Some(false) => {}
        }
        let now = app.now();
        if now.millis() - first.millis() >= RETRY_WINDOW_MS || now >= n.expires {
            record(
                app,
                &hook.app_id,
                &hook.business,
                hook.region,
                AppEvent::WebhookDeliveryExhausted {
                    notification_id: n.id.clone(),
                    attempts: attempt,
                    at: now,
                },
            )
            .await?;
            return Ok(Some(false));
        }
        let backoff = RETRY_BASE
            .saturating_mul(1u32 << attempt.min(20))
            .min(RETRY_MAX);
        let jitter =
            Duration::from_millis(rand::rng().random_range(0..=backoff.as_millis() as u64 / 2));
        tokio::select! {
            _ = stop.changed() => return Ok(None),
            () = tokio::time::sleep(backoff / 2 + jitter) => {}
        }
    }
}

/// The durable checkpoint of an app's webhook worker.
pub fn checkpoint_name(app_id: &str) -> String {
    format!("webhook:{app_id}")
}

/// The log positions between which the app was unsubscribed from its WABA, read from its
/// stream now.
async fn muted_now(app: &Sealpost, hook: &Hook) -> Result<Vec<(u64, Option<u64>)>, AppError> {
    let stream = StreamId::new(hook.business.as_str(), APP_STREAM_TYPE, &hook.app_id);
    let mut muted = Vec::new();
    for e in app.store().read_stream(&stream, 0).await? {
        match e.decode::<AppEvent>()? {
            AppEvent::WabaSubscribed { .. } => crate::app::mute(&mut muted, true, e.position),
            AppEvent::WabaUnsubscribed { .. } => crate::app::mute(&mut muted, false, e.position),
            _ => {}
        }
    }
    Ok(muted)
}

/// Waits a second before trying again; whether the worker was told to stop meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(Duration::from_secs(1)) => false,
    }
}

/// Notifications of one app built at once.
pub const BUILDS_IN_FLIGHT: usize = 16;
/// Notifications of one app posted at once (each consumer's one at a time, in log order).
pub const POSTS_IN_FLIGHT: usize = 16;

/// Builds a notification, trying again while the store or the gate is in trouble (the
/// checkpoint must not pass it). `None`: told to stop.
async fn build_retrying(
    app: &Sealpost,
    hook: &Hook,
    e: &OpenedEvent,
    known: &Known,
    mut stop: watch::Receiver<bool>,
) -> Option<Option<Built>> {
    loop {
        // The first build has a Local Storage region's data in memory too.
        let _in_use = e.header.region.parse().ok().map(|r| app.transit().hold(r));
        match build(app, hook, e, known).await {
            Ok(b) => return Some(b.map(|b| b.held_only_while_posted(e))),
            Err(err) => {
                tracing::error!(error = %err, "webhook notification could not be built; trying again");
                if pause(&mut stop).await {
                    return None;
                }
            }
        }
    }
}

/// Posts one consumer's notifications in order, each until delivered or given up on and
/// recorded. `false`: told to stop.
async fn post_lane(
    app: &Sealpost,
    hook: &Hook,
    client: &Poster,
    lane: Vec<Built>,
    mut stop: watch::Receiver<bool>,
) -> bool {
    for n in lane {
        loop {
            match deliver(app, hook, client, &n, &mut stop).await {
                Ok(Some(_)) => break,
                Ok(None) => return false,
                Err(err) => {
                    tracing::error!(error = %err, "webhook outcome not recorded; trying again");
                    if pause(&mut stop).await {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Runs one app's webhook worker until `stop` turns true, while this node holds the app's
/// webhook lease (`claim`; ADR 0016). A batch of the log is built
/// ([`BUILDS_IN_FLIGHT`] at once, its messages and consumers read in one query each) and
/// posted ([`POSTS_IN_FLIGHT`] consumers at once, each consumer's notifications in order); the
/// checkpoint moves past the batch once every one of them was delivered or given up on and
/// recorded, fenced by the lease. A stop mid-batch, or a lease taken over, leaves the
/// checkpoint before it: its notifications are posted again (at least once, with the same
/// notification ids) by whoever holds the lease next.
pub async fn run(
    app: Sealpost,
    hook: Hook,
    client: Poster,
    mut claim: crate::nodes::Claim,
    mut stop: watch::Receiver<bool>,
) {
    use futures::StreamExt as _;
    let mut hook = Arc::new(hook);
    let checkpoint = checkpoint_name(&hook.app_id);
    let mut sub = match app.store().subscribe_durable(&checkpoint).await {
        Ok(s) => s.only(notifiable),
        Err(e) => {
            tracing::error!(error = %e, "webhook worker could not start");
            return;
        }
    };
    let mut epoch = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(grant) = claim.grant() else {
            epoch = None;
            tokio::select! {
                _ = stop.changed() => {}
                () = claim.changed() => {}
            }
            continue;
        };
        // Held anew: another node may have moved the checkpoint meanwhile.
        if epoch != Some(grant.epoch) {
            match app.store().log().load_checkpoint(&checkpoint).await {
                Ok(position) => sub.seek(position),
                Err(e) => {
                    tracing::error!(error = %e, "webhook worker could not read its checkpoint");
                    if pause(&mut stop).await {
                        return;
                    }
                    continue;
                }
            }
            epoch = Some(grant.epoch);
        }
        let batch = match sub.try_next_batch().await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "webhook worker could not read the log");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(25)) => {}
            }
            continue;
        }
        // Whether the app was subscribed to its WABA when each event happened, as the log has
        // it now: a (un)subscription recorded while this worker ran counts at once.
        match muted_now(&app, &hook).await {
            Ok(muted) if muted != hook.muted => {
                hook = Arc::new(Hook {
                    muted,
                    ..(*hook).clone()
                });
            }
            Ok(_) => {}
            // Not knowing whether the app left its WABA, post nothing: read the batch again.
            Err(e) => {
                tracing::warn!(error = %e, "the app's subscription not read; trying again");
                epoch = None;
                if pause(&mut stop).await {
                    return;
                }
                continue;
            }
        }
        // The batch's messages and consumers read once; a notification reads its own only if
        // that read failed.
        let known = Arc::new(Known::read(&app, &hook.business, &batch).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "webhook batch not read at once; reading per notification");
            Known::default()
        }));
        let builds = batch.into_iter().map(|e| {
            let (app, hook, known, stop) = (app.clone(), hook.clone(), known.clone(), stop.clone());
            async move { build_retrying(&app, &hook, &e, &known, stop).await }
        });
        let built: Vec<Option<Option<Built>>> = futures::stream::iter(builds)
            .buffered(BUILDS_IN_FLIGHT)
            .collect()
            .await;
        let Some(built) = built.into_iter().collect::<Option<Vec<_>>>() else {
            return;
        };
        let lanes =
            crate::pipeline::grouped(built.into_iter().flatten().map(|n| (n.lane.clone(), n)));
        let posts = lanes.into_iter().map(|(_, lane)| {
            let (app, hook, client, stop) =
                (app.clone(), hook.clone(), client.clone(), stop.clone());
            async move { post_lane(&app, &hook, &client, lane, stop).await }
        });
        let posted: Vec<bool> = futures::stream::iter(posts)
            .buffer_unordered(POSTS_IN_FLIGHT)
            .collect()
            .await;
        if posted.contains(&false) {
            return;
        }
        while let Err(err) = app
            .store()
            .log()
            .save_checkpoint(&checkpoint, sub.position(), grant.fence.as_ref())
            .await
        {
            if err.is_fenced() {
                // Another node holds the app's webhooks now; it posts this batch again.
                tracing::warn!(app = %hook.app_id, "webhook lease taken over; this node stops posting");
                epoch = None;
                tokio::select! {
                    _ = stop.changed() => {}
                    () = claim.changed() => {}
                }
                break;
            }
            tracing::error!(error = %err, "webhook checkpoint not saved; trying again");
            if pause(&mut stop).await {
                return;
            }
        }
    }
}
