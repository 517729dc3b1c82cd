//! MongoDB: the client and database handle; the collections (messages, read positions,
//! reactions, pins) and their indexes.
//! Only forms that behave the same on a real MongoDB 6+ and on the local wire-compatible
//! server are used (README: "MongoDB in production").

pub(crate) mod messages;
pub(crate) mod pins;
pub(crate) mod reactions;
pub mod reads;

use std::time::Duration;

use anyhow::Context;
use mongodb::bson::doc;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};
use secrecy::ExposeSecret;

use crate::config::MongoSettings;

/// The database of `mongodb.uri` / `mongodb.database`.
pub async fn connect(settings: &MongoSettings) -> anyhow::Result<Database> {
    let mut options = ClientOptions::parse(settings.uri.expose_secret())
        .await
        .context("mongodb.uri is not a valid MongoDB URI")?;
    options.app_name = Some("chat-server".to_owned());
    let timeout = Duration::from_millis(settings.server_selection_timeout_ms);
    options.server_selection_timeout = Some(timeout);
    options.connect_timeout = Some(timeout);
    let client = Client::with_options(options).context("building the MongoDB client")?;
    Ok(client.database(&settings.database))
}

/// One round trip to MongoDB.
pub async fn ping(db: &Database) -> anyhow::Result<()> {
    db.run_command(doc! { "ping": 1 })
        .await
        .context("mongodb ping")?;
    Ok(())
}

/// Creates every collection's indexes; safe to run on each start.
pub async fn ensure_indexes(db: &Database) -> crate::error::AppResult<()> {
    messages::ensure_indexes(db).await?;
    reads::ensure_indexes(db).await?;
    reactions::ensure_indexes(db).await?;
    pins::ensure_indexes(db).await?;
    // The GridFS bucket of uploads (files.store = "mongodb").
    crate::store::files::gridfs::prepare_bucket(db).await?;
    Ok(())
}

/// A unique index rejected the write.
pub fn is_duplicate(err: &mongodb::error::Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == messages::DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == messages::DUPLICATE_KEY,
        _ => false,
    }
}
