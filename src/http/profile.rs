//! `/user/me`: the user's own profile, `GET` to read it and `PATCH` to edit it.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use crate::chat::Chat;
use crate::domain::{Email, NickName};
use crate::error::{AppError, AppResult};
use crate::http::json::JsonBody;
use crate::http::replies::UserReply;
use crate::session::CurrentSession;
use crate::store::mysql::users::{self, ProfileChange};

pub(crate) const AVATAR_MAX_CHARS: usize = 512;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/user/me")
            .route(web::get().to(me))
            .route(web::patch().to(update_me)),
    );
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn me(session: CurrentSession, state: web::Data<Chat>) -> AppResult<HttpResponse> {
    let user = users::find_by_id(&state.mysql, session.user_id)
        .await?
        .ok_or(AppError::Unauthorized)?;
    Ok(HttpResponse::Ok().json(UserReply { user }))
}

/// Every field optional; `email` distinguishes "absent" from `null` (remove it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileBody {
    #[serde(default)]
    nick_name: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    sex: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Value>,
    /// With `mail.require_email_verification`, a new email needs a code sent to it.
    #[serde(default)]
    email_code: Option<String>,
}

/// Keeps an explicit `null` as `Some(Value::Null)`, so it differs from a missing field.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Some(Value::deserialize(d)?))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn update_me(
    session: CurrentSession,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<ProfileBody>,
) -> AppResult<HttpResponse> {
    let nick_name = body
        .nick_name
        .as_deref()
        .map(|n| NickName::parse(n, "nick_name"))
        .transpose()?;
    let avatar = body.avatar.as_deref().map(parse_avatar).transpose()?;
    let sex = match body.sex {
        None => None,
        Some(s @ 0..=2) => u8::try_from(s).ok(),
        Some(_) => {
            return Err(AppError::validation(
                "sex",
                "must be 0 (unknown), 1 (male) or 2 (female)",
            ));
        }
    };
    let email = match &body.email {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.trim().is_empty() => Some(None),
        Some(Value::String(s)) => Some(Some(Email::parse(s, "email")?)),
        Some(_) => return Err(AppError::validation("email", "must be a string or null")),
    };
    if let Some(Some(new_email)) = &email {
        state
            .require_verified_email(new_email, body.email_code.as_deref())
            .await?;
    }
    let user = users::update_profile(
        &state.mysql,
        session.user_id,
        ProfileChange {
            nick_name: nick_name.as_ref(),
            avatar,
            sex,
            email: email.as_ref().map(Option::as_ref),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(UserReply { user }))
}

/// An http(s) URL, or "" to clear the avatar.
pub(crate) fn parse_avatar(raw: &str) -> AppResult<&str> {
    let url = raw.trim();
    if url.is_empty() {
        return Ok(url);
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !host.contains('@')
    });
    if !host_ok
        || url.chars().count() > AVATAR_MAX_CHARS
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AppError::validation(
            "avatar",
            format!("must be an http:// or https:// URL of at most {AVATAR_MAX_CHARS} characters"),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avatars_are_http_urls() {
        assert_eq!(
            parse_avatar("https://img.example/a.png").unwrap(),
            "https://img.example/a.png"
        );
        assert_eq!(parse_avatar("").unwrap(), "");
        for bad in [
            "javascript:alert(1)",
            "ftp://x/y",
            "https://",
            "http://user@host/",
            "https://a b",
        ] {
            assert!(parse_avatar(bad).is_err(), "{bad}");
        }
    }
}
