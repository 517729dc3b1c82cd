//! The state the core and the edges share: settings, the backend pools, the hub, anti-spam and
//! the per-IP limiters. Cheap to clone (everything inside is a handle).

use std::sync::Arc;

use mongodb::Database;
use sqlx::MySqlPool;

use crate::antispam::Antispam;
use crate::chat::known::Known;
use crate::chat::reads::ReadEvents;
use crate::chat::writer::MessageWriter;
use crate::config::Settings;
use crate::domain::UserId;
use crate::hub::Hub;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::peer::limiter::IpLimiter;
use crate::peer::slots::Slots;
use crate::store::files::FileStore;
use crate::store::redis::group_lock::GroupLocks;
use crate::store::redis::{Keys, Shared};

#[derive(Clone)]
pub(crate) struct Chat {
    pub settings: Arc<Settings>,
    pub mysql: MySqlPool,
    /// Redis, standalone or cluster (see store::redis::shared).
    pub redis: Shared,
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
    /// The queues of this process for the groups' membership locks.
    pub group_locks: Arc<GroupLocks>,
    /// Users whose lobby read position this process has made sure of.
    pub lobby_readers: Arc<Known<UserId>>,
    /// Read receipts being coalesced (see chat::reads).
    pub read_events: Arc<ReadEvents>,
    /// Where the bytes of uploads are (`files.store`).
    pub files: FileStore,
    /// Images being decoded at once (`files.image_workers`).
    pub image_slots: Arc<tokio::sync::Semaphore>,
    /// Uploads in progress on this process, per user.
    pub uploads_in_flight: Arc<crate::chat::files::upload::InFlight>,
    /// A bcrypt hash of a random password at the configured cost: a login for an unknown user
    /// verifies against it, so it takes as long as a wrong password for a real one.
    pub dummy_password_hash: Arc<str>,
}
