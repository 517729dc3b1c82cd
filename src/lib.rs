//! chat-server: Redis-centric real-time chat with anti-spam.
//!
//! A request travels through these modules, in order:
//! - [`startup`] builds the [`startup::Application`]: backends, migrations, listener, middleware.
//! - [`http`] holds the HTTP API, one module per area, on top of typed [`domain`] values.
//! - [`session`] guards routes that need a login (sessions live in Redis) and hashes passwords.
//! - [`store`] talks to the backends: MySQL (users), Redis (sessions, logins), MongoDB (messages).
//! - [`error`] is the one error type every failure becomes, with stable codes.
//!
//! [`config`] and [`telemetry`] are read and set up once, at startup.

pub mod antispam;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod hub;
pub mod mail;
pub mod messaging;
pub mod metrics;
pub mod session;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ws;
