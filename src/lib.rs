//! chat-server: Redis-centric real-time chat with anti-spam.
//!
//! A request travels through these modules, in order:
//! - [`startup`] builds the [`startup::Application`]: backends, migrations, listener, middleware,
//!   and mounts the two edges.
//! - The edges parse and answer: [`http`] holds the HTTP API, one module per area; [`ws`] the
//!   WebSocket (upgrade, one task per socket, one file per op). Both see the client through
//!   [`peer`] (its IP behind trusted proxies, the page it comes from).
//! - [`session`] guards routes that need a login (sessions live in Redis) and hashes passwords.
//! - [`chat`] is the core the edges call: the rules of who may do what and what happens then;
//!   [`chat::writer`] is its send pipeline (batched writes, seqs, delivery).
//! - [`antispam`] throttles senders and every push to other users, cluster-wide.
//! - [`hub`] knows who is connected where and carries deliveries between processes.
//! - [`store`] talks to the backends: MySQL (users, relations, groups), Redis (sessions, counters,
//!   seqs, locks), MongoDB (messages, read positions); [`domain`] holds the typed values.
//! - [`error`] is the one error type every failure becomes, with stable codes.
//!
//! [`config`], [`telemetry`], [`metrics`] and [`mail`] are set up once, at startup.

#![warn(unreachable_pub, missing_docs)]

pub(crate) mod antispam;
pub(crate) mod chat;
pub mod config;
pub mod domain;
pub mod error;
pub(crate) mod http;
pub(crate) mod hub;
pub(crate) mod mail;
pub(crate) mod metrics;
pub(crate) mod peer;
pub(crate) mod session;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod ws;
