//! The OpenAPI 3.1 description `GET /sealpost/v1/openapi.json` serves (no token), made from the
//! router itself: every route is registered with its handler's `#[utoipa::path]`, whose request
//! and response types derive their schemas (ADR 0028). A route cannot be served without being
//! described. Every operation also answers the Graph error envelope (`Error`) for 4XX and 5XX.

use super::error::ErrorEnvelope;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, InfoBuilder, LicenseBuilder, OpenApi, Ref};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// The Graph API version of a versioned route (`v17.0` … `v26.0`).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Read by the `ApiVersion` extractor; this is its schema.
pub(super) struct Version {
    /// `v17.0` … `v26.0`.
    #[param(pattern = r"^v(1[7-9]|2[0-6])\.0$")]
    version: String,
}

macro_rules! id_path {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The path's `id`: ", $what, ".")]
        #[derive(Debug, IntoParams)]
        #[into_params(parameter_in = Path)]
        #[allow(dead_code)] // Read by the route's extractor; this is its schema.
        pub(super) struct $name {
            #[doc = $what]
            id: String,
        }
    };
}

id_path!(PhoneNumberPath, "a phone number id of the token's business");
id_path!(
    WabaPath,
    "a WhatsApp Business Account id of the token's business"
);
id_path!(AppPath, "an app id of the token's business");
id_path!(
    AnyPath,
    "a phone number, media object or WhatsApp Business Account id"
);
id_path!(MediaPath, "a media id");
id_path!(MessagePath, "a message id (`wamid.…`)");
id_path!(TokenPath, "a token id");

/// The `?fields=a,b` of a read that narrows its answer.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read as a map by the handler; this is its schema.
pub(super) struct FieldsQuery {
    /// Comma-separated member names; the answer keeps only those (and its id).
    fields: Option<String>,
}

/// `GET /sealpost/v1/openapi.json`: this document (made once per process), with the
/// simulator's routes only when they are served.
#[utoipa::path(
    get,
    path = "/sealpost/v1/openapi.json",
    tag = "sealpost",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
pub(super) async fn document(
    axum::extract::State(s): axum::extract::State<super::Shared>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    static WITH_SIMULATOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static WITHOUT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = match s.sim.is_some() {
        true => WITH_SIMULATOR.get_or_init(|| super::openapi().to_json().unwrap_or_default()),
        false => WITHOUT.get_or_init(|| {
            finish(super::api().into_openapi())
                .to_json()
                .unwrap_or_default()
        }),
    };
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text.as_str(),
    )
        .into_response()
}

/// `doc` completed: title, version, licence, the bearer scheme, and the error envelope as the
/// answer of every operation for 4XX and 5XX.
pub(super) fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("Sealpost (Cloud API compatible)")
        .version(env!("CARGO_PKG_VERSION"))
        .license(Some(LicenseBuilder::new().name("AGPL-3.0-only").build()))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".into(),
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()).into(),
    );
    let mut schemas = Vec::new();
    <ErrorEnvelope as ToSchema>::schemas(&mut schemas);
    schemas.push((ErrorEnvelope::name().into(), ErrorEnvelope::schema()));
    components.schemas.extend(schemas);
    // A route's catch-all tail (`{*path}`) is a plain parameter in OpenAPI's templates.
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ] {
            let Some(op) = op else { continue };
            answers_errors(op);
            // One handler may serve two methods or paths: the id is the method and the path's
            // words (`post_version_id_messages`), unique as they are.
            let words: Vec<&str> = path
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            op.operation_id = Some(format!("{method}_{}", words.join("_")));
            // A handler's doc comment wraps; a summary is one line.
            if let Some(summary) = &mut op.summary {
                *summary = summary.split_whitespace().collect::<Vec<_>>().join(" ");
            }
        }
    }
    doc
}

/// `op` answers the error envelope for 4XX and 5XX.
fn answers_errors(op: &mut Operation) {
    let envelope = || {
        ResponseBuilder::new()
            .description("The Graph error envelope")
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name(ErrorEnvelope::name()))),
            )
            .build()
    };
    for range in ["4XX", "5XX"] {
        op.responses
            .responses
            .entry(range.into())
            .or_insert_with(|| envelope().into());
    }
}
