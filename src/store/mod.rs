//! Storage, one folder per backend: MySQL for users and relations, Redis for sessions, presence
//! and counters, MongoDB for messages, and a per-process cache in front of the MySQL reads of the
//! send path (`directory`). Plain async functions over a pool; no traits until a second
//! implementation needs one.

pub mod directory;
pub mod mongo;
pub mod mysql;
pub mod redis;
