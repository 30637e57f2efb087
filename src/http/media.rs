//! Media over the Cloud API: upload (multipart), description with a short-lived download URL,
//! download, delete; and attaching an uploaded object to a message sent by id.
//!
//! An id that is unknown, expired, deleted or another business's gets one and the same answer,
//! so a token never learns whether someone else's media exists.

use super::bodies::Success;
use super::extract::{Auth, Id, Messaging, Number, Owned, OwnedNumber, Path};
use super::{ApiError, Shared};
use crate::app::media::{acceptable_mime, content_matches, MediaMeta, MAX_MEDIA_BYTES};
use crate::app::transit::InUse;
use crate::app::AppError;
use crate::identity::Grant;
use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use futures::StreamExt as _;
use sealpost_audit::GateError;
use sealpost_domain::identity::SCOPE_MESSAGING;
use sealpost_domain::media::MediaOrigin;
use sealpost_domain::MessageContent;
use sealpost_domain::{DomainError, MediaId};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

/// How long a download URL works (the Cloud API says 5 minutes).
pub const DOWNLOAD_URL_TTL_S: i64 = 300;
/// The request body limit of an upload: the largest object plus room for the form around it.
pub const UPLOAD_BODY_LIMIT: usize = MAX_MEDIA_BYTES + 64 * 1024;

/// Unknown, expired, deleted and foreign objects all answer this.
fn absent() -> ApiError {
    ApiError::denied()
}

fn media_error(e: AppError) -> ApiError {
    match e {
        AppError::Domain(DomainError::NotFound) | AppError::Gate(GateError::Denied(_)) => absent(),
        other => ApiError::from(other),
    }
}

/// What an upload's form holds: `messaging_product`, `type`, and the file (its part's MIME
/// type, file name and bytes).
type Form = (
    Option<String>,
    Option<String>,
    Option<(Option<String>, Option<String>, axum::body::Bytes)>,
);

async fn read_form(mut form: Multipart) -> Result<Form, ApiError> {
    let (mut product, mut declared, mut file) = (None, None, None);
    loop {
        let field = form.next_field().await.map_err(|_| {
            ApiError::invalid(format!(
                "The form is malformed or larger than {MAX_MEDIA_BYTES} bytes."
            ))
        })?;
        let Some(field) = field else { break };
        match field.name().unwrap_or_default() {
            "messaging_product" => product = field.text().await.ok(),
            "type" => declared = field.text().await.ok(),
            "file" => {
                let mime = field.content_type().map(str::to_owned);
                let name = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(|_| {
                    ApiError::invalid(format!(
                        "The file is unreadable or larger than {MAX_MEDIA_BYTES} bytes."
                    ))
                })?;
                file = Some((mime, name, bytes));
            }
            _ => {}
        }
    }
    Ok((product, declared, file))
}

/// `POST /{version}/{phone-number-id}/media` (multipart: `messaging_product`, `file`, optional
/// `type`) → `{"id": "<media-id>"}`.
#[utoipa::path(
    post,
    path = "/{version}/{id}/media",
    tag = "media",
    params(super::openapi::Version, super::openapi::PhoneNumberPath),
    request_body(content = Upload, content_type = "multipart/form-data"),
    responses((status = 200, description = "Stored and sealed", body = Uploaded)),
    security(("bearer" = [])),
)]
pub(super) async fn upload(
    State(s): State<Shared>,
    Owned {
        grant,
        resource: Number { id: number, .. },
        ..
    }: OwnedNumber<Messaging>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Uploaded>, ApiError> {
    let form = multipart
        .map_err(|_| ApiError::invalid("The upload must be a multipart/form-data body."))?;
    let (product, declared, file) = read_form(form).await?;
    match product.as_deref() {
        None => return Err(ApiError::missing("messaging_product")),
        Some("whatsapp") => {}
        Some(_) => return Err(ApiError::not_valid("messaging_product")),
    }
    let (part_mime, filename, bytes) = file.ok_or_else(|| ApiError::missing("file"))?;
    if bytes.is_empty() {
        return Err(ApiError::not_valid("file"));
    }
    if bytes.len() > MAX_MEDIA_BYTES {
        return Err(ApiError::invalid(format!(
            "The file is larger than {MAX_MEDIA_BYTES} bytes."
        )));
    }
    let mime = declared
        .or(part_mime)
        .ok_or_else(|| ApiError::missing("type"))?;
    if !acceptable_mime(&mime) {
        return Err(ApiError::not_valid("type"));
    }
    if !content_matches(&mime, &bytes) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            131_053,
            "The file's contents do not match its declared MIME type.",
        ));
    }
    let media = s
        .app
        .media()
        .store_media(
            &grant.principal,
            grant
                .principal
                .business
                .as_ref()
                .ok_or_else(ApiError::denied)?,
            &number,
            MediaOrigin::Upload,
            None,
            &mime,
            filename.as_deref(),
            &bytes,
        )
        .await?;
    Ok(Json(Uploaded {
        id: media.as_str().to_owned(),
    }))
}

/// An upload's form.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Read part by part from the form; this is its schema.
pub(super) struct Upload {
    /// Always `whatsapp`.
    messaging_product: String,
    /// The bytes (with the part's MIME type and file name).
    #[schema(format = Binary, value_type = String)]
    file: Vec<u8>,
    /// The MIME type, when the part does not carry it.
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// An uploaded object.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Uploaded {
    /// Its media id.
    id: String,
}

/// A media object, with a download URL that works 5 minutes for the same token.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MediaObject {
    /// Always `whatsapp`.
    messaging_product: &'static str,
    /// The signed download URL.
    url: String,
    /// Its MIME type.
    mime_type: String,
    /// SHA-256 of the bytes, hex.
    sha256: String,
    /// Its size in bytes, as a decimal string.
    file_size: String,
    /// Its media id.
    id: String,
}

/// The signature of a download URL: binds the object, the expiry and the token that asked.
fn signature(s: &Shared, media: &str, expires: i64, token_id: &str) -> String {
    sealpost_adapters::crypto::hmac_hex(
        s.url_key.as_slice(),
        format!("{media}|{expires}|{token_id}").as_bytes(),
    )
}

/// The `Host` the client used, if it is a plain host[:port].
fn host(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(str::to_owned)
}

/// `GET /{version}/{media-id}` for a media object of the token's business; `None` when the id
/// is no such object (the caller then answers as for a phone number).
pub(super) async fn describe(
    s: &Shared,
    grant: &Grant,
    id: &str,
    headers: &HeaderMap,
) -> Result<Option<MediaObject>, ApiError> {
    let Ok(media) = MediaId::parse(id) else {
        return Ok(None);
    };
    let meta: MediaMeta = match s.app.media().media_meta(&grant.principal, &media).await {
        Ok(m) => m,
        Err(AppError::Domain(DomainError::NotFound) | AppError::Gate(GateError::Denied(_))) => {
            return Ok(None)
        }
        Err(other) => return Err(other.into()),
    };
    if !grant.scopes.iter().any(|sc| sc == SCOPE_MESSAGING) {
        return Err(absent());
    }
    let expires = s.app.now().unix_seconds() + DOWNLOAD_URL_TTL_S;
    let sig = signature(s, media.as_str(), expires, &grant.token_id);
    let base = host(headers).unwrap_or_else(|| "127.0.0.1".into());
    Ok(Some(MediaObject {
        messaging_product: "whatsapp",
        url: format!("http://{base}/sealpost/v1/media/{media}?expires={expires}&signature={sig}"),
        mime_type: meta.mime_type,
        sha256: meta.sha256,
        file_size: meta.file_size.to_string(),
        id: media.as_str().to_owned(),
    }))
}

/// The query of a download URL.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Signed {
    /// Unix seconds after which the URL no longer works.
    expires: i64,
    /// The URL's signature (for the token that asked for it).
    signature: String,
}

/// `GET /sealpost/v1/media/{media-id}?expires=…&signature=…` with the same bearer token: the
/// bytes, with their MIME type.
#[utoipa::path(
    get,
    path = "/sealpost/v1/media/{id}",
    tag = "media",
    params(super::openapi::MediaPath, Signed),
    responses((status = 200, description = "The bytes, with their MIME type", content_type = "*/*", body = Vec<u8>)),
    security(("bearer" = [])),
)]
pub(super) async fn download(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Auth { grant, .. }: Auth<Messaging>,
    query: Result<Query<Signed>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|_| ApiError::invalid("The download URL is incomplete."))?;
    let media = MediaId::parse(&id).map_err(|_| absent())?;
    let expected = signature(&s, media.as_str(), q.expires, &grant.token_id);
    if !sealpost_adapters::crypto::ct_eq(expected.as_bytes(), q.signature.as_bytes()) {
        return Err(ApiError::invalid(
            "The download URL's signature is not valid for this token.",
        ));
    }
    if q.expires < s.app.now().unix_seconds() {
        return Err(ApiError::invalid(
            "The download URL has expired; ask for the media again.",
        ));
    }
    let (meta, bytes, in_use) = s
        .app
        .media()
        .media_bytes(&grant.principal, &media)
        .await
        .map_err(media_error)?;
    // The hold ends when the body has been handed to the connection, not when the handler
    // returns: the bytes are in memory until then. (A stream has no size: it is said.)
    let length = bytes.len();
    let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]).chain(
        futures::stream::once(async move {
            drop(in_use);
            None
        })
        .filter_map(std::future::ready),
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, meta.mime_type),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// `DELETE /{version}/{media-id}` → `{"success":true}`; the object's key is destroyed.
#[utoipa::path(
    delete,
    path = "/{version}/{id}",
    tag = "media",
    params(super::openapi::Version, super::openapi::MediaPath),
    responses((status = 200, description = "Deleted: its key is destroyed", body = Success)),
    security(("bearer" = [])),
)]
pub(super) async fn delete(
    State(s): State<Shared>,
    Path(Id { id }): Path<Id>,
    Auth { grant, .. }: Auth<Messaging>,
) -> Result<Json<Success>, ApiError> {
    let media = MediaId::parse(&id).map_err(|_| absent())?;
    s.app
        .media()
        .delete_media(&grant.principal, &media)
        .await
        .map_err(media_error)?;
    Ok(Success::done())
}

/// A send that names an uploaded media object by id carries the file itself inside the Signal
/// message (with its MIME type and hash), as the Cloud API delivers it; the id must be one the
/// token's business may read (else 131009 naming `<type>.id`).
///
/// With the content comes the hold of the media's bytes (a Local Storage region's outside its
/// region): the caller keeps it until the message is sealed and recorded.
pub(super) async fn attach(
    s: &Shared,
    grant: &Grant,
    mut content: MessageContent,
) -> Result<(MessageContent, Option<InUse>), ApiError> {
    let kind = content.payload.type_name();
    let Some(media) = content.media_mut() else {
        return Ok((content, None));
    };
    let Some(raw) = media.id.clone() else {
        return Ok((content, None));
    };
    let field = format!("{kind}.id");
    let id = MediaId::parse(&raw).map_err(|_| ApiError::not_valid(&field))?;
    let (meta, bytes, in_use) = s
        .app
        .media()
        .media_bytes(&grant.principal, &id)
        .await
        .map_err(|e| match e {
            AppError::Domain(DomainError::NotFound) | AppError::Gate(GateError::Denied(_)) => {
                ApiError::not_valid(&field)
            }
            other => ApiError::from(other),
        })?;
    media.mime_type = Some(meta.mime_type);
    media.sha256 = Some(meta.sha256);
    if media.filename.is_none() {
        media.filename = meta.filename;
    }
    media.data = Some(base64::engine::general_purpose::STANDARD.encode(&bytes));
    Ok((content, Some(in_use)))
}
