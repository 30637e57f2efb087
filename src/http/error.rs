//! The Graph error envelope: every error a client sees is an [`ApiError`], a Cloud API code
//! with its HTTP status and a fixed title; nothing internal is ever in it.

use crate::app::AppError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sealpost_audit::GateError;
use sealpost_domain::DomainError;
use serde::Serialize;
use utoipa::ToSchema;

/// The Graph error envelope, as every error is answered.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub(super) struct ErrorEnvelope {
    error: ErrorBody,
}

/// The error itself.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorBody {
    /// `(#code) title`.
    message: String,
    /// Always `OAuthException`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The Cloud API error code.
    code: u32,
    error_data: ErrorData,
    /// An id for this answer (no trace of anything internal).
    fbtrace_id: String,
}

/// What went wrong, in words.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorData {
    /// Always `whatsapp`.
    messaging_product: &'static str,
    /// The detail: which parameter, what is expected.
    details: String,
}

/// A Cloud API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    pub(super) code: u32,
    details: String,
    /// Seconds a 503 tells the client to wait (`Retry-After`).
    retry_after: u64,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: u32, details: impl Into<String>) -> Self {
        Self {
            status,
            code,
            details: details.into(),
            retry_after: 1,
        }
    }

    /// A bad parameter: 100/400.
    pub(crate) fn invalid(details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 100, details)
    }

    /// A path or method no route answers: 100/404.
    pub(crate) fn unknown_path() -> Self {
        Self::new(StatusCode::NOT_FOUND, 100, "Unknown path or method.")
    }

    pub(crate) fn missing(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131_008,
            format!("The parameter {field} is required."),
        )
    }

    pub(crate) fn not_valid(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131_009,
            format!("The value of {field} is not valid."),
        )
    }

    pub(crate) fn denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            200,
            "The access token does not have permission for this phone number.",
        )
    }

    /// The database is down, unreachable or busy: 503 with the Cloud API's retryable code
    /// 131016 and nothing internal in the message.
    pub(crate) fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            131_016,
            "Service temporarily unavailable. Please retry.",
        )
    }

    /// The number is in maintenance (its throughput upgrade under way) for `seconds` more:
    /// 503, code 131057, `Retry-After` then.
    pub(crate) fn maintenance(seconds: u64) -> Self {
        Self {
            retry_after: seconds.max(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                131_057,
                "Business Account is in maintenance mode: the phone number's throughput upgrade is under way. Please retry after the time Retry-After says.",
            )
        }
    }

    /// Anything else: 131000/500, the cause (if any) in the log only.
    pub(crate) fn unknown() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            131_000,
            "An unknown error occurred.",
        )
    }

    /// `denied()` for a lookup that failed, unless it failed because the database is
    /// unavailable: an outage must not look like a missing permission.
    pub(crate) fn denied_unless_unavailable(e: AppError) -> Self {
        if e.is_unavailable() {
            Self::from(e)
        } else {
            Self::denied()
        }
    }

    fn title(code: u32) -> &'static str {
        match code {
            0 | 190 => "Invalid OAuth access token",
            10 => "Application does not have permission for this action",
            200..=299 => "Permissions error",
            100 => "Invalid parameter",
            131_008 => "Required parameter is missing",
            131_009 => "Parameter value is not valid",
            131_016 => "Service unavailable",
            131_026 => "Message undeliverable",
            131_047 => "Re-engagement message",
            131_048 => "Spam rate limit hit",
            131_053 => "Media upload error",
            131_056 => "(Business Account, Consumer Account) pair rate limit hit",
            131_057 => "Account in maintenance mode",
            132_001 => "Template name does not exist in the translation",
            130_429 => "Rate limit hit",
            133_016 => "Account register deregister rate limit exceeded",
            _ => "Something went wrong",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            error: ErrorBody {
                message: format!("(#{}) {}", self.code, Self::title(self.code)),
                kind: "OAuthException",
                code: self.code,
                error_data: ErrorData {
                    messaging_product: "whatsapp",
                    details: self.details,
                },
                // The request's id (its `x-request-id`), so a client's report names the
                // request; a fresh one outside a request.
                fbtrace_id: super::hygiene::current_request_id()
                    .unwrap_or_else(|| format!("A{}", uuid::Uuid::new_v4().simple())),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after));
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Domain(d) => {
                let status =
                    StatusCode::from_u16(d.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                let code = d.cloud_code();
                let details = match d {
                    DomainError::OutsideServiceWindow => {
                        "More than 24 hours have passed since the recipient last replied to the sender number.".to_owned()
                    }
                    DomainError::InvalidTransition(_) => "An unknown error occurred.".to_owned(),
                    other => other.to_string(),
                };
                ApiError::new(status, code, details)
            }
            AppError::Gate(GateError::Denied(_)) => ApiError::denied(),
            other if other.is_unavailable() => {
                // Transient: the database is down or busy. The cause stays in the log (no
                // personal data in it); the client is told to retry.
                tracing::warn!(error = %other, "database unavailable; answered 503");
                ApiError::unavailable()
            }
            other => {
                // The detail stays in the log (no personal data in it); the client gets none.
                tracing::error!(error = %other, "request failed");
                ApiError::unknown()
            }
        }
    }
}
