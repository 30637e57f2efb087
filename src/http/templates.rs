//! Message templates of a WhatsApp Business Account (`/{version}/{waba-id}/message_templates`):
//! submit for review, list, delete. A template is APPROVED once its review time has passed
//! (`TemplateLibrary` decides).

use super::extract::{JsonBody, Management, Owned, OwnedWaba, Query, Waba};
use super::{ApiError, Shared};
use crate::app::AppError;
use axum::extract::State;
use axum::Json;
use sealpost_domain::aggregates::templates::{TemplateCommand, TemplateLibrary};
use sealpost_domain::{BusinessId, DomainError};
use serde_json::{json, Value};
use std::collections::BTreeMap;

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
pub(super) async fn create(
    State(s): State<Shared>,
    waba: OwnedWaba<Management>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
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
        .unwrap_or_else(|| json!([]))
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
    Ok(Json(
        json!({ "id": id, "status": "PENDING", "category": category }),
    ))
}

/// `GET …/message_templates`: `data[{name, language, id, category, status, components}]`.
pub(super) async fn list(
    State(s): State<Shared>,
    Owned {
        resource: Waba { business, .. },
        ..
    }: OwnedWaba<Management>,
) -> Result<Json<Value>, ApiError> {
    let library = library(&s, &business).await?;
    let now = s.app.now();
    let data: Vec<Value> = library
        .templates
        .iter()
        .map(|((name, language), t)| {
            json!({
                "name": name, "language": language, "id": t.id, "category": t.category,
                "status": TemplateLibrary::status(t, now),
                "components": serde_json::from_str::<Value>(&t.components).unwrap_or_else(|_| json!([])),
            })
        })
        .collect();
    Ok(Json(
        json!({ "data": data, "paging": { "cursors": { "before": "", "after": "" } } }),
    ))
}

/// `DELETE …/message_templates?name=` → `{"success": true}`.
pub(super) async fn delete(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
    waba: OwnedWaba<Management>,
) -> Result<Json<Value>, ApiError> {
    let name = q
        .get("name")
        .cloned()
        .ok_or_else(|| ApiError::invalid("name is required."))?;
    template_command(&s, &waba, TemplateCommand::Delete { name }).await?;
    Ok(Json(json!({ "success": true })))
}
