//! Typed JSON bodies. `JsonBody<T>` checks the content type and
//! the size limit, then deserialises with the path of any bad field in the error, so clients
//! learn which field to fix. `OptionalJsonBody<T>` is for routes whose body may be left out:
//! no body is `None`, any body obeys the same rules (never silently ignored).

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::chat::Chat;
use crate::error::AppError;

pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json::<T>(req, payload);
        Box::pin(async move { body.await.map(JsonBody) })
    }
}

/// A JSON body the client may leave out (no `Content-Length`, or 0, and no chunked body).
pub(crate) struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !has_body(req) {
            return Box::pin(std::future::ready(Ok(OptionalJsonBody(None))));
        }
        let body = read_json::<T>(req, payload);
        Box::pin(async move { body.await.map(|b| OptionalJsonBody(Some(b))) })
    }
}

fn has_body(req: &HttpRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Checks the content type and the size limit, then parses the body.
fn read_json<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
) -> LocalBoxFuture<'static, Result<T, AppError>> {
    let limit = req
        .app_data::<web::Data<Chat>>()
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
        parse(&body)
    })
}

/// Deserialises a JSON document, naming the offending field when the shape is wrong.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
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
