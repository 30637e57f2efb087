//! The transport's integrity signals, written to its own streams (`integrity/<phone number id>`).

use super::*;

/// Writes the transport's integrity signals to the transport's own streams in the event store
/// (`integrity/<phone number id>`), classified `integrity signals`.
#[derive(Debug)]
pub struct IntegrityRecorder {
    store: Arc<sealpost_adapters::ledger::EventStore>,
    numbers: std::sync::Mutex<BTreeMap<String, (BusinessId, Region, PhoneNumberId)>>,
}

impl IntegrityRecorder {
    /// A recorder writing into `app`'s store.
    pub fn new(app: &Sealpost) -> Arc<Self> {
        Arc::new(Self {
            store: app.store().clone(),
            numbers: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    pub(super) fn register(
        &self,
        handle: &str,
        business: BusinessId,
        region: Region,
        id: PhoneNumberId,
    ) {
        self.numbers
            .lock()
            .expect("recorder lock is never poisoned")
            .insert(handle.to_owned(), (business, region, id));
    }

    pub(super) async fn append(
        &self,
        business: &str,
        events: Vec<IntegrityEvent>,
    ) -> Result<(), AppError> {
        let Some((business_id, region, id)) = self
            .numbers
            .lock()
            .expect("recorder lock is never poisoned")
            .get(business)
            .cloned()
        else {
            return Err(AppError::NotAttached);
        };
        let stream = sealpost_adapters::store::StreamId::new(
            business_id.as_str(),
            INTEGRITY_STREAM_TYPE,
            id.as_str(),
        );
        let metadata = sealpost_adapters::exec::CommandMeta::new(
            business_id.as_str(),
            region,
            &Principal::of_kind(PrincipalKind::Transport, "whatsapp"),
        )
        .to_map();
        let plain = events
            .iter()
            .map(|e| sealpost_adapters::ledger::PlainEvent::of(e, metadata.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = sealpost_adapters::ledger::EventContext {
            business_id: business_id.as_str().to_owned(),
            region,
            epoch: None,
        };
        self.store.append_at_end(&stream, &ctx, plain).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl IntegritySink for IntegrityRecorder {
    async fn record(&self, business: &str, events: Vec<IntegrityEvent>) {
        if let Err(e) = self.append(business, events).await {
            tracing::warn!(error = %e, "integrity signals not recorded");
        }
    }
}

/// Signal batches taken from the transport at a time.
const SIGNALS_CHUNK: usize = 64;

impl Pipeline {
    /// Takes the integrity signals a transport in another process kept for the number into the
    /// store (the number's integrity stream), then acknowledges them: recorded at least once,
    /// by the node that serves the number, so every node reads the same rating and tier.
    pub(super) async fn take_signals(&self, handle: &str) -> Result<(), AppError> {
        let Some(recorder) = &self.integrity else {
            return Ok(());
        };
        loop {
            let batches = self.transport.take_signals(handle, SIGNALS_CHUNK).await?;
            let Some(through) = batches.last().map(|b| b.id) else {
                return Ok(());
            };
            let more = batches.len() == SIGNALS_CHUNK;
            let events: Vec<IntegrityEvent> = batches.into_iter().flat_map(|b| b.events).collect();
            if !events.is_empty() {
                recorder.append(handle, events).await?;
            }
            self.transport.ack_signals(handle, through).await?;
            if !more {
                return Ok(());
            }
        }
    }
}
