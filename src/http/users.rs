//! Accounts: register, login, the current user, password change, logout.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::domain::{Email, NickName, Password, UserName};
use crate::error::{AppError, AppResult};
use crate::http::client_ip;
use crate::http::json::JsonBody;
use crate::session::{CurrentSession, password, start_login};
use crate::state::AppState;
use crate::store::mysql::users;
use crate::store::redis::login_failures;
use crate::store::redis::logins;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/user/register").route(web::post().to(register)))
        .service(web::resource("/user/login").route(web::post().to(login)))
        .service(
            web::resource("/user/me")
                .route(web::get().to(me))
                .route(web::patch().to(crate::http::profile::update_me)),
        )
        .service(web::resource("/user/me/limits").route(web::get().to(limits)))
        .service(web::resource("/user/set_password").route(web::post().to(set_password)))
        .service(web::resource("/user/logout").route(web::post().to(logout)));
}

#[derive(Deserialize)]
struct RegisterBody {
    user_name: String,
    password: String,
    nick_name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_code: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> AppResult<HttpResponse> {
    limit(&req, &state, &state.register_limiter)?;
    let user_name = UserName::parse(body.user_name, "user_name")?;
    let password = Password::parse(body.password, "password")?;
    let nick_name = NickName::parse(&body.nick_name, "nick_name")?;
    // An empty string from a form counts as "no email".
    let email = match body.email.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(Email::parse(raw, "email")?),
    };
    // A code, when given, is always checked; with verification required it must be given.
    let code = body
        .email_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    match (&email, code) {
        (Some(email), Some(code)) => {
            crate::http::email::check_code(
                &state,
                crate::http::email::PURPOSE_REGISTER,
                email,
                code,
            )
            .await?;
        }
        (None, Some(_)) => {
            return Err(AppError::validation("email", "is required with email_code"));
        }
        (_, None) if state.settings.mail.require_email_verification => {
            if email.is_none() {
                return Err(AppError::validation("email", "is required"));
            }
            return Err(AppError::InvalidEmailCode("email_code is required".into()));
        }
        _ => {}
    }
    let password_hash = password::hash(
        password.expose().to_owned(),
        state.settings.auth.bcrypt_cost,
    )
    .await?;
    let user = users::insert(
        &state.mysql,
        users::NewUser {
            user_name: &user_name,
            nick_name: &nick_name,
            email: email.as_ref(),
            password_hash: &password_hash,
        },
    )
    .await?;
    tracing::info!(user_id = %user.id, "registered");
    Ok(HttpResponse::Created().json(serde_json::json!({ "user": user })))
}

#[derive(Deserialize)]
struct LoginBody {
    user_name: String,
    password: String,
}

#[tracing::instrument(skip_all)]
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<LoginBody>,
) -> AppResult<HttpResponse> {
    limit(&req, &state, &state.login_limiter)?;
    let auth = &state.settings.auth;
    login_failures::check(
        &state.redis,
        &state.keys,
        &body.user_name,
        auth.login_failures_per_account,
    )
    .await?;
    let found = if body.user_name.len() <= crate::domain::USER_NAME_MAX_CHARS {
        users::find_credentials_by_name(&state.mysql, &body.user_name).await?
    } else {
        None
    };
    // Unknown users are checked against a dummy hash so both failures cost the same time.
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, state.dummy_password_hash.to_string()),
    };
    let password_ok = password::verify(body.password, hash).await?;
    let user = match user {
        Some(user) if password_ok => user,
        _ => {
            login_failures::record(
                &state.redis,
                &state.keys,
                &body.user_name,
                auth.login_failure_window_secs,
            )
            .await?;
            return Err(AppError::InvalidCredentials);
        }
    };
    login_failures::clear(&state.redis, &state.keys, &body.user_name).await?;
    start_login(&req, &state, user.id).await?;
    tracing::info!(user_id = %user.id, "logged in");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "user": user })))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn me(session: CurrentSession, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let user = users::find_by_id(&state.mysql, session.user_id)
        .await?
        .ok_or(AppError::Unauthorized)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "user": user })))
}

/// The caller's anti-spam standing.
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn limits(session: CurrentSession, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let standing = state.antispam.standing(session.user_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "limits": standing })))
}

#[derive(Deserialize)]
struct SetPasswordBody {
    old_password: String,
    new_password: String,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn set_password(
    session: CurrentSession,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<SetPasswordBody>,
) -> AppResult<HttpResponse> {
    let new_password = Password::parse(body.new_password, "new_password")?;
    let current_hash = users::password_hash(&state.mysql, session.user_id)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if !password::verify(body.old_password, current_hash).await? {
        return Err(AppError::forbidden(
            "wrong_password",
            "old_password is not the current password",
        ));
    }
    let new_hash = password::hash(
        new_password.expose().to_owned(),
        state.settings.auth.bcrypt_cost,
    )
    .await?;
    users::set_password_hash(&state.mysql, session.user_id, &new_hash).await?;
    let revoked = logins::revoke_all_except(
        &state.redis,
        &state.keys,
        session.user_id,
        &session.login_id,
    )
    .await?;
    state.hub.revoke_logins(&revoked).await?;
    tracing::info!(
        revoked = revoked.len(),
        "password changed, other sessions revoked"
    );
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked_sessions": revoked.len() })))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn logout(session: CurrentSession, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    session.logout(&state).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "logged_out" })))
}

pub fn limit(
    req: &HttpRequest,
    state: &AppState,
    limiter: &crate::http::ip_limit::IpLimiter,
) -> AppResult<()> {
    match client_ip(req, state.settings.server.trust_forwarded_for) {
        Some(ip) => limiter.check(ip),
        // No peer address (e.g. a Unix socket): nothing to key on, so nothing to limit.
        None => Ok(()),
    }
}
