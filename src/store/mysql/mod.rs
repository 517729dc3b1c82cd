//! MySQL (MariaDB locally): the pool, migrations, and the helper that turns unique-key
//! violations into conflicts.

pub(crate) mod bans;
pub(crate) mod files;
pub(crate) mod groups;
pub(crate) mod invitations;
pub(crate) mod relations;
pub(crate) mod users;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::MySqlPool;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

use crate::config::MysqlSettings;

pub(crate) async fn connect(settings: &MysqlSettings) -> anyhow::Result<MySqlPool> {
    let options = MySqlConnectOptions::from_str(settings.url.expose_secret())
        .context("mysql.url is not a valid MySQL URL")?
        .charset("utf8mb4")
        .timezone(Some("+00:00".to_owned()));
    let pool = MySqlPoolOptions::new()
        .max_connections(settings.max_connections.get())
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        .connect_with(options)
        .await
        .context("cannot connect to MySQL (mysql.url)")?;
    Ok(pool)
}

/// How long a starting process waits for another one that is applying the migrations.
const MIGRATION_LOCK_WAIT_SECS: u64 = 300;

/// Applies the migrations in `migrations/` (embedded at build time). Processes starting at the
/// same time take turns under a named lock of their own: the migrator's lock asks MySQL to wait
/// with a negative timeout, which MariaDB answers at once without a lock, and MySQL's DDL is not
/// transactional, so two processes migrating together can leave a migration half applied.
pub(crate) async fn migrate(pool: &MySqlPool) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await.context("no MySQL connection")?;
    // Closing the connection releases the lock whatever happens below.
    conn.close_on_drop();
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(CONCAT(DATABASE(), ':migrations'), ?)")
            .bind(MIGRATION_LOCK_WAIT_SECS)
            .fetch_one(&mut *conn)
            .await
            .context("taking the migration lock failed")?;
    if locked != Some(1) {
        anyhow::bail!("another process kept the migration lock for {MIGRATION_LOCK_WAIT_SECS} s");
    }
    sqlx::migrate!("./migrations")
        .run(&mut *conn)
        .await
        .context("applying MySQL migrations failed")
}

/// `?, ?, ?` for an `IN (...)` of `n` values (n > 0).
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The name of the unique key a statement violated, if that is why it failed.
pub(crate) fn violated_unique_key(err: &sqlx::Error) -> Option<String> {
    let db_err = err.as_database_error()?;
    if !db_err.is_unique_violation() {
        return None;
    }
    // MySQL reports: Duplicate entry '<value>' for key '<table>.<key>' (older: '<key>').
    let message = db_err.message();
    let key = message.rsplit("for key '").next()?.trim_end_matches('\'');
    Some(key.rsplit('.').next().unwrap_or(key).to_owned())
}

pub(crate) async fn ping(pool: &MySqlPool) -> anyhow::Result<()> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .context("mysql ping")?;
    Ok(())
}
