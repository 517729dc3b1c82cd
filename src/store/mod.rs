//! Storage, one folder per backend: MySQL for users and relations, Redis for sessions, presence
//! and counters, MongoDB for messages. Plain async functions over a pool; no traits until a
//! second implementation needs one.

pub mod mongo;
pub mod mysql;
pub mod redis;
