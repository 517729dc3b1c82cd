//! bcrypt hashing, always off the async executor: one hash costs tens of milliseconds of CPU.

use actix_web::web;

use crate::error::{AppError, AppResult};

pub(crate) async fn hash(password: String, cost: u32) -> AppResult<String> {
    web::block(move || bcrypt::hash(password, cost))
        .await?
        .map_err(|e| AppError::Internal(anyhow::anyhow!("bcrypt hash failed: {e}")))
}

/// False for a wrong password or an unusable stored hash.
pub(crate) async fn verify(password: String, hash: String) -> AppResult<bool> {
    Ok(web::block(move || bcrypt::verify(password, &hash).unwrap_or(false)).await?)
}
