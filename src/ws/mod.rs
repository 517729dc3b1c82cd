//! The WebSocket: the upgrade (session and Origin checks), the frames as types, one task per
//! connection, and one module per op.

pub mod connection;
pub mod ops;
pub mod protocol;
pub mod upgrade;

pub use upgrade::configure;
