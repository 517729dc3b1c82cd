//! The state every handler shares: settings, the backend pools and the per-IP limiters.
//! Cheap to clone (everything inside is a handle).

use std::sync::Arc;

use deadpool_redis::Pool as RedisPool;
use mongodb::Database;
use sqlx::MySqlPool;

use crate::antispam::Antispam;
use crate::config::Settings;
use crate::domain::UserId;
use crate::http::ip_limit::IpLimiter;
use crate::hub::Hub;
use crate::mail::Mailer;
use crate::messaging::Known;
use crate::messaging::writer::MessageWriter;
use crate::metrics::Metrics;
use crate::store::redis::{Keys, Shared};
use crate::ws::slots::Slots;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub mysql: MySqlPool,
    pub redis: RedisPool,
    /// One multiplexed connection for the hot paths (see store::redis::shared).
    pub redis_link: Shared,
    pub mongo: Database,
    pub keys: Keys,
    pub hub: Hub,
    pub writer: MessageWriter,
    pub antispam: Antispam,
    pub metrics: Arc<Metrics>,
    pub mailer: Mailer,
    pub login_limiter: IpLimiter,
    pub register_limiter: IpLimiter,
    /// The WebSocket connection caps.
    pub ws_slots: Arc<Slots>,
    /// Users whose lobby read position this process has made sure of.
    pub lobby_readers: Arc<Known<UserId>>,
    /// A bcrypt hash of a random password at the configured cost: a login for an unknown user
    /// verifies against it, so it takes as long as a wrong password for a real one.
    pub dummy_password_hash: Arc<str>,
}
