//! What a business offers and how it is set up: its template library, its own record, and
//! the commands an owner runs on its phone numbers. Handlers and the pipeline reach these
//! streams through here, never through the executor.

use super::*;
use sealpost_domain::aggregates::templates::{TemplateCommand, TemplateLibrary};

impl Sealpost {
    /// A business's template library.
    pub async fn templates(&self, business: &BusinessId) -> Result<TemplateLibrary, AppError> {
        Ok(self
            .exec
            .load::<TemplateLibrary>(business.as_str())
            .await?
            .0)
    }

    /// Runs a command of a business's template library as `actor`.
    pub async fn template_command(
        &self,
        actor: &Principal,
        business: &BusinessId,
        region: Region,
        command: TemplateCommand,
    ) -> Result<(), AppError> {
        let meta = CommandMeta::new(business.as_str(), region, actor);
        self.exec
            .execute::<TemplateLibrary>(business.as_str(), command, &meta, self.now())
            .await?;
        Ok(())
    }

    /// A business's record (name, messaging-limit tier).
    pub async fn business(&self, id: &BusinessId) -> Result<Business, AppError> {
        let (state, _) = self.exec.load::<Business>(id.as_str()).await?;
        state.id.as_ref().ok_or(DomainError::NotFound)?;
        Ok(state)
    }

    /// Runs an owner's command on a phone number of `business` (settings, registration).
    pub async fn number_command(
        &self,
        actor: &Principal,
        number: &PhoneNumberId,
        home: (&BusinessId, Region),
        command: PhoneNumberCommand,
    ) -> Result<(), AppError> {
        let meta = CommandMeta::new(home.0.as_str(), home.1, actor);
        self.exec
            .execute::<PhoneNumber>(number.as_str(), command, &meta, self.now())
            .await?;
        Ok(())
    }
}
