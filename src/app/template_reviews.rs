//! The review of new message templates (issue 16): a template is approved once its review
//! time ([`REVIEW_MS`]) is over, and that outcome is recorded (`TemplateReviewed`) so the
//! `message_template_status_update` webhook tells the business, as the Cloud API does. Run by
//! the node holding the housekeeping lease; recording is idempotent (a library records only
//! what it has not yet), so a pass repeated after a stop or on another node adds nothing.

use super::{AppError, Sealpost};
use sealpost_domain::aggregates::templates::{TemplateCommand, TemplateEvent, REVIEW_MS};
use sealpost_domain::time::DAY_MS;
use sealpost_domain::{BusinessId, Principal, Region};
use std::collections::BTreeSet;

/// The stream type of template libraries.
const TEMPLATES: &str = "templates";
/// How long a review that could not be recorded waits before it is tried again.
const RETRY_MS: i64 = 60_000;

/// The reviews still to record: the submissions followed so far, by when each is over.
#[derive(Debug, Default)]
pub struct Reviews {
    followed: u64,
    due: BTreeSet<(i64, BusinessId, Region)>,
}

impl Sealpost {
    /// Records every review that is over: follows new submissions, then records the outcome
    /// in each library with one due. Returns how many libraries were recorded in.
    pub async fn record_template_reviews(&self, reviews: &mut Reviews) -> Result<usize, AppError> {
        let events = self
            .store()
            .read_kind_since(TEMPLATES, reviews.followed)
            .await?;
        for e in &events {
            if let TemplateEvent::TemplateSubmitted {
                business_id, at, ..
            } = e.decode::<TemplateEvent>()?
            {
                let region: Region = e
                    .header
                    .region
                    .parse()
                    .map_err(|_| AppError::Corrupt("template region"))?;
                reviews
                    .due
                    .insert((at.millis() + REVIEW_MS, business_id, region));
            }
        }
        if let Some(last) = events.last() {
            reviews.followed = last.position;
        }
        let now = self.now().millis();
        let principal = Principal::processor("template-review");
        let mut recorded = 0;
        let mut later = Vec::new();
        while let Some(first) = reviews.due.pop_first() {
            if first.0 > now {
                reviews.due.insert(first);
                break;
            }
            // A review over for more than a day was recorded already, or was over before
            // reviews were recorded at all (an upgrade): telling it now would be stale news.
            if now - first.0 > DAY_MS {
                tracing::info!(
                    "a template review over for more than a day is not told again (already recorded, or before reviews were)"
                );
                continue;
            }
            let (_, business, region) = &first;
            let command = TemplateCommand::RecordReviews;
            match self
                .catalog()
                .template_command(&principal, business, *region, command)
                .await
            {
                Ok(()) => recorded += 1,
                // One library in trouble holds up no other: it is tried again in a minute.
                Err(e) => {
                    tracing::warn!(error = %e, "a template review not recorded yet");
                    later.push((now + RETRY_MS, first.1, first.2));
                }
            }
        }
        reviews.due.extend(later);
        Ok(recorded)
    }
}
