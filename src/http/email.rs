//! Email codes: sending one, and using one to prove an address (registration) or to reset a
//! password. Answers never reveal whether an address is registered.

use actix_web::{HttpRequest, HttpResponse, web};
use rand::Rng;
use serde::Deserialize;

use crate::domain::{Email, Password, UserId};
use crate::error::{AppError, AppResult};
use crate::http::json::JsonBody;
use crate::session::password;
use crate::state::AppState;
use crate::store::mysql::users::{self, ExactColumn};
use crate::store::redis::{email_codes, logins};

pub const PURPOSE_REGISTER: &str = "register";
pub const PURPOSE_RESET: &str = "reset_password";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/user/email_code").route(web::post().to(send_code)))
        .service(web::resource("/user/reset_password").route(web::post().to(reset_password)));
}

fn limits(state: &AppState) -> email_codes::Limits {
    let mail = &state.settings.mail;
    email_codes::Limits {
        ttl_secs: mail.code_ttl_secs,
        resend_secs: mail.code_resend_secs,
        max_attempts: mail.code_max_attempts,
        max_failures_per_day: mail.code_max_failures_per_day,
    }
}

fn invalid_code() -> AppError {
    AppError::Validation {
        field: "email_code".into(),
        message: "is wrong, expired or used up".into(),
    }
}

/// Checks (and uses up) a code; an invalid one is a 400 `invalid_email_code`.
pub async fn check_code(
    state: &AppState,
    purpose: &str,
    email: &Email,
    code: &str,
) -> AppResult<()> {
    let plausible = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
    if plausible
        && email_codes::verify(
            &state.redis,
            &state.keys,
            purpose,
            email.as_str(),
            code,
            &limits(state),
        )
        .await?
    {
        Ok(())
    } else {
        Err(AppError::InvalidEmailCode(invalid_code().to_string()))
    }
}

#[derive(Deserialize)]
struct CodeBody {
    email: String,
    purpose: String,
}

#[tracing::instrument(skip_all)]
async fn send_code(
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CodeBody>,
) -> AppResult<HttpResponse> {
    crate::http::users::limit(&req, &state, &state.register_limiter)?;
    let email = Email::parse(&body.email, "email")?;
    let purpose = match body.purpose.as_str() {
        PURPOSE_REGISTER => PURPOSE_REGISTER,
        PURPOSE_RESET => PURPOSE_RESET,
        _ => {
            return Err(AppError::validation(
                "purpose",
                "must be register or reset_password",
            ));
        }
    };
    let code = format!("{:06}", rand::rng().random_range(0..1_000_000));
    if let Err(retry_after_secs) = email_codes::issue(
        &state.redis,
        &state.keys,
        purpose,
        email.as_str(),
        &code,
        &limits(&state),
    )
    .await?
    {
        return Err(AppError::RateLimited { retry_after_secs });
    }
    // A reset code only goes to a registered address, but the answer is the same either way,
    // and the mail leaves in the background so the timing says nothing either.
    let registered = users::find_exact(&state.mysql, ExactColumn::Email, email.as_str())
        .await?
        .is_some();
    if purpose == PURPOSE_REGISTER || registered {
        let mailer = state.mailer.clone();
        let to = email.as_str().to_owned();
        tokio::spawn(async move {
            if let Err(err) = mailer.send_code(&to, &code, purpose).await {
                tracing::error!(error = ?err, "an email code could not be sent");
            }
        });
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "status": "sent" })))
}

#[derive(Deserialize)]
struct ResetBody {
    email: String,
    email_code: String,
    new_password: String,
}

#[tracing::instrument(skip_all)]
async fn reset_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<ResetBody>,
) -> AppResult<HttpResponse> {
    crate::http::users::limit(&req, &state, &state.login_limiter)?;
    let email = Email::parse(&body.email, "email")?;
    let new_password = Password::parse(body.new_password, "new_password")?;
    check_code(&state, PURPOSE_RESET, &email, body.email_code.trim()).await?;
    let user = users::find_exact(&state.mysql, ExactColumn::Email, email.as_str())
        .await?
        .ok_or_else(|| AppError::InvalidEmailCode(invalid_code().to_string()))?;
    let hash = password::hash(
        new_password.expose().to_owned(),
        state.settings.auth.bcrypt_cost,
    )
    .await?;
    users::set_password_hash(&state.mysql, user.id, &hash).await?;
    revoke_every_session(&state, user.id).await?;
    tracing::info!(user_id = %user.id, "password reset by email code");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "password_reset" })))
}

async fn revoke_every_session(state: &AppState, user: UserId) -> AppResult<()> {
    // No login has an empty id, so keeping "" keeps none.
    let revoked = logins::revoke_all_except(&state.redis, &state.keys, user, "").await?;
    state.hub.revoke_logins(&revoked).await
}
