//! Accounts: register, login, the current user, password change, logout.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::chat::Chat;
use crate::chat::accounts::NewAccount;
use crate::domain::{Email, NickName, Password, UserName};
use crate::error::{AppError, AppResult};
use crate::http::ip_limit;
use crate::http::json::JsonBody;
use crate::http::replies::{LimitsReply, PasswordChanged, Status, UserReply};
use crate::session::device::DeviceCookie;
use crate::session::{CurrentSession, start_login};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/user/register").route(web::post().to(register)))
        .service(web::resource("/user/login").route(web::post().to(login)))
        .configure(crate::http::profile::configure)
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
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> AppResult<HttpResponse> {
    ip_limit::limit(&req, &state, &state.register_limiter)?;
    let account = NewAccount {
        user_name: UserName::parse(body.user_name, "user_name")?,
        password: Password::parse(body.password, "password")?,
        nick_name: NickName::parse(&body.nick_name, "nick_name")?,
        // An empty string from a form counts as "no email".
        email: match body.email.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(Email::parse(raw, "email")?),
        },
        email_code: body.email_code,
    };
    let user = state.register(account).await?;
    tracing::info!(user_id = %user.id, "registered");
    Ok(HttpResponse::Created().json(UserReply { user }))
}

#[derive(Deserialize)]
struct LoginBody {
    user_name: String,
    password: String,
}

/// Checks credentials. A `user_name` registration would refuse is no account's name: it gets the
/// same 401 without a lookup or bcrypt (the attempt counts against the IP like every other).
/// The account is found by its canonical name; failures are counted against the account, or the
/// browser's device cookie for it, or the unknown canonical name (see `login_failures`).
#[tracing::instrument(skip_all)]
async fn login(
    req: HttpRequest,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<LoginBody>,
) -> AppResult<HttpResponse> {
    ip_limit::limit(&req, &state, &state.login_limiter)?;
    let Ok(user_name) = UserName::parse(body.user_name, "user_name") else {
        return Err(AppError::InvalidCredentials);
    };
    let device = DeviceCookie::from_request(&req, &state.settings)?;
    let user = state
        .check_login(&user_name, body.password, |user| {
            device.failure_bucket(user)
        })
        .await?;
    start_login(&req, &state, user.id).await?;
    tracing::info!(user_id = %user.id, "logged in");
    Ok(HttpResponse::Ok()
        .cookie(device.renewed_for(user.id))
        .json(UserReply { user }))
}

/// The caller's anti-spam standing.
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn limits(session: CurrentSession, state: web::Data<Chat>) -> AppResult<HttpResponse> {
    let standing = state.antispam.standing(session.user_id).await?;
    Ok(HttpResponse::Ok().json(LimitsReply { limits: standing }))
}

#[derive(Deserialize)]
struct SetPasswordBody {
    old_password: String,
    new_password: String,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn set_password(
    req: HttpRequest,
    session: CurrentSession,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<SetPasswordBody>,
) -> AppResult<HttpResponse> {
    let new_password = Password::parse(body.new_password, "new_password")?;
    let bucket = DeviceCookie::from_request(&req, &state.settings)?.failure_bucket(session.user_id);
    let revoked = state
        .change_password(
            session.user_id,
            &session.login_id,
            body.old_password,
            new_password,
            bucket,
        )
        .await?;
    tracing::info!(revoked, "password changed, other sessions revoked");
    Ok(HttpResponse::Ok().json(PasswordChanged {
        revoked_sessions: revoked,
    }))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn logout(session: CurrentSession, state: web::Data<Chat>) -> AppResult<HttpResponse> {
    session.logout(&state).await?;
    Ok(HttpResponse::Ok().json(Status {
        status: "logged_out",
    }))
}
