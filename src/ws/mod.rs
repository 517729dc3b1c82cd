//! The WebSocket: the upgrade (session and Origin checks), the frames as types, one task per
//! connection (sends pipelined in order), and one module per op.

pub(crate) mod connection;
pub(crate) mod ops;
pub(crate) mod order;
pub(crate) mod protocol;
pub(crate) mod upgrade;

pub(crate) use upgrade::configure;

/// The numbers of the WebSocket protocol that clients (and the load generator) speak: ops and
/// reply codes (docs/protocol.md).
pub mod wire {
    pub use super::protocol::{
        CODE_BAD_FRAME, CODE_DELIVERED, CODE_OK, CODE_STORED_OFFLINE, OP_DELETE, OP_EDIT,
        OP_GROUP_SEND, OP_HISTORY, OP_MARK_READ, OP_REACT, OP_RESUME, OP_SEND, OP_TYPING,
        OP_UNREAD,
    };
    pub use crate::error::{CODE_FAILED, CODE_REFUSED};
    pub use crate::store::mongo::messages::SYSTEM_TYPE;
}
