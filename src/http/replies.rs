//! The bodies of the HTTP answers, as types: what each route answers is declared here once
//! (field names are wire names; docs/ describes them).

use serde::Serialize;

use crate::domain::{GroupId, Role, Timestamp, UserId};
use crate::store::mysql::bans::Ban;
use crate::store::mysql::groups::JoinRequest;
use crate::store::mysql::invitations::Invitation;

/// `{"status": ...}`: what happened, when nothing else is to be said.
#[derive(Serialize)]
pub(crate) struct Status {
    pub status: &'static str,
}

/// `{"user": ...}`.
#[derive(Serialize)]
pub(crate) struct UserReply<T> {
    pub user: T,
}

/// `{"group": ...}`.
#[derive(Serialize)]
pub(crate) struct GroupReply<T> {
    pub(crate) group: T,
}

/// A group as described to the caller, with their role (null: not a member).
#[derive(Serialize)]
pub(crate) struct Described<T> {
    pub(crate) group: T,
    pub(crate) my_role: Option<Role>,
}

/// `{"request": ...}`: a friend request or a join request.
#[derive(Serialize)]
pub(crate) struct RequestReply<T> {
    pub request: T,
}

/// `{"invitation": ...}`.
#[derive(Serialize)]
pub(crate) struct InvitationReply {
    pub invitation: Invitation,
}

/// `{"limits": ...}`.
#[derive(Serialize)]
pub(crate) struct LimitsReply<T> {
    pub limits: T,
}

/// What joining, adding someone or accepting an invitation did: `status` is `joined`,
/// `member` (already), `pending` (with the join request) or `invited` (with the invitation);
/// an accepted invitation also carries itself.
#[derive(Serialize, Default)]
pub(crate) struct Admission {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<JoinRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation: Option<Invitation>,
}

/// A member leaving or removed (with the ban made with a kick).
#[derive(Serialize)]
pub(crate) struct Removed {
    pub group_id: GroupId,
    pub user_id: UserId,
    pub removed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ban: Option<Ban>,
}

/// A ban, and whether it removed a member.
#[derive(Serialize)]
pub(crate) struct Banned {
    pub ban: Ban,
    pub removed: bool,
}

/// A ban lifted (`banned: false`).
#[derive(Serialize)]
pub(crate) struct Unbanned {
    pub group_id: GroupId,
    pub user_id: UserId,
    pub banned: bool,
}

/// A group dissolved (`dissolved: true`).
#[derive(Serialize)]
pub(crate) struct Dissolved {
    pub group_id: GroupId,
    pub dissolved: bool,
}

/// The owner after a transfer.
#[derive(Serialize)]
pub(crate) struct Owner {
    pub group_id: GroupId,
    pub owner_id: UserId,
}

/// A member's role after a change.
#[derive(Serialize)]
pub(crate) struct RoleSet {
    pub group_id: GroupId,
    pub user_id: UserId,
    pub role: Role,
}

/// A member's mute (null: not muted).
#[derive(Serialize)]
pub(crate) struct Muted {
    pub user_id: UserId,
    pub muted_until: Option<Timestamp>,
}

/// A member of a group as its member list shows them.
#[derive(Serialize)]
pub(crate) struct Member {
    pub user_id: UserId,
    pub user_name: Option<String>,
    pub nick_name: Option<String>,
    pub nickname: Option<String>,
    pub role: Role,
    pub muted_until: Option<Timestamp>,
    pub online: bool,
    pub joined_at: Timestamp,
}

/// A member's own settings in a group.
#[derive(Serialize)]
pub(crate) struct MySettings {
    pub group_id: GroupId,
    pub nickname: Option<String>,
    pub remark: Option<String>,
    pub dnd: bool,
    pub folded: bool,
    pub show_in_contacts: bool,
}

/// `{"settings": ...}`.
#[derive(Serialize)]
pub(crate) struct SettingsReply {
    pub settings: MySettings,
}

/// A block made (`{"block": {"user_id", "created_at"}}`).
#[derive(Serialize)]
pub(crate) struct BlockReply {
    pub block: Block,
}

#[derive(Serialize)]
pub(crate) struct Block {
    pub user_id: UserId,
    pub created_at: Timestamp,
}

/// A block lifted (`blocked: false`).
#[derive(Serialize)]
pub(crate) struct Unblocked {
    pub user_id: UserId,
    pub blocked: bool,
}

/// Whether the caller and a user are friends (with the user's id after an unfriending).
#[derive(Serialize)]
pub(crate) struct Friendship {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    pub is_friend: bool,
}

/// `{"friend": ...}`.
#[derive(Serialize)]
pub(crate) struct FriendReply<T> {
    pub friend: T,
}

/// A device's login revoked.
#[derive(Serialize)]
pub(crate) struct DeviceRevoked {
    pub id: String,
    pub revoked: bool,
}

/// How many other sessions a password change ended.
#[derive(Serialize)]
pub(crate) struct PasswordChanged {
    pub revoked_sessions: usize,
}
