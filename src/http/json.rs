//! Typed JSON bodies and the shared JSON formats. `JsonBody<T>` checks the content type and
//! the size limit, then deserialises with the path of any bad field in the error, so clients
//! learn which field to fix.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::Serializer;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::state::AppState;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.settings.server.max_body_bytes)
            .unwrap_or(64 * 1024);
        let content_type_ok = is_json_content_type(req);
        let declared_len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !content_type_ok {
                return Err(AppError::UnsupportedMediaType(
                    "the body must be JSON (Content-Type: application/json)".into(),
                ));
            }
            if declared_len.is_some_and(|len| len > limit) {
                return Err(AppError::PayloadTooLarge { limit });
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| AppError::BadRequest(format!("reading body: {e}").into()))?;
                if body.len() + chunk.len() > limit {
                    return Err(AppError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            parse(&body).map(JsonBody)
        })
    }
}

/// Deserialises a JSON document, naming the offending field when the shape is wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data if path != "." => {
                AppError::validation(path, strip_position(&inner.to_string()))
            }
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                match missing_field(&message) {
                    Some(field) => AppError::validation(field.to_owned(), "is required"),
                    None => AppError::InvalidJson(message),
                }
            }
            _ => AppError::InvalidJson(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| AppError::InvalidJson(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// The field named by serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split('`')
        .next()
        .filter(|f| !f.is_empty())
}

/// serde_json appends " at line L column C"; for a field error the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(idx) => message[..idx].to_owned(),
        None => message.to_owned(),
    }
}

fn is_json_content_type(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Now, in the API's timestamp format.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Ids leave as strings, so JavaScript clients never lose precision.
pub fn as_string<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// Timestamps leave as RFC 3339 UTC with milliseconds, e.g. `2026-11-21T10:00:00.123Z`.
pub fn rfc3339_millis<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct Body {
        name: String,
        age: u8,
    }

    #[test]
    fn names_the_field_with_the_wrong_type_or_missing() {
        let err = parse::<Body>(br#"{"name": 5, "age": 1}"#).unwrap_err();
        assert!(
            matches!(err, AppError::Validation { ref field, .. } if field == "name"),
            "{err:?}"
        );
        let err = parse::<Body>(br#"{"name": "x"}"#).unwrap_err();
        assert!(
            matches!(err, AppError::Validation { ref field, .. } if field == "age"),
            "{err:?}"
        );
        assert_eq!(
            parse::<Body>(br#""a string""#).unwrap_err().code(),
            "invalid_json"
        );
    }

    #[test]
    fn rejects_malformed_json_and_trailing_garbage() {
        assert_eq!(parse::<Body>(b"{").unwrap_err().code(), "invalid_json");
        assert_eq!(
            parse::<Body>(br#"{"name":"x","age":1} x"#)
                .unwrap_err()
                .code(),
            "invalid_json"
        );
    }
}
