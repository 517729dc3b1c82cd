//! Newtypes that parse, not validate: once a value has one of these types it is known good.
//! Each `parse` names the JSON field it came from in its error.

mod conversation;
mod email;
mod nick_name;
mod password;
mod user_id;
mod user_name;

pub use conversation::{ConversationId, GroupId, MessageType};
pub use email::Email;
pub use nick_name::NickName;
pub use password::Password;
pub use user_id::UserId;
pub use user_name::{MAX_CHARS as USER_NAME_MAX_CHARS, UserName};
