//! Newtypes that parse, not validate: once a value has one of these types it is known good.
//! Each `parse` names the JSON field it came from in its error.

mod conversation;
mod email;
mod emoji;
mod group;
mod nick_name;
mod password;
mod payload;
mod record_id;
mod request_status;
pub mod terms;
mod timestamp;
mod user_id;
mod user_name;

pub use conversation::{ConversationId, GroupId, MessageContent, MessageType};
pub use email::Email;
pub use emoji::{EMOJI_MAX_BYTES, Emoji};
pub use group::{JoinMode, Role};
pub use nick_name::NickName;
pub use password::Password;
pub use payload::{
    ADDRESS_MAX_CHARS, AttachmentRef, EXCERPT_MAX_CHARS, FILE_NAME_MAX_BYTES, FileId, Location,
    MAX_DURATION_MS, MediaKind, Payload, excerpt, sanitize_file_name,
};
pub use record_id::RecordId;
pub use request_status::RequestStatus;
pub use timestamp::Timestamp;
pub use user_id::UserId;
pub use user_name::{MAX_CHARS as USER_NAME_MAX_CHARS, UserName};
