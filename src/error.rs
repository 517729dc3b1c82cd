//! One application error type. Every HTTP error leaves as `{"code", "message"}` (plus `field`
//! for validation errors) with a stable snake_case code; server-side causes are logged in full
//! and answered with an opaque body.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// What every fallible operation of the server returns.
pub type AppResult<T> = Result<T, AppError>;

/// The WebSocket reply code of a refusal by anti-spam or a connection cap: nothing was stored,
/// retry after the wait it names.
pub const CODE_REFUSED: u32 = 50006;
/// The WebSocket reply code of a failure on the server's side: retry with the same
/// `client_msg_id`.
pub const CODE_FAILED: u32 = 50000;

/// Every failure, with its stable code (`code()`), HTTP status and WebSocket reply code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A field of a well-formed request has a value the API does not accept.
    #[error("{field}: {message}")]
    Validation {
        /// The field, as the request names it.
        field: Cow<'static, str>,
        /// What a valid value is.
        message: Cow<'static, str>,
    },
    /// The body is not JSON, or not the JSON shape the route expects.
    #[error("{0}")]
    InvalidJson(String),
    /// A request malformed in another way (a bad query string ...).
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
    /// An email code that is wrong, expired or used up (field `email_code`).
    #[error("{0}")]
    InvalidEmailCode(String),
    /// No valid session (or a revoked one).
    #[error("authentication required")]
    Unauthorized,
    /// Same answer for an unknown user and a wrong password.
    #[error("invalid user name or password")]
    InvalidCredentials,
    /// Not allowed for this user.
    #[error("{message}")]
    Forbidden {
        /// The stable code (`forbidden`, `blocked`, `not_a_member`, `banned` ...).
        code: &'static str,
        /// Why.
        message: Cow<'static, str>,
    },
    /// No such thing, or one the caller may not know of.
    #[error("{0}")]
    NotFound(Cow<'static, str>),
    /// A route that exists, with another method.
    #[error("{0}")]
    MethodNotAllowed(Cow<'static, str>),
    /// A unique value is taken (`field` names it).
    #[error("{message}")]
    Conflict {
        /// The field whose value is taken, when one is.
        field: Option<&'static str>,
        /// What conflicts.
        message: Cow<'static, str>,
    },
    /// Message content over `messages.max_content_chars`.
    #[error("content is longer than {max} characters")]
    ContentTooLong {
        /// The limit, in characters.
        max: usize,
    },
    /// Refused by an anti-spam rule; nothing was stored.
    #[error("refused by anti-spam rule `{rule}`, retry in {retry_after_secs} s")]
    Throttled {
        /// The rule that refused.
        rule: String,
        /// When a retry may pass.
        retry_after_secs: u64,
    },
    /// The anti-spam counters cannot be reached: sends are refused rather than let through
    /// unchecked. Logged once per outage by the anti-spam module, not per message.
    #[error("anti-spam checks are unavailable; nothing was stored, retry")]
    AntispamUnavailable,
    /// Too many requests from one address (logins, registrations).
    #[error("too many requests, retry in {retry_after_secs} s")]
    RateLimited {
        /// When a retry may pass.
        retry_after_secs: u64,
    },
    /// Refused by a named anti-spam rule on something pushed to other users (friend requests,
    /// group edits, moderation, invitations, read receipts): 429 `rate_limited` with the rule.
    #[error("too many requests (rule `{rule}`), retry in {retry_after_secs} s")]
    RuleLimited {
        /// The rule that refused.
        rule: &'static str,
        /// When a retry may pass.
        retry_after_secs: u64,
    },
    /// A `client_msg_id` the sender already used for a different message: nothing is stored.
    #[error("client_msg_id already used for another message")]
    ClientMsgIdReused,
    /// A per-user cap (groups owned, groups joined) is reached.
    #[error("{0}")]
    LimitReached(Cow<'static, str>),
    /// More open WebSockets from one client IP than `ws.max_connections_per_ip`.
    #[error("too many open connections from this address (at most {max}); close one first")]
    TooManyConnections {
        /// `ws.max_connections_per_ip`.
        max: usize,
    },
    /// The process holds `ws.max_connections` sockets already.
    #[error("the server is at its connection limit; retry shortly")]
    ServerBusy,
    /// A body over `server.max_body_bytes`.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// An upload that would take its owner over `files.quota_bytes_per_user`.
    #[error("this upload would take your files over your quota of {quota} bytes")]
    QuotaExceeded {
        /// The quota, in bytes.
        quota: u64,
    },
    /// An upload whose bytes say image but that does not decode, or has too many pixels.
    #[error("{0}")]
    InvalidImage(String),
    /// A request body that did not arrive in time (uploads: `files.upload_timeout_secs`,
    /// `files.upload_idle_secs`).
    #[error("{0}")]
    RequestTimeout(Cow<'static, str>),
    /// A `Range` outside the file: 416 with `Content-Range: bytes */<size>`.
    #[error("the range asked for is outside the file ({size} bytes)")]
    RangeNotSatisfiable {
        /// The file's size, in bytes.
        size: u64,
    },
    /// A body of another content type than the route takes.
    #[error("{0}")]
    UnsupportedMediaType(Cow<'static, str>),
    /// A backend (MySQL, Redis, MongoDB) cannot be reached right now.
    #[error("a backend service is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A bug or an unexpected failure; logged, answered without details.
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

impl AppError {
    /// A [`AppError::Validation`] of `field`.
    pub fn validation(
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A [`AppError::Forbidden`] with its code.
    pub fn forbidden(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation_failed",
            Self::InvalidJson(_) => "invalid_json",
            Self::BadRequest(_) => "bad_request",
            Self::InvalidEmailCode(_) => "invalid_email_code",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden { code, .. } => code,
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Conflict { .. } => "conflict",
            Self::ContentTooLong { .. } => "content_too_long",
            Self::RateLimited { .. } | Self::RuleLimited { .. } => "rate_limited",
            Self::ClientMsgIdReused => "client_msg_id_reused",
            Self::LimitReached(_) => "limit_reached",
            Self::TooManyConnections { .. } => "too_many_connections",
            Self::ServerBusy => "server_busy",
            Self::Throttled { .. } => "throttled",
            Self::AntispamUnavailable => "unavailable",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::QuotaExceeded { .. } => "quota_exceeded",
            Self::InvalidImage(_) => "invalid_image",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::RequestTimeout(_) => "request_timeout",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The reply code on the WebSocket (see docs/protocol.md).
    pub fn ws_code(&self) -> u32 {
        match self {
            Self::Validation { .. }
            | Self::InvalidJson(_)
            | Self::BadRequest(_)
            | Self::InvalidEmailCode(_)
            | Self::PayloadTooLarge { .. }
            | Self::QuotaExceeded { .. }
            | Self::InvalidImage(_)
            | Self::RangeNotSatisfiable { .. }
            | Self::RequestTimeout(_)
            | Self::UnsupportedMediaType(_)
            | Self::MethodNotAllowed(_)
            | Self::Conflict { .. }
            | Self::LimitReached(_) => 40000,
            Self::ClientMsgIdReused => 40009,
            Self::Unauthorized | Self::InvalidCredentials | Self::Forbidden { .. } => 40003,
            Self::NotFound(_) => 40004,
            Self::ContentTooLong { .. } => 40013,
            Self::RateLimited { .. }
            | Self::RuleLimited { .. }
            | Self::Throttled { .. }
            | Self::TooManyConnections { .. } => CODE_REFUSED,
            Self::Unavailable(_)
            | Self::Internal(_)
            | Self::AntispamUnavailable
            | Self::ServerBusy => CODE_FAILED,
        }
    }

    /// The `data` of a WebSocket error reply: the rule and wait of an anti-spam refusal, the
    /// field a validation error is about.
    pub fn ws_data(&self) -> Option<serde_json::Value> {
        match self {
            Self::Validation { field, .. } => Some(serde_json::json!({ "field": field })),
            Self::Throttled {
                rule,
                retry_after_secs,
            } => Some(serde_json::json!({ "rule": rule, "retry_after": retry_after_secs })),
            Self::RateLimited { retry_after_secs } => {
                Some(serde_json::json!({ "rule": "local", "retry_after": retry_after_secs }))
            }
            Self::RuleLimited {
                rule,
                retry_after_secs,
            } => Some(serde_json::json!({ "rule": rule, "retry_after": retry_after_secs })),
            // A 40000 that is no malformed frame: say which.
            Self::LimitReached(_) => Some(serde_json::json!({ "code": self.code() })),
            _ => None,
        }
    }

    /// The message that goes out with a WebSocket error reply (opaque for server faults).
    pub fn ws_message(&self) -> String {
        match self {
            Self::Unavailable(cause) => {
                tracing::error!(error = ?cause, "backend unavailable");
                "a backend service is unavailable; nothing was stored, retry".to_owned()
            }
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal server error; nothing was stored, retry".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The error for a response the framework produced without a body of ours
    /// (unknown route, wrong method, ...).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound("no such route".into()),
            StatusCode::METHOD_NOT_ALLOWED => {
                Self::MethodNotAllowed("method not allowed on this route".into())
            }
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge { limit: 0 },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::UnsupportedMediaType("unsupported content type".into())
            }
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::SERVICE_UNAVAILABLE => {
                Self::Unavailable(anyhow::anyhow!("framework answered 503"))
            }
            s if s.is_server_error() => Self::Internal(anyhow::anyhow!("framework answered {s}")),
            s => Self::BadRequest(
                s.canonical_reason()
                    .unwrap_or("bad request")
                    .to_lowercase()
                    .into(),
            ),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation { .. }
            | Self::InvalidJson(_)
            | Self::BadRequest(_)
            | Self::InvalidEmailCode(_)
            | Self::InvalidImage(_)
            | Self::ContentTooLong { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } | Self::ClientMsgIdReused | Self::LimitReached(_) => {
                StatusCode::CONFLICT
            }
            Self::RateLimited { .. }
            | Self::RuleLimited { .. }
            | Self::Throttled { .. }
            | Self::TooManyConnections { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::AntispamUnavailable | Self::ServerBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::PayloadTooLarge { .. } | Self::QuotaExceeded { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            Self::Unavailable(cause) => {
                tracing::error!(error = ?cause, "backend unavailable");
                "a backend service is unavailable, try again shortly".to_owned()
            }
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal server error".to_owned()
            }
            Self::PayloadTooLarge { limit: 0 } => "request body is too large".to_owned(),
            other => other.to_string(),
        };
        let field = match self {
            Self::Validation { field, .. } => Some(field.as_ref()),
            Self::InvalidEmailCode(_) => Some("email_code"),
            Self::Conflict { field, .. } => *field,
            _ => None,
        };
        let retry_after = match self {
            Self::RateLimited { retry_after_secs }
            | Self::RuleLimited {
                retry_after_secs, ..
            }
            | Self::Throttled {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let rule = match self {
            Self::RuleLimited { rule, .. } => Some(*rule),
            Self::Throttled { rule, .. } => Some(rule.as_str()),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        if let Self::RangeNotSatisfiable { size } = self {
            response.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
        }
        response.json(ErrorBody {
            code: self.code(),
            message,
            field,
            rule,
            retry_after,
        })
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(anyhow::Error::new(err)),
            other => Self::Internal(anyhow::Error::new(other).context("mysql query failed")),
        }
    }
}

impl From<deadpool_redis::PoolError> for AppError {
    fn from(err: deadpool_redis::PoolError) -> Self {
        Self::Unavailable(anyhow::Error::new(err).context("no redis connection"))
    }
}

impl From<deadpool_redis::redis::RedisError> for AppError {
    fn from(err: deadpool_redis::redis::RedisError) -> Self {
        if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() {
            Self::Unavailable(anyhow::Error::new(err).context("redis unreachable"))
        } else {
            Self::Internal(anyhow::Error::new(err).context("redis command failed"))
        }
    }
}

impl From<mongodb::error::Error> for AppError {
    fn from(err: mongodb::error::Error) -> Self {
        use mongodb::error::ErrorKind;
        match *err.kind {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. } => {
                Self::Unavailable(anyhow::Error::new(err).context("mongodb unreachable"))
            }
            _ => Self::Internal(anyhow::Error::new(err).context("mongodb operation failed")),
        }
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Self::Internal(anyhow::anyhow!("blocking task failed: {err}"))
    }
}
