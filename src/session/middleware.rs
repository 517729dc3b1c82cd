//! The actix-session middleware: encrypted cookie holding only the session key, state in Redis
//! through the application's own handle (store::redis::session_store, either Redis mode), `HttpOnly` + `SameSite=Lax` (+ `Secure` when configured).

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy};
use actix_web::body::MessageBody;
use actix_web::cookie::{Key, SameSite, time::Duration};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::error::AppError;
use crate::store::redis::session_store::RedisSessions;

pub(crate) fn build(settings: &Settings, store: RedisSessions) -> SessionMiddleware<RedisSessions> {
    let key = Key::derive_from(settings.session.secret.expose_secret().as_bytes());
    let ttl = Duration::seconds(i64::try_from(settings.session.ttl_secs).unwrap_or(i64::MAX));
    SessionMiddleware::builder(store, key)
        .cookie_name(settings.session.cookie_name.clone())
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_secure(settings.server.secure_cookies)
        .cookie_content_security(CookieContentSecurity::Private)
        .session_lifecycle(
            PersistentSession::default()
                .session_ttl(ttl)
                .session_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
        )
        .build()
}

/// Wraps the session middleware: when it cannot load or save a session (Redis down), the
/// request fails before any handler runs, and actix would answer 500 with an empty body. This
/// turns that failure into 503 `{"code":"unavailable"}`, like every other route whose backend
/// is down. (Handlers' own errors are responses by now and pass untouched.)
pub(crate) async fn store_unavailable(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    next.call(req).await.map_err(|err| {
        if err.as_response_error().status_code().is_server_error() {
            tracing::error!(error = %err, "session store unavailable");
            AppError::Unavailable(anyhow::anyhow!("session store: {err}")).into()
        } else {
            err
        }
    })
}
