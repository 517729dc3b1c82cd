//! Storage, one folder per backend: MySQL for users and relations, Redis for sessions, presence
//! and counters, MongoDB for messages, GridFS or a folder for the bytes of uploads (`files`), and a per-process cache in front of the MySQL reads of the
//! send path (`directory`). Plain async functions over a pool; no traits until a second
//! implementation needs one.

pub(crate) mod directory;
pub(crate) mod files;
pub mod mongo;
pub(crate) mod mysql;
pub(crate) mod redis;

/// The user search as one statement (its `EXPLAIN` shows one index range scan per half).
pub use mysql::users::SEARCH_SQL as USER_SEARCH_SQL;
