//! Message templates of a WhatsApp Business Account (`/{version}/{waba-id}/message_templates`):
//! submit for review, list, delete. A template is APPROVED once its review time has passed
//! (`TemplateLibrary` decides).

use super::bodies::{Cursors, Page, Paging, Success};
use super::extract::{JsonBody, Management, Owned, OwnedWaba, Query, Waba};
use super::{ApiError, Shared};
use crate::app::AppError;
use axum::extract::State;
use axum::Json;
use sealpost_domain::aggregates::templates::{TemplateCommand, TemplateLibrary};
use sealpost_domain::{BusinessId, DomainError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// The business's template library.
pub(super) async fn library(
    s: &Shared,
    business: &BusinessId,
) -> Result<TemplateLibrary, ApiError> {
    Ok(s.app.catalog().templates(business).await?)
}

/// Runs a command of the business's template library as the token's principal.
async fn template_command(
    s: &Shared,
    waba: &OwnedWaba<Management>,
    command: TemplateCommand,
) -> Result<(), ApiError> {
    let Waba {
        business, region, ..
    } = &waba.resource;
    s.app
        .catalog()
        .template_command(&waba.grant.principal, business, *region, command)
        .await
        .map_err(|e| match e {
            AppError::Domain(DomainError::NotFound) => {
                ApiError::invalid("The template does not exist.")
            }
            AppError::Domain(DomainError::AlreadyExists) => {
                ApiError::invalid("A template with this name and language exists.")
            }
            AppError::Domain(DomainError::InvalidParameter(p)) => {
                ApiError::invalid(format!("The value of {p} is not valid."))
            }
            other => ApiError::from(other),
        })?;
    Ok(())
}

/// `POST …/message_templates` `{"name", "language", "category", "components"}` →
/// `{"id", "status": "PENDING", "category"}`.
#[utoipa::path(
    post,
    path = "/{version}/{id}/message_templates",
    tag = "templates",
    params(super::openapi::Version, super::openapi::WabaPath),
    request_body = NewTemplate,
    responses((status = 200, description = "Submitted for review", body = Submitted)),
    security(("bearer" = [])),
)]
pub(super) async fn create(
    State(s): State<Shared>,
    waba: OwnedWaba<Management>,
    JsonBody(body): JsonBody,
) -> Result<Json<Submitted>, ApiError> {
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::invalid(format!("{k} is required.")))
    };
    let (name, language, category) = (
        field("name")?,
        field("language")?,
        field("category")?.to_uppercase(),
    );
    let components = body
        .get("components")
        .cloned()
        .unwrap_or_else(|| Value::Array(Vec::new()))
        .to_string();
    let id = format!(
        "{}",
        rand::random::<u64>() % 900_000_000_000_000 + 100_000_000_000_000
    );
    let command = TemplateCommand::Create {
        business_id: waba.resource.business.clone(),
        id: id.clone(),
        name,
        language,
        category: category.clone(),
        components,
    };
    template_command(&s, &waba, command).await?;
    Ok(Json(Submitted {
        id,
        status: "PENDING",
        category,
    }))
}

/// A template submitted for review.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read member by member for the API's codes; this is its schema.
pub(super) struct NewTemplate {
    /// Its name.
    name: String,
    /// Its language code (`en_US`, …).
    language: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    category: String,
    /// Its header, body, footer and buttons, as the Cloud API has them.
    components: Option<Vec<Value>>,
}

/// A template in review.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Submitted {
    /// Its id.
    id: String,
    /// `PENDING`.
    status: &'static str,
    /// Its category.
    category: String,
}

/// A template of the library.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Listed {
    /// Its name.
    name: String,
    /// Its language code.
    language: String,
    /// Its id.
    id: String,
    /// Its category.
    category: String,
    /// `PENDING`, `APPROVED`, …
    status: String,
    /// Its components.
    components: Value,
}

/// `GET …/message_templates`: `data[{name, language, id, category, status, components}]`.
#[utoipa::path(
    get,
    path = "/{version}/{id}/message_templates",
    tag = "templates",
    params(super::openapi::Version, super::openapi::WabaPath),
    responses((status = 200, description = "The account's templates", body = Page<Listed>)),
    security(("bearer" = [])),
)]
pub(super) async fn list(
    State(s): State<Shared>,
    Owned {
        resource: Waba { business, .. },
        ..
    }: OwnedWaba<Management>,
) -> Result<Json<Page<Listed>>, ApiError> {
    let library = library(&s, &business).await?;
    let now = s.app.now();
    let data = library
        .templates
        .iter()
        .map(|((name, language), t)| Listed {
            name: name.clone(),
            language: language.clone(),
            id: t.id.clone(),
            category: t.category.clone(),
            status: TemplateLibrary::status(t, now).to_string(),
            components: serde_json::from_str::<Value>(&t.components)
                .unwrap_or_else(|_| Value::Array(Vec::new())),
        })
        .collect();
    let cursors = Cursors {
        before: Some(String::new()),
        after: Some(String::new()),
    };
    Ok(Json(Page {
        data,
        paging: Paging { cursors },
    }))
}

/// Which template to delete.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read as a map by the handler; this is its schema.
pub(super) struct Named {
    /// The template's name (every language of it).
    name: String,
}

/// `DELETE …/message_templates?name=` → `{"success": true}`.
#[utoipa::path(
    delete,
    path = "/{version}/{id}/message_templates",
    tag = "templates",
    params(super::openapi::Version, super::openapi::WabaPath, Named),
    responses((status = 200, description = "Deleted", body = Success)),
    security(("bearer" = [])),
)]
pub(super) async fn delete(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
    waba: OwnedWaba<Management>,
) -> Result<Json<Success>, ApiError> {
    let name = q
        .get("name")
        .cloned()
        .ok_or_else(|| ApiError::invalid("name is required."))?;
    template_command(&s, &waba, TemplateCommand::Delete { name }).await?;
    Ok(Success::done())
}
