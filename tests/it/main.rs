//! Integration tests: the real server on port 0 against the real Redis, MariaDB and MongoDB
//! started by `scripts/services.sh --test up` (addresses in conf/test.toml). Each test gets its
//! own MySQL database, MongoDB database and Redis key prefix. A missing service fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on anything unexpected"
)]

/// A positive setting of the test server (`conf/config.toml`'s counts and durations are
/// `NonZero`).
macro_rules! nz {
    ($n:expr) => {
        std::num::NonZero::new($n).expect("a positive test setting")
    };
}

/// Waits until `$ready` (an expression that may `.await`) holds, checking every 100 ms; fails
/// with `$what` when it still does not after `$secs` seconds.
macro_rules! eventually {
    ($secs:expr, $what:expr, $ready:expr) => {{
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs($secs);
        while !$ready {
            assert!(tokio::time::Instant::now() < deadline, "{}", $what);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }};
}

mod helpers;
mod redis_support;

mod accounts;
mod antispam;
mod config;
mod errors;
mod hardening;
mod health;
mod page;
mod sessions;

mod people_support;

mod people_blocks;
mod people_devices;
mod people_email;
mod people_friends;
mod people_profiles;

mod ws_client;

mod groups_support;

mod groups_conversations;
mod groups_join;
mod groups_moderation;
mod groups_roles;
mod groups_settings;

mod ws_cluster;
mod ws_connect;
mod ws_groups;
mod ws_history;
mod ws_order;
mod ws_order_processes;
mod ws_pipeline;
mod ws_read_delete;
mod ws_resume;
mod ws_send;
mod ws_slow_consumer;

mod authz_support;

mod abuse;
mod abuse_edge;
mod abuse_groups;
mod abuse_invites;
mod abuse_login;
mod abuse_reads;
mod abuse_ws;
mod authz_groups;
mod authz_http;
mod authz_ws;

mod files_support;

mod files;
mod files_access;
mod hostile_input;
mod message_actions;
mod message_actions_rules;
mod security;
