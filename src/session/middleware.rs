//! The actix-session middleware: encrypted cookie holding only the session key, state in Redis
//! on the application's own pool, `HttpOnly` + `SameSite=Lax` (+ `Secure` when configured).

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy};
use actix_session::storage::RedisSessionStore;
use actix_web::cookie::{Key, SameSite, time::Duration};
use anyhow::Context;
use deadpool_redis::Pool;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::store::redis::Keys;

pub async fn store(pool: Pool, keys: &Keys) -> anyhow::Result<RedisSessionStore> {
    let keys = keys.clone();
    RedisSessionStore::builder_pooled(pool)
        .cache_keygen(move |session_key| keys.session(session_key))
        .build()
        .await
        .context("building the Redis session store")
}

pub fn build(
    settings: &Settings,
    store: RedisSessionStore,
) -> SessionMiddleware<RedisSessionStore> {
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
