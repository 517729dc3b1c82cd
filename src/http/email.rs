//! Email codes over HTTP: `POST /user/email_code` sends one, `POST /user/reset_password` uses
//! one; the rules are in [`crate::chat::email_codes`].

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::chat::Chat;
use crate::chat::email_codes::CodePurpose;
use crate::domain::{Email, Password};
use crate::error::AppResult;
use crate::http::ip_limit;
use crate::http::json::JsonBody;
use crate::http::replies::Status;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/user/email_code").route(web::post().to(send_code)))
        .service(web::resource("/user/reset_password").route(web::post().to(reset_password)));
}

#[derive(Deserialize)]
struct CodeBody {
    email: String,
    purpose: String,
}

#[tracing::instrument(skip_all)]
async fn send_code(
    req: HttpRequest,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<CodeBody>,
) -> AppResult<HttpResponse> {
    ip_limit::limit(&req, &state, &state.register_limiter)?;
    let email = Email::parse(&body.email, "email")?;
    let purpose = CodePurpose::parse(&body.purpose, "purpose")?;
    state.issue_code(purpose, &email).await?;
    Ok(HttpResponse::Accepted().json(Status { status: "sent" }))
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
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<ResetBody>,
) -> AppResult<HttpResponse> {
    ip_limit::limit(&req, &state, &state.login_limiter)?;
    let email = Email::parse(&body.email, "email")?;
    let new_password = Password::parse(body.new_password, "new_password")?;
    state
        .reset_password(&email, &body.email_code, new_password)
        .await?;
    Ok(HttpResponse::Ok().json(Status {
        status: "password_reset",
    }))
}
