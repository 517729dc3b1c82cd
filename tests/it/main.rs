//! Integration tests: the real server on port 0 against the real Redis, MariaDB and MongoDB
//! started by `scripts/services.sh --test up` (addresses in conf/test.toml). Each test gets its
//! own MySQL database, MongoDB database and Redis key prefix. A missing service fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on anything unexpected"
)]

mod helpers;

mod accounts;
mod config;
mod errors;
mod health;
mod sessions;
