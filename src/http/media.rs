//! Media over the Cloud API: upload (multipart), description with a short-lived download URL,
//! download, delete; and attaching an uploaded object to a message sent by id.
//!
//! An id that is unknown, expired, deleted or another business's gets one and the same answer,
//! so a token never learns whether someone else's media exists.

use super::bodies::Success;
use super::extract::{Auth, Id, Messaging, Number, Owned, OwnedNumber, Path};
use super::{ApiError, Shared};
use crate::app::media::{
    acceptable_mime, content_matches, limit_of, Media, MediaMeta, Upload as Incoming,
    MAX_MEDIA_BYTES,
};
use crate::app::AppError;
use crate::identity::Grant;
use axum::body::Body;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt as _;
use sealpost_audit::GateError;
use sealpost_domain::identity::SCOPE_MESSAGING;
use sealpost_domain::media::MediaOrigin;
use sealpost_domain::MessageContent;
use sealpost_domain::{DomainError, MediaId, PhoneNumberId, Purpose};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

/// How long a download URL works (the Cloud API says 5 minutes).
pub const DOWNLOAD_URL_TTL_S: i64 = 300;
/// The request body limit of an upload: the largest object plus room for the form around it.
pub const UPLOAD_BODY_LIMIT: usize = MAX_MEDIA_BYTES as usize + 64 * 1024;

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

/// An upload's form as it arrives: `messaging_product`, `type`, and the file, stored chunk by
/// chunk while it streams in (with its part's MIME type and file name).
#[derive(Default)]
struct Received<'a> {
    product: Option<String>,
    declared: Option<String>,
    file: Option<(Incoming<'a>, Option<String>, Option<String>)>,
}

fn unreadable() -> ApiError {
    ApiError::invalid(format!(
        "The form is malformed or its file larger than {MAX_MEDIA_BYTES} bytes."
    ))
}

fn too_large(mime: Option<&str>) -> ApiError {
    let (kind, limit) = mime.map_or(("file", MAX_MEDIA_BYTES), limit_of);
    ApiError::invalid(format!(
        "The file is larger than the {limit} bytes a {kind} may be."
    ))
}

/// Reads the form part by part; the file goes to storage as it streams in, under the limit of
/// the type declared so far, else its part's type (the largest when neither says).
async fn read_form<'a>(
    mut form: Multipart,
    (media, grant, number): (Media<'a>, &Grant, &PhoneNumberId),
    got: &mut Received<'a>,
) -> Result<(), ApiError> {
    while let Some(mut field) = form.next_field().await.map_err(|_| unreadable())? {
        match field.name().unwrap_or_default() {
            "messaging_product" => got.product = short_text(&mut field).await?,
            "type" => got.declared = short_text(&mut field).await?,
            "file" if got.file.is_none() => {
                let mime = field.content_type().map(str::to_owned);
                let name = field.file_name().map(str::to_owned);
                // The type that sets the limit while the file streams in.
                let limiting = got.declared.clone().or_else(|| mime.clone());
                let limit = limiting
                    .as_deref()
                    .map_or(MAX_MEDIA_BYTES, |m| limit_of(m).1);
                let business = grant
                    .principal
                    .business
                    .as_ref()
                    .ok_or_else(ApiError::denied)?;
                let upload = media
                    .begin_upload(
                        &grant.principal,
                        business,
                        number,
                        MediaOrigin::Upload,
                        None,
                    )
                    .await?;
                let (upload, _, _) = got.file.insert((upload, mime, name));
                while let Some(piece) = field.chunk().await.map_err(|_| unreadable())? {
                    if upload.size() + piece.len() as u64 > limit {
                        return Err(too_large(limiting.as_deref()));
                    }
                    upload.write(&piece).await?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A form's text field (`messaging_product`, `type`): at most [`SHORT_TEXT`] bytes, read as
/// it arrives; `None` when it is not UTF-8.
async fn short_text(field: &mut Field<'_>) -> Result<Option<String>, ApiError> {
    let mut text = Vec::new();
    while let Some(piece) = field.chunk().await.map_err(|_| unreadable())? {
        if text.len() + piece.len() > SHORT_TEXT {
            return Err(ApiError::invalid(format!(
                "A form field other than the file is longer than {SHORT_TEXT} bytes."
            )));
        }
        text.extend_from_slice(&piece);
    }
    Ok(String::from_utf8(text).ok())
}

/// The longest text field of an upload's form.
const SHORT_TEXT: usize = 1024;

/// What a complete form must be; the MIME type the file is stored under.
fn check(got: &Received<'_>) -> Result<String, ApiError> {
    match got.product.as_deref() {
        None => return Err(ApiError::missing("messaging_product")),
        Some("whatsapp") => {}
        Some(_) => return Err(ApiError::not_valid("messaging_product")),
    }
    let (upload, part_mime, _) = got.file.as_ref().ok_or_else(|| ApiError::missing("file"))?;
    if upload.size() == 0 {
        return Err(ApiError::not_valid("file"));
    }
    let mime = got
        .declared
        .clone()
        .or_else(|| part_mime.clone())
        .ok_or_else(|| ApiError::missing("type"))?;
    if !acceptable_mime(&mime) {
        return Err(ApiError::not_valid("type"));
    }
    if upload.size() > limit_of(&mime).1 {
        return Err(too_large(Some(&mime)));
    }
    if !content_matches(&mime, upload.head()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            131_053,
            "The file's contents do not match its declared MIME type.",
        ));
    }
    Ok(mime)
}

/// `POST /{version}/{phone-number-id}/media` (multipart: `messaging_product`, `file`, optional
/// `type`) → `{"id": "<media-id>"}`. The file is sealed in chunks as it arrives, never whole in
/// memory; a form that fails a check afterwards deletes what was stored.
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
    let mut got = Received::default();
    let checked = match read_form(form, (s.app.media(), &grant, &number), &mut got).await {
        Ok(()) => check(&got),
        Err(e) => Err(e),
    };
    let (mime, file) = match (checked, got.file.take()) {
        (Ok(mime), Some(file)) => (mime, file),
        (Err(e), Some((upload, ..))) => {
            upload.abandon().await;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
        (Ok(_), None) => return Err(ApiError::missing("file")),
    };
    let (upload, _, filename) = file;
    let (id, _) = upload.finish(&mime, filename.as_deref()).await?;
    Ok(Json(Uploaded {
        id: id.as_str().to_owned(),
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
    let (meta, reader, in_use) = s
        .app
        .media()
        .media_reader(&grant.principal, Purpose::BusinessApi, &media)
        .await
        .map_err(media_error)?;
    // Chunk by chunk: one chunk of the object is in memory at a time. The hold ends when the
    // last chunk has been handed to the connection. A chunk that went meanwhile (the object
    // was deleted) cuts the body short, below its declared length.
    let body = reader
        .into_stream()
        .map(|piece| piece.map_err(|_| std::io::Error::other("the media object went")))
        .chain(
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
            (header::CONTENT_LENGTH, meta.file_size.to_string()),
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

/// A send that names an uploaded media object by id references it (ADR 0030): the content
/// gets its MIME type and hash (and `filename`, if it had one), read through the gate, and the
/// object's bytes are read only when the message is handed to the device. The id must be one
/// the token's business may read (else 131009 naming `<type>.id`).
pub(super) async fn attach(
    s: &Shared,
    grant: &Grant,
    mut content: MessageContent,
) -> Result<MessageContent, ApiError> {
    let kind = content.payload.type_name();
    let Some(media) = content.media_mut() else {
        return Ok(content);
    };
    let Some(raw) = media.id.clone() else {
        return Ok(content);
    };
    let field = format!("{kind}.id");
    let id = MediaId::parse(&raw).map_err(|_| ApiError::not_valid(&field))?;
    let meta = s
        .app
        .media()
        .media_meta(&grant.principal, &id)
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
    media.data = None;
    Ok(content)
}
