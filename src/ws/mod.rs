//! The WebSocket: the upgrade (session and Origin checks), the frames as types, one task per
//! connection (sends pipelined in order), the connection caps, and one module per op.

pub mod connection;
pub mod ops;
pub mod order;
pub mod protocol;
pub mod slots;
pub mod upgrade;

pub use upgrade::configure;
