//! `CurrentSession`: the extractor that guards every route needing a logged-in user. A session
//! counts only while its login record exists in Redis; that is what lets logout and password
//! changes revoke sessions on every server process.

use actix_session::{Session, SessionExt};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

use crate::chat::Chat;
use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::peer::client_ip;
use crate::store::redis::logins;

const USER_ID_KEY: &str = "uid";
const LOGIN_ID_KEY: &str = "lid";

pub(crate) struct CurrentSession {
    pub user_id: UserId,
    pub login_id: String,
    session: Session,
}

impl CurrentSession {
    /// Ends this session: the login record and the session state both go.
    pub(crate) async fn logout(self, state: &Chat) -> AppResult<()> {
        logins::delete(&state.redis, &state.keys, self.user_id, &self.login_id).await?;
        self.session.purge();
        state.hub.revoke_logins(&[self.login_id]).await?;
        Ok(())
    }
}

impl FromRequest for CurrentSession {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = req.get_session();
        let state = req.app_data::<web::Data<Chat>>().cloned();
        Box::pin(async move {
            let state = state
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("Chat missing from app data")))?;
            let user_id = session.get::<u64>(USER_ID_KEY).ok().flatten();
            let login_id = session.get::<String>(LOGIN_ID_KEY).ok().flatten();
            let (Some(user_id), Some(login_id)) = (user_id, login_id) else {
                return Err(AppError::Unauthorized);
            };
            let user_id = UserId(user_id);
            match logins::owner(&state.redis, &state.keys, &login_id).await? {
                Some(owner) if owner == user_id => Ok(Self {
                    user_id,
                    login_id,
                    session,
                }),
                _ => {
                    // Revoked: drop the leftover session state too.
                    session.purge();
                    Err(AppError::Unauthorized)
                }
            }
        })
    }
}

/// Logs `user_id` in on this request: a fresh session key (no fixation) carrying a new login.
pub(crate) async fn start_login(
    req: &HttpRequest,
    state: &Chat,
    user_id: UserId,
) -> AppResult<String> {
    let session = req.get_session();
    let login_id = uuid::Uuid::new_v4().simple().to_string();
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ip = client_ip(req, &state.settings.server)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    logins::create(
        &state.redis,
        &state.keys,
        logins::NewLogin {
            login_id: &login_id,
            user_id,
            user_agent,
            ip: &ip,
            ttl_secs: state.settings.session.ttl_secs,
        },
    )
    .await?;
    session.renew();
    session.clear();
    let inserted = session
        .insert(USER_ID_KEY, user_id.0)
        .and_then(|()| session.insert(LOGIN_ID_KEY, &login_id));
    inserted.map_err(|e| AppError::Internal(anyhow::anyhow!("session insert failed: {e}")))?;
    Ok(login_id)
}
