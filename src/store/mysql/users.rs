//! The `users` table.

use chrono::{NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::MySqlPool;

use crate::domain::{Email, NickName, Timestamp, UserId, UserName};
use crate::error::{AppError, AppResult};
use crate::store::mysql::violated_unique_key;

/// A user as the API shows it: never any password field.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct User {
    pub id: UserId,
    pub user_name: String,
    pub nick_name: String,
    pub email: Option<String>,
    pub avatar: String,
    pub sex: u8,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: u64,
    user_name: String,
    nick_name: String,
    email: Option<String>,
    avatar: String,
    sex: u8,
    created_at: NaiveDateTime,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: UserId(row.id),
            user_name: row.user_name,
            nick_name: row.nick_name,
            email: row.email,
            avatar: row.avatar,
            sex: row.sex,
            created_at: row.created_at.and_utc().into(),
        }
    }
}

const USER_COLUMNS: &str = "id, user_name, nick_name, email, avatar, sex, created_at";

pub(crate) struct NewUser<'a> {
    pub user_name: &'a UserName,
    pub nick_name: &'a NickName,
    pub email: Option<&'a Email>,
    pub password_hash: &'a str,
}

/// Inserts the user with the canonical key of its name; a taken user_name or email is a 409
/// naming the field. The unique indexes decide, so two concurrent registrations of one name
/// cannot both succeed.
#[tracing::instrument(skip_all, fields(user_name = new.user_name.as_str()))]
pub(crate) async fn insert(pool: &MySqlPool, new: NewUser<'_>) -> AppResult<User> {
    let now = Utc::now().naive_utc();
    let result = sqlx::query(
        "INSERT INTO users \
         (user_name, user_name_key, nick_name, email, password_hash, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new.user_name.as_str())
    .bind(new.user_name.key())
    .bind(new.nick_name.as_str())
    .bind(new.email.map(Email::as_str))
    .bind(new.password_hash)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await;
    match result {
        Ok(done) => find_by_id(pool, UserId(done.last_insert_id()))
            .await?
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("inserted user vanished"))),
        Err(err) => Err(match violated_unique_key(&err).as_deref() {
            Some("uq_users_user_name" | "uq_users_user_name_key") => AppError::Conflict {
                field: Some("user_name"),
                message: "user_name is already taken".into(),
            },
            Some("uq_users_email") => AppError::Conflict {
                field: Some("email"),
                message: "email is already registered".into(),
            },
            _ => err.into(),
        }),
    }
}

#[tracing::instrument(skip(pool))]
pub(crate) async fn find_by_id(pool: &MySqlPool, id: UserId) -> AppResult<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(User::from))
}

/// The user and their password hash, for checking credentials: found by the exact canonical
/// key (binary collation), so only the spellings [`UserName::key`] folds together reach it.
#[tracing::instrument(skip_all, fields(user_name = user_name.as_str()))]
pub(crate) async fn find_credentials_by_name(
    pool: &MySqlPool,
    user_name: &UserName,
) -> AppResult<Option<(User, String)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: String,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS}, password_hash FROM users WHERE user_name_key = ?"
    ))
    .bind(user_name.key())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.user.into(), r.password_hash)))
}

#[tracing::instrument(skip(pool))]
pub(crate) async fn password_hash(pool: &MySqlPool, id: UserId) -> AppResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?")
            .bind(id.0)
            .fetch_optional(pool)
            .await?,
    )
}

#[tracing::instrument(skip(pool, password_hash))]
pub(crate) async fn set_password_hash(
    pool: &MySqlPool,
    id: UserId,
    password_hash: &str,
) -> AppResult<()> {
    sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
        .bind(password_hash)
        .bind(Utc::now().naive_utc())
        .bind(id.0)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn exists(pool: &MySqlPool, id: UserId) -> AppResult<bool> {
    let found: Option<u64> = sqlx::query_scalar("SELECT id FROM users WHERE id = ?")
        .bind(id.0)
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

/// The profile fields a user may change; `None` leaves a field as it is.
#[derive(Default)]
pub(crate) struct ProfileChange<'a> {
    pub nick_name: Option<&'a NickName>,
    pub avatar: Option<&'a str>,
    pub sex: Option<u8>,
    /// `Some(None)` removes the email.
    pub email: Option<Option<&'a Email>>,
}

#[tracing::instrument(skip_all, fields(user_id = %id))]
pub(crate) async fn update_profile(
    pool: &MySqlPool,
    id: UserId,
    change: ProfileChange<'_>,
) -> AppResult<User> {
    let mut sets: Vec<&str> = Vec::new();
    if change.nick_name.is_some() {
        sets.push("nick_name = ?");
    }
    if change.avatar.is_some() {
        sets.push("avatar = ?");
    }
    if change.sex.is_some() {
        sets.push("sex = ?");
    }
    if change.email.is_some() {
        sets.push("email = ?");
    }
    if !sets.is_empty() {
        let sql = format!(
            "UPDATE users SET {}, updated_at = ? WHERE id = ?",
            sets.join(", ")
        );
        let mut query = sqlx::query(&sql);
        if let Some(nick) = change.nick_name {
            query = query.bind(nick.as_str());
        }
        if let Some(avatar) = change.avatar {
            query = query.bind(avatar);
        }
        if let Some(sex) = change.sex {
            query = query.bind(sex);
        }
        if let Some(email) = change.email {
            query = query.bind(email.map(Email::as_str));
        }
        let result = query
            .bind(Utc::now().naive_utc())
            .bind(id.0)
            .execute(pool)
            .await;
        if let Err(err) = result {
            return Err(match violated_unique_key(&err).as_deref() {
                Some("uq_users_email") => AppError::Conflict {
                    field: Some("email"),
                    message: "email is already registered".into(),
                },
                _ => err.into(),
            });
        }
    }
    find_by_id(pool, id).await?.ok_or(AppError::Unauthorized)
}

/// Exact lookup by one column (`user_name` or `email`).
/// The account whose canonical name is `user_name`'s (as logins and registrations compare:
/// case aside, no lookalikes).
pub(crate) async fn find_by_name(
    pool: &MySqlPool,
    user_name: &UserName,
) -> AppResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE user_name_key = ?"
    ))
    .bind(user_name.key())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(User::from))
}

/// The account with this email (stored lowercased, as `Email` parses it).
pub(crate) async fn find_by_email(pool: &MySqlPool, email: &str) -> AppResult<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"))
            .bind(email)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(User::from))
}

/// Several users by id, in the order of `ids` (unknown ids are left out).
pub(crate) async fn find_many(pool: &MySqlPool, ids: &[UserId]) -> AppResult<Vec<User>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = crate::store::mysql::placeholders(ids.len());
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id IN ({placeholders})");
    let mut query = sqlx::query_as::<_, UserRow>(&sql);
    for id in ids {
        query = query.bind(id.0);
    }
    let mut found: Vec<User> = query
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(User::from)
        .collect();
    found.sort_by_key(|u| ids.iter().position(|id| *id == u.id));
    Ok(found)
}

/// The ids of at most `max` users whose user_name or nick_name starts with `text` (ignoring
/// case and accents, as the columns compare), ordered by user_name. Each half is a range scan
/// of its index that stops after `max` entries, whatever the size of the table; `%`, `_` and
/// `\` in `text` are literal.
pub(crate) async fn search_ids(pool: &MySqlPool, text: &str, max: u32) -> AppResult<Vec<UserId>> {
    let prefix = format!("{}%", escape_like(text));
    let ids: Vec<u64> = sqlx::query_scalar(SEARCH_SQL)
        .bind(&prefix)
        .bind(max)
        .bind(&prefix)
        .bind(max)
        .bind(max)
        .fetch_all(pool)
        .await?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// The search as one statement; `EXPLAIN` of it shows one index range scan per half.
pub const SEARCH_SQL: &str = "SELECT id FROM ( \
       (SELECT id, user_name FROM users FORCE INDEX (uq_users_user_name) \
        WHERE user_name LIKE ? ORDER BY user_name LIMIT ?) \
     UNION \
       (SELECT id, user_name FROM users FORCE INDEX (ix_users_nick_name) \
        WHERE nick_name LIKE ? ORDER BY nick_name LIMIT ?) \
     ) AS found ORDER BY user_name, id LIMIT ?";

/// `text` as a literal inside a `LIKE` pattern (whose escape character is `\`).
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }
}
