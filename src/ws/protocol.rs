//! The frames as types. A text frame becomes a [`Request`] before any logic runs; anything that
//! does not parse becomes a [`FrameError`] carrying what is needed for the 40000 reply.
//! See docs/protocol.md for the contract.

use std::borrow::Cow;

use mongodb::bson::oid::ObjectId;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::chat::sending::{Body, Composed, Mentions};
use crate::domain::{
    AttachmentRef, ConversationId, Emoji, FileId, GroupId, Location, MAX_DURATION_MS, MediaKind,
    MessageContent, MessageType, Payload, UserId,
};
use crate::error::AppError;
use crate::store::mongo::messages::ChangeCursor;

/// Longest accepted `client_msg_id`, in characters.
pub(crate) const CLIENT_MSG_ID_MAX_CHARS: usize = 64;

/// op 1: send to a user.
pub const OP_SEND: i64 = 1;
/// op 2: a page of history.
pub const OP_HISTORY: i64 = 2;
/// op 3: unread messages, or the unread counts.
pub const OP_UNREAD: i64 = 3;
/// op 4: mark read.
pub const OP_MARK_READ: i64 = 4;
/// op 5: delete or recall a message.
pub const OP_DELETE: i64 = 5;
/// op 6: send to a group (or the lobby).
pub const OP_GROUP_SEND: i64 = 6;
/// op 7: everything not seen since a reconnect.
pub const OP_RESUME: i64 = 7;
/// op 8: a typing notice.
pub const OP_TYPING: i64 = 8;
/// op 9: edit a message.
pub const OP_EDIT: i64 = 9;
/// op 10: add or remove a reaction.
pub const OP_REACT: i64 = 10;

/// The reply code of success.
pub const CODE_OK: u32 = 200;
/// A 1:1 send stored, the recipient live.
pub const CODE_DELIVERED: u32 = 50004;
/// A 1:1 send stored, the recipient offline.
pub const CODE_STORED_OFFLINE: u32 = 50005;
/// A frame that does not parse, or a value out of range.
pub const CODE_BAD_FRAME: u32 = 40000;

/// What a request is about: a peer (1:1) or a conversation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    User(UserId),
    Conversation(ConversationId),
}

impl Target {
    pub(crate) fn conversation_for(self, me: UserId) -> ConversationId {
        match self {
            Self::User(peer) => ConversationId::direct(me, peer),
            Self::Conversation(c) => c,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Paging {
    /// Skip the newest `skip` messages, then `limit`.
    SkipLimit { skip: u64, limit: i64 },
    /// The newest `limit` below `before_seq` (all when None).
    Before { before_seq: Option<i64>, limit: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadTarget {
    Message(ObjectId),
    Position {
        conversation: ConversationId,
        seq: i64,
    },
}

/// A message as a send (op 1 or 6) gives it: composed or forwarded, maybe answering another,
/// maybe mentioning members (op 6).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outgoing {
    pub body: Body,
    pub reply_to: Option<ObjectId>,
    pub mentions: Option<Mentions>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientOp {
    Send {
        to: UserId,
        message: Outgoing,
    },
    History {
        target: Target,
        paging: Paging,
    },
    Unread {
        target: Option<Target>,
    },
    MarkRead(ReadTarget),
    Delete {
        id: ObjectId,
        everyone: bool,
    },
    GroupSend {
        group: GroupId,
        message: Outgoing,
    },
    Resume {
        since: Vec<(ConversationId, i64)>,
        /// Also answer what changed since then.
        changed_since: Option<ChangeCursor>,
    },
    Typing {
        target: Target,
    },
    Edit {
        id: ObjectId,
        content: MessageContent,
    },
    React {
        id: ObjectId,
        emoji: Emoji,
        add: bool,
    },
}

impl ClientOp {
    /// A send (op 1 or 6): may be pipelined with the connection's other sends.
    pub(crate) fn is_send(&self) -> bool {
        matches!(self, Self::Send { .. } | Self::GroupSend { .. })
    }
}

#[derive(Debug)]
pub(crate) struct Request {
    pub op_type: i64,
    pub client_msg_id: Option<String>,
    pub op: ClientOp,
}

/// A frame that could not become a request.
#[derive(Debug)]
pub(crate) struct FrameError {
    pub op_type: i64,
    pub client_msg_id: Option<String>,
    pub error: AppError,
}

/// The reply every request gets.
#[derive(Debug, Serialize)]
pub(crate) struct Reply {
    pub op_type: i64,
    pub code: u32,
    pub msg: Cow<'static, str>,
    pub data: Option<Value>,
    pub client_msg_id: Option<String>,
}

impl Reply {
    pub(crate) fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(r#"{{"op_type":{},"code":50000,"msg":"reply not serialisable","data":null,"client_msg_id":null}}"#, self.op_type)
        })
    }

    pub(crate) fn error(op_type: i64, client_msg_id: Option<String>, error: &AppError) -> Self {
        Self {
            op_type,
            code: error.ws_code(),
            msg: error.ws_message().into(),
            data: error.ws_data(),
            client_msg_id,
        }
    }
}

/// The limits parsing enforces, from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_content_chars: usize,
    pub history_default_limit: i64,
    pub history_max_limit: i64,
    /// The deepest `"<skip>-<limit>"` history page (deeper ones page with `before_seq`).
    pub max_history_skip: u64,
    /// Most conversations one resume may name in `since`.
    pub max_resume_conversations: usize,
    /// Most entries of op 6's `mentions`.
    pub max_mentions: usize,
}

impl Limits {
    pub(crate) fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            max_content_chars: settings.messages.max_content_chars.get(),
            history_default_limit: i64::from(settings.messages.history_default_limit),
            history_max_limit: i64::from(settings.messages.history_max_limit.get()),
            max_history_skip: settings.messages.max_history_skip,
            max_resume_conversations: settings.ws.max_resume_conversations.get(),
            max_mentions: settings.messages.max_mentions.get(),
        }
    }
}

pub(crate) fn parse(text: &str, limits: &Limits) -> Result<Request, FrameError> {
    let bad = |op_type: i64, client_msg_id: Option<String>, error: AppError| FrameError {
        op_type,
        client_msg_id,
        error,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        bad(
            0,
            None,
            AppError::InvalidJson(format!("malformed JSON: {e}")),
        )
    })?;
    let Value::Object(frame) = value else {
        return Err(bad(
            0,
            None,
            AppError::InvalidJson("a frame must be a JSON object".into()),
        ));
    };
    // The echo fields first, so every later error can carry them.
    let raw_client_msg_id = frame
        .get("client_msg_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let op_type = match frame.get("op_type").and_then(Value::as_i64) {
        Some(op) => op,
        None => {
            return Err(bad(
                0,
                raw_client_msg_id,
                invalid("op_type", "is required and must be an integer"),
            ));
        }
    };
    let fields = Fields(&frame);
    let parsed = fields
        .client_msg_id()
        .and_then(|client_msg_id| parse_op(op_type, &fields, limits).map(|op| (client_msg_id, op)));
    match parsed {
        Ok((client_msg_id, op)) => Ok(Request {
            op_type,
            client_msg_id,
            op,
        }),
        Err(error) => Err(bad(op_type, raw_client_msg_id, error)),
    }
}

fn parse_op(op_type: i64, f: &Fields<'_>, limits: &Limits) -> Result<ClientOp, AppError> {
    Ok(match op_type {
        OP_SEND => ClientOp::Send {
            to: f
                .user_id("to")?
                .ok_or_else(|| invalid("to", "is required"))?,
            message: f.outgoing(limits, false)?,
        },
        OP_HISTORY => ClientOp::History {
            target: f
                .target()?
                .ok_or_else(|| invalid("to", "`to` or `conversation` is required"))?,
            paging: f.paging(limits)?,
        },
        OP_UNREAD => ClientOp::Unread {
            target: f.target()?,
        },
        OP_MARK_READ => ClientOp::MarkRead(f.read_target()?),
        OP_DELETE => ClientOp::Delete {
            id: f.message_id()?,
            everyone: match f.string("scope")? {
                None | Some("me") => false,
                Some("all") => true,
                Some(_) => return Err(invalid("scope", "must be \"me\" or \"all\"")),
            },
        },
        OP_GROUP_SEND => ClientOp::GroupSend {
            group: f.group_id("to")?,
            message: f.outgoing(limits, true)?,
        },
        OP_RESUME => ClientOp::Resume {
            since: f.since(limits)?,
            changed_since: f.changed_since()?,
        },
        OP_TYPING => ClientOp::Typing {
            target: f
                .target()?
                .ok_or_else(|| invalid("to", "`to` or `conversation` is required"))?,
        },
        OP_EDIT => ClientOp::Edit {
            id: f.required_message_id()?,
            content: MessageContent::parse(
                f.string("content")?
                    .ok_or_else(|| invalid("content", "is required"))?,
                limits.max_content_chars,
            )?,
        },
        OP_REACT => ClientOp::React {
            id: f.required_message_id()?,
            emoji: Emoji::parse(
                f.string("emoji")?
                    .ok_or_else(|| invalid("emoji", "is required"))?,
            )?,
            add: match f.string("action")? {
                Some("add") => true,
                Some("remove") => false,
                _ => return Err(invalid("action", "must be \"add\" or \"remove\"")),
            },
        },
        other => {
            return Err(AppError::BadRequest(
                format!("unknown op_type {other}").into(),
            ));
        }
    })
}

fn invalid(field: &'static str, message: impl Into<Cow<'static, str>>) -> AppError {
    AppError::validation(field, message)
}

/// Typed access to the fields of one frame.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &'static str) -> Result<Option<&str>, AppError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(name, "must be a string")),
        }
    }

    fn integer(&self, name: &'static str) -> Result<Option<i64>, AppError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| invalid(name, "must be an integer")),
        }
    }

    /// A user id as a string or a positive JSON integer.
    fn user_id(&self, name: &'static str) -> Result<Option<UserId>, AppError> {
        let parsed = match self.get(name) {
            None => return Ok(None),
            Some(Value::String(s)) => UserId::parse(s),
            Some(Value::Number(n)) => n.as_u64().filter(|n| *n > 0).map(UserId),
            Some(_) => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| invalid(name, "must be a user id"))
    }

    /// A group id; a missing or empty `to` is the lobby.
    fn group_id(&self, name: &'static str) -> Result<GroupId, AppError> {
        let parsed = match self.get(name) {
            None => Some(GroupId::LOBBY),
            Some(Value::String(s)) => GroupId::parse(s),
            Some(Value::Number(n)) => n.as_u64().map(GroupId),
            Some(_) => None,
        };
        parsed.ok_or_else(|| invalid(name, "must be a group id"))
    }

    fn conversation(&self) -> Result<Option<ConversationId>, AppError> {
        match self.string("conversation")? {
            None => Ok(None),
            Some(raw) => ConversationId::parse(raw)
                .map(Some)
                .ok_or_else(|| invalid("conversation", "must be u:<a>:<b> or g:<group id>")),
        }
    }

    /// `conversation` when given, else `to` as a peer.
    fn target(&self) -> Result<Option<Target>, AppError> {
        if let Some(c) = self.conversation()? {
            return Ok(Some(Target::Conversation(c)));
        }
        Ok(self.user_id("to")?.map(Target::User))
    }

    fn client_msg_id(&self) -> Result<Option<String>, AppError> {
        match self.string("client_msg_id")? {
            None => Ok(None),
            Some(id) => {
                let chars = id.chars().count();
                if chars == 0 || chars > CLIENT_MSG_ID_MAX_CHARS || id.chars().any(char::is_control)
                {
                    Err(invalid(
                        "client_msg_id",
                        format!("must be 1 to {CLIENT_MSG_ID_MAX_CHARS} printable characters"),
                    ))
                } else {
                    Ok(Some(id.to_owned()))
                }
            }
        }
    }

    fn outgoing(&self, limits: &Limits, group: bool) -> Result<Outgoing, AppError> {
        let reply_to = self.optional_message_id("reply_to")?;
        let mentions = if group {
            self.mentions(limits)?
        } else {
            self.refuse_present("mentions", "only group messages (op 6) mention members")?;
            None
        };
        let body = match self.optional_message_id("forward_of")? {
            Some(original) => {
                // A copy: what it carries is the original's (a `type` given with it is ignored).
                for field in ["content", "attachment", "location"] {
                    self.refuse_present(field, "a forward carries the original's")?;
                }
                if reply_to.is_some() {
                    return Err(invalid("reply_to", "a forward answers nothing"));
                }
                Body::Forward(original)
            }
            None => Body::New(self.composed(limits)?),
        };
        Ok(Outgoing {
            body,
            reply_to,
            mentions,
        })
    }

    fn optional_message_id(&self, name: &'static str) -> Result<Option<ObjectId>, AppError> {
        self.string(name)?
            .map(|raw| ObjectId::parse_str(raw).map_err(|_| invalid(name, "must be a message id")))
            .transpose()
    }

    /// `mentions`: member ids (strings or numbers), deduplicated, or `["all"]`.
    fn mentions(&self, limits: &Limits) -> Result<Option<Mentions>, AppError> {
        let list = match self.get("mentions") {
            None => return Ok(None),
            Some(Value::Array(list)) => list,
            Some(_) => {
                return Err(invalid(
                    "mentions",
                    "must be an array of user ids or [\"all\"]",
                ));
            }
        };
        if list.len() > limits.max_mentions {
            return Err(invalid(
                "mentions",
                format!("names more than {} members", limits.max_mentions),
            ));
        }
        let mut users: Vec<UserId> = Vec::with_capacity(list.len());
        for entry in list {
            let user = match entry {
                Value::String(s) if s == crate::store::mongo::messages::MENTION_ALL => {
                    return Ok(Some(Mentions::All));
                }
                Value::String(s) => UserId::parse(s),
                Value::Number(n) => n.as_u64().filter(|n| *n > 0).map(UserId),
                _ => None,
            }
            .ok_or_else(|| invalid("mentions", "must be user ids or [\"all\"]"))?;
            if !users.contains(&user) {
                users.push(user);
            }
        }
        Ok(Some(Mentions::Users(users)))
    }

    fn composed(&self, limits: &Limits) -> Result<Composed, AppError> {
        let kind = self
            .integer("type")?
            .ok_or_else(|| invalid("type", "is required"))
            .map(MessageType::parse)?
            .ok_or_else(|| {
                invalid(
                    "type",
                    "must be 1 (text), 2 (image), 3 (voice), 4 (video), 5 (location) or 6 (file)",
                )
            })?;
        let content = self.string("content")?;
        let payload = if kind == MessageType::TEXT {
            self.refuse_present("attachment", "only types 2, 3, 4 and 6 carry an attachment")?;
            self.refuse_present("location", "only type 5 carries a location")?;
            let content = content.ok_or_else(|| invalid("content", "is required"))?;
            return Ok(Composed {
                kind,
                content: Some(MessageContent::parse(content, limits.max_content_chars)?),
                payload: Payload::Text,
            });
        } else if kind == MessageType::LOCATION {
            self.refuse_present("attachment", "a location message carries no attachment")?;
            Payload::Location(self.location()?)
        } else {
            self.refuse_present("location", "only type 5 carries a location")?;
            let media = MediaKind::of(kind).ok_or_else(|| invalid("type", "is not sendable"))?;
            Payload::Attachment(self.attachment(media)?)
        };
        // The caption: optional, with the rules of a text when given.
        let content = match content {
            Some(c) if !c.trim().is_empty() => {
                Some(MessageContent::parse(c, limits.max_content_chars)?)
            }
            _ => None,
        };
        Ok(Composed {
            kind,
            content,
            payload,
        })
    }

    fn refuse_present(&self, name: &'static str, why: &'static str) -> Result<(), AppError> {
        match self.get(name) {
            None => Ok(()),
            Some(_) => Err(invalid(name, why)),
        }
    }

    fn object(&self, name: &'static str) -> Result<Fields<'_>, AppError> {
        match self.get(name) {
            Some(Value::Object(map)) => Ok(Fields(map)),
            None => Err(invalid(name, "is required for this type")),
            Some(_) => Err(invalid(name, "must be an object")),
        }
    }

    fn attachment(&self, media: MediaKind) -> Result<AttachmentRef, AppError> {
        let a = self.object("attachment")?;
        let file_id = match a.get("file_id") {
            Some(Value::String(raw)) => FileId::parse(raw),
            _ => None,
        }
        .ok_or_else(|| invalid("attachment.file_id", "must be the id of an upload"))?;
        let duration_ms = match a.get("duration_ms") {
            None => None,
            Some(_) if !media.has_duration() => {
                return Err(invalid(
                    "attachment.duration_ms",
                    "only voice and video messages have a duration",
                ));
            }
            Some(v) => Some(
                v.as_u64()
                    .filter(|ms| (1..=u64::from(MAX_DURATION_MS)).contains(ms))
                    .and_then(|ms| u32::try_from(ms).ok())
                    .ok_or_else(|| {
                        invalid(
                            "attachment.duration_ms",
                            format!("must be an integer from 1 to {MAX_DURATION_MS}"),
                        )
                    })?,
            ),
        };
        Ok(AttachmentRef {
            file_id,
            duration_ms,
        })
    }

    fn location(&self) -> Result<Location, AppError> {
        let l = self.object("location")?;
        let number = |key: &str, field: &'static str| {
            l.get(key)
                .and_then(Value::as_f64)
                .ok_or_else(|| invalid(field, "is required and must be a number"))
        };
        let lat = number("lat", "location.lat")?;
        let lon = number("lon", "location.lon")?;
        let address = match l.get("address") {
            None => None,
            Some(Value::String(a)) => Some(a.as_str()),
            Some(_) => return Err(invalid("location.address", "must be a string")),
        };
        Location::parse(lat, lon, address)
    }

    fn limit(&self, limits: &Limits) -> Result<i64, AppError> {
        match self.integer("limit")? {
            None => Ok(limits.history_default_limit),
            Some(n) if n >= 1 => Ok(n.min(limits.history_max_limit)),
            Some(_) => Err(invalid("limit", "must be at least 1")),
        }
    }

    fn paging(&self, limits: &Limits) -> Result<Paging, AppError> {
        if let Some(content) = self.string("content")? {
            let parsed = content.split_once('-').and_then(|(skip, limit)| {
                Some((skip.parse::<u64>().ok()?, limit.parse::<i64>().ok()?))
            });
            return match parsed {
                Some((skip, _)) if skip > limits.max_history_skip => Err(invalid(
                    "content",
                    format!(
                        "a skip above {} is refused: page older messages with before_seq",
                        limits.max_history_skip
                    ),
                )),
                Some((skip, limit)) if limit >= 1 => Ok(Paging::SkipLimit {
                    skip,
                    limit: limit.min(limits.history_max_limit),
                }),
                _ => Err(invalid(
                    "content",
                    "must be \"<skip>-<limit>\" with a limit of at least 1",
                )),
            };
        }
        let before_seq = match self.integer("before_seq")? {
            None => None,
            Some(n) if n >= 1 => Some(n),
            Some(_) => return Err(invalid("before_seq", "must be at least 1")),
        };
        Ok(Paging::Before {
            before_seq,
            limit: self.limit(limits)?,
        })
    }

    /// `message_id`, required (ops 9 and 10).
    fn required_message_id(&self) -> Result<ObjectId, AppError> {
        self.optional_message_id("message_id")?
            .ok_or_else(|| invalid("message_id", "is required"))
    }

    /// The message an op is about: `message_id`, or (ops 4 and 5, as before) `content`.
    fn message_id(&self) -> Result<ObjectId, AppError> {
        if let Some(id) = self.optional_message_id("message_id")? {
            return Ok(id);
        }
        let raw = self
            .string("content")?
            .ok_or_else(|| invalid("message_id", "the message id is required"))?;
        ObjectId::parse_str(raw).map_err(|_| invalid("content", "must be a message id"))
    }

    fn read_target(&self) -> Result<ReadTarget, AppError> {
        if let Some(conversation) = self.conversation()? {
            let seq = self
                .integer("seq")?
                .ok_or_else(|| invalid("seq", "is required with `conversation`"))?;
            if seq < 0 {
                return Err(invalid("seq", "must not be negative"));
            }
            return Ok(ReadTarget::Position { conversation, seq });
        }
        Ok(ReadTarget::Message(self.message_id()?))
    }

    /// op 7's `changed_since`: the `changed_until` of the previous resume, or a time (RFC
    /// 3339, or Unix milliseconds).
    fn changed_since(&self) -> Result<Option<ChangeCursor>, AppError> {
        const WHAT: &str =
            "must be the `changed_until` of a resume, a time (RFC 3339) or Unix milliseconds";
        let at = |ms: i64| ChangeCursor { ms, after: None };
        match self.get("changed_since") {
            None => Ok(None),
            Some(Value::String(text)) => ChangeCursor::parse(text)
                .or_else(|| {
                    chrono::DateTime::parse_from_rfc3339(text)
                        .ok()
                        .map(|t| at(t.timestamp_millis()))
                })
                .filter(|c| c.ms >= 0)
                .map(Some)
                .ok_or_else(|| invalid("changed_since", WHAT)),
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|ms| *ms >= 0)
                .map(|ms| Some(at(ms)))
                .ok_or_else(|| invalid("changed_since", WHAT)),
            Some(_) => Err(invalid("changed_since", WHAT)),
        }
    }

    fn since(&self, limits: &Limits) -> Result<Vec<(ConversationId, i64)>, AppError> {
        let map = match self.get("since") {
            None => return Ok(Vec::new()),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(invalid("since", "must be an object of conversation → seq")),
        };
        if map.len() > limits.max_resume_conversations {
            return Err(invalid(
                "since",
                format!(
                    "names more than {} conversations",
                    limits.max_resume_conversations
                ),
            ));
        }
        map.iter()
            .map(|(conversation, seq)| {
                let conversation = ConversationId::parse(conversation).ok_or_else(|| {
                    invalid(
                        "since",
                        format!("`{conversation}` is not a conversation id"),
                    )
                })?;
                let seq = seq
                    .as_i64()
                    .filter(|s| *s >= 0)
                    .ok_or_else(|| invalid("since", "seqs must be integers of at least 0"))?;
                Ok((conversation, seq))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_content_chars: 10,
        history_default_limit: 20,
        history_max_limit: 100,
        max_history_skip: 50,
        max_resume_conversations: 2,
        max_mentions: 3,
    };

    /// The composed message of a send.
    fn composed(op: ClientOp) -> Composed {
        match op {
            ClientOp::Send { message, .. } | ClientOp::GroupSend { message, .. } => {
                match message.body {
                    Body::New(c) => c,
                    Body::Forward(_) => panic!("a forward"),
                }
            }
            other => panic!("{other:?}"),
        }
    }

    fn op(text: &str) -> ClientOp {
        parse(text, &LIMITS).unwrap().op
    }

    fn err(text: &str) -> FrameError {
        parse(text, &LIMITS).unwrap_err()
    }

    #[test]
    fn send_takes_string_or_number_ids_and_ignores_from() {
        let expected = ClientOp::Send {
            to: UserId(7),
            message: Outgoing {
                body: Body::New(Composed {
                    kind: MessageType(1),
                    content: Some(MessageContent::parse("hi", 10).unwrap()),
                    payload: Payload::Text,
                }),
                reply_to: None,
                mentions: None,
            },
        };
        assert_eq!(
            op(r#"{"op_type":1,"to":"7","type":1,"content":"hi","from":"99"}"#),
            expected
        );
        assert_eq!(
            op(r#"{"op_type":1,"to":7,"type":1,"content":"hi"}"#),
            expected
        );
        assert_eq!(
            err(r#"{"op_type":1,"to":7,"content":"hi"}"#)
                .error
                .ws_code(),
            40000
        );
    }

    #[test]
    fn bad_frames_keep_what_can_be_echoed() {
        let e = err(r#"{"op_type":1,"to":"x","type":1,"content":"hi","client_msg_id":"c1"}"#);
        assert_eq!(
            (e.op_type, e.client_msg_id.as_deref(), e.error.ws_code()),
            (1, Some("c1"), 40000)
        );
        let e = err("not json");
        assert_eq!((e.op_type, e.error.ws_code()), (0, 40000));
        assert_eq!(err("[1]").error.ws_code(), 40000);
        assert_eq!(err(r#"{"op_type":99}"#).op_type, 99);
        assert_eq!(err(r#"{"op_type":"1"}"#).op_type, 0);
    }

    #[test]
    fn content_rules() {
        assert_eq!(
            err(r#"{"op_type":1,"to":"7","type":1,"content":"12345678901"}"#)
                .error
                .ws_code(),
            40013
        );
        assert_eq!(
            err(r#"{"op_type":1,"to":"7","type":1,"content":"  "}"#)
                .error
                .ws_code(),
            40000
        );
        assert_eq!(
            err(r#"{"op_type":1,"to":"7","content":"x","type":7}"#)
                .error
                .ws_code(),
            40000
        );
        assert_eq!(
            err(r#"{"op_type":1,"to":"7","type":1,"content":5}"#)
                .error
                .ws_code(),
            40000
        );
    }

    #[test]
    fn typed_messages_carry_their_payload() {
        let id = "0123456789abcdef01234567";
        let field = |t: &str| match err(t).error {
            AppError::Validation { field, .. } => field.into_owned(),
            other => panic!("{other:?}"),
        };
        let message = composed(op(&format!(
            r#"{{"op_type":1,"to":"7","type":3,"attachment":{{"file_id":"{id}","duration_ms":1500}}}}"#
        )));
        assert_eq!(message.content, None);
        assert_eq!(
            message.payload,
            Payload::Attachment(AttachmentRef {
                file_id: FileId::parse(id).unwrap(),
                duration_ms: Some(1500)
            })
        );
        let message = composed(op(&format!(
            r#"{{"op_type":1,"to":"7","type":2,"content":"look","attachment":{{"file_id":"{id}"}}}}"#
        )));
        assert_eq!(message.content.unwrap().as_str(), "look");
        assert_eq!(
            field(r#"{"op_type":1,"to":"7","type":2,"content":"x"}"#),
            "attachment"
        );
        assert_eq!(
            field(r#"{"op_type":1,"to":"7","type":2,"attachment":{"file_id":"nope"}}"#),
            "attachment.file_id"
        );
        assert_eq!(
            field(&format!(
                r#"{{"op_type":1,"to":"7","type":2,"attachment":{{"file_id":"{id}","duration_ms":5}}}}"#
            )),
            "attachment.duration_ms"
        );
        assert_eq!(
            field(&format!(
                r#"{{"op_type":1,"to":"7","type":4,"attachment":{{"file_id":"{id}","duration_ms":0}}}}"#
            )),
            "attachment.duration_ms"
        );
        assert_eq!(
            field(&format!(
                r#"{{"op_type":1,"to":"7","type":1,"content":"x","attachment":{{"file_id":"{id}"}}}}"#
            )),
            "attachment"
        );
        assert_eq!(
            field(r#"{"op_type":1,"to":"7","type":1,"content":"x","location":{"lat":1,"lon":2}}"#),
            "location"
        );
        let message = composed(op(
            r#"{"op_type":6,"to":"4","type":5,"location":{"lat":52.5,"lon":13.4,"address":"Berlin"}}"#,
        ));
        assert_eq!(
            message.payload,
            Payload::Location(Location::parse(52.5, 13.4, Some("Berlin")).unwrap())
        );
        assert_eq!(
            field(r#"{"op_type":6,"to":"4","type":5,"location":{"lat":91,"lon":0}}"#),
            "location.lat"
        );
        assert_eq!(
            field(r#"{"op_type":6,"to":"4","type":5,"location":{"lat":"1","lon":0}}"#),
            "location.lat"
        );
        assert_eq!(field(r#"{"op_type":6,"to":"4","type":5}"#), "location");
        assert_eq!(
            err(r#"{"op_type":6,"to":"4","type":5,"content":"12345678901","location":{"lat":1,"lon":1}}"#)
                .error
                .ws_code(),
            40013
        );
    }

    #[test]
    fn paging_forms() {
        assert_eq!(
            op(r#"{"op_type":2,"to":"7","content":"5-10"}"#),
            ClientOp::History {
                target: Target::User(UserId(7)),
                paging: Paging::SkipLimit { skip: 5, limit: 10 }
            }
        );
        assert_eq!(
            op(r#"{"op_type":2,"conversation":"g:3","before_seq":9,"limit":500}"#),
            ClientOp::History {
                target: Target::Conversation(ConversationId::Group(GroupId(3))),
                paging: Paging::Before {
                    before_seq: Some(9),
                    limit: 100
                }
            }
        );
        for bad in [
            r#"{"op_type":2,"to":"7","limit":0}"#,
            r#"{"op_type":2,"to":"7","limit":-3}"#,
            r#"{"op_type":2,"to":"7","content":"a-b"}"#,
            r#"{"op_type":2,"to":"7","content":"1-0"}"#,
            r#"{"op_type":2,"to":"7","content":"51-10"}"#,
            r#"{"op_type":2}"#,
        ] {
            assert_eq!(err(bad).error.ws_code(), 40000, "{bad}");
        }
    }

    #[test]
    fn lobby_and_groups() {
        let lobby = |t: &str| match op(t) {
            ClientOp::GroupSend { group, .. } => group,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            lobby(r#"{"op_type":6,"to":"","type":1,"content":"x"}"#),
            GroupId::LOBBY
        );
        assert_eq!(
            lobby(r#"{"op_type":6,"to":"4","type":1,"content":"x"}"#),
            GroupId(4)
        );
        assert_eq!(
            err(r#"{"op_type":6,"to":"four","type":1,"content":"x"}"#)
                .error
                .ws_code(),
            40000
        );
    }

    #[test]
    fn resume_since() {
        let ClientOp::Resume {
            since,
            changed_since: None,
        } = op(r#"{"op_type":7,"since":{"u:1:2":4}}"#)
        else {
            panic!()
        };
        assert_eq!(
            since,
            vec![(ConversationId::direct(UserId(1), UserId(2)), 4)]
        );
        assert_eq!(
            err(r#"{"op_type":7,"since":{"x":4}}"#).error.ws_code(),
            40000
        );
        assert_eq!(
            err(r#"{"op_type":7,"since":{"u:1:2":-1}}"#).error.ws_code(),
            40000
        );
        assert_eq!(
            err(r#"{"op_type":7,"since":{"u:1:2":1,"u:1:3":1,"u:1:4":1}}"#)
                .error
                .ws_code(),
            40000
        );
    }

    #[test]
    fn resume_changed_since() {
        let changed = |t: &str| match op(t) {
            ClientOp::Resume { changed_since, .. } => changed_since,
            other => panic!("{other:?}"),
        };
        let at = |ms| Some(ChangeCursor { ms, after: None });
        assert_eq!(
            changed(r#"{"op_type":7,"changed_since":"2026-12-07T23:01:03.029Z"}"#),
            at(1_796_684_463_029)
        );
        assert_eq!(changed(r#"{"op_type":7,"changed_since":5}"#), at(5));
        assert_eq!(changed(r#"{"op_type":7,"changed_since":"5"}"#), at(5));
        assert_eq!(
            changed(r#"{"op_type":7,"changed_since":"5.0123456789abcdef01234567"}"#),
            Some(ChangeCursor {
                ms: 5,
                after: ObjectId::parse_str("0123456789abcdef01234567").ok()
            })
        );
        for bad in [
            r#"{"op_type":7,"changed_since":"yesterday"}"#,
            r#"{"op_type":7,"changed_since":-1}"#,
            r#"{"op_type":7,"changed_since":true}"#,
            r#"{"op_type":7,"changed_since":"5.nope"}"#,
            r#"{"op_type":7,"changed_since":"-5"}"#,
        ] {
            assert_eq!(err(bad).error.ws_code(), 40000, "{bad}");
        }
    }

    #[test]
    fn replies_forwards_and_mentions() {
        let id = "0123456789abcdef01234567";
        let oid = ObjectId::parse_str(id).unwrap();
        let field = |t: &str| match err(t).error {
            AppError::Validation { field, .. } => field.into_owned(),
            other => panic!("{other:?}"),
        };
        let ClientOp::Send { message, .. } = op(&format!(
            r#"{{"op_type":1,"to":"7","type":1,"content":"hi","reply_to":"{id}"}}"#
        )) else {
            panic!()
        };
        assert_eq!(message.reply_to, Some(oid));
        let ClientOp::GroupSend { message, .. } = op(&format!(
            r#"{{"op_type":6,"to":"4","forward_of":"{id}","type":1}}"#
        )) else {
            panic!()
        };
        assert_eq!(message.body, Body::Forward(oid));
        assert_eq!(
            field(&format!(
                r#"{{"op_type":6,"to":"4","forward_of":"{id}","content":"x"}}"#
            )),
            "content"
        );
        assert_eq!(
            field(&format!(
                r#"{{"op_type":6,"to":"4","forward_of":"{id}","reply_to":"{id}"}}"#
            )),
            "reply_to"
        );
        assert_eq!(
            field(r#"{"op_type":1,"to":"7","type":1,"content":"x","reply_to":"nope"}"#),
            "reply_to"
        );
        let ClientOp::GroupSend { message, .. } =
            op(r#"{"op_type":6,"to":"4","type":1,"content":"x","mentions":["7",7,"8"]}"#)
        else {
            panic!()
        };
        assert_eq!(
            message.mentions,
            Some(Mentions::Users(vec![UserId(7), UserId(8)]))
        );
        let ClientOp::GroupSend { message, .. } =
            op(r#"{"op_type":6,"to":"4","type":1,"content":"x","mentions":["7","all"]}"#)
        else {
            panic!()
        };
        assert_eq!(message.mentions, Some(Mentions::All));
        for bad in [
            r#"{"op_type":6,"to":"4","type":1,"content":"x","mentions":["1","2","3","4"]}"#,
            r#"{"op_type":6,"to":"4","type":1,"content":"x","mentions":"7"}"#,
            r#"{"op_type":6,"to":"4","type":1,"content":"x","mentions":[0]}"#,
            r#"{"op_type":1,"to":"4","type":1,"content":"x","mentions":["7"]}"#,
        ] {
            assert_eq!(field(bad), "mentions", "{bad}");
        }
    }

    #[test]
    fn edits_and_reactions() {
        let id = "0123456789abcdef01234567";
        let oid = ObjectId::parse_str(id).unwrap();
        assert_eq!(
            op(&format!(
                r#"{{"op_type":9,"message_id":"{id}","content":"new"}}"#
            )),
            ClientOp::Edit {
                id: oid,
                content: MessageContent::parse("new", 10).unwrap()
            }
        );
        assert_eq!(
            err(&format!(
                r#"{{"op_type":9,"message_id":"{id}","content":"12345678901"}}"#
            ))
            .error
            .ws_code(),
            40013
        );
        for bad in [
            format!(r#"{{"op_type":9,"message_id":"{id}","content":"  "}}"#),
            format!(r#"{{"op_type":9,"content":"{id}"}}"#),
            format!(r#"{{"op_type":10,"message_id":"{id}","emoji":"x","action":"add"}}"#),
            format!(r#"{{"op_type":10,"message_id":"{id}","emoji":"👍","action":"toggle"}}"#),
            r#"{"op_type":10,"message_id":"x","emoji":"👍","action":"add"}"#.to_owned(),
        ] {
            assert_eq!(err(&bad).error.ws_code(), 40000, "{bad}");
        }
        assert_eq!(
            op(&format!(
                r#"{{"op_type":10,"message_id":"{id}","emoji":"👍","action":"remove"}}"#
            )),
            ClientOp::React {
                id: oid,
                emoji: Emoji::parse("👍").unwrap(),
                add: false
            }
        );
        // ops 4 and 5 take `message_id` as well as `content`.
        assert_eq!(
            op(&format!(r#"{{"op_type":5,"message_id":"{id}"}}"#)),
            ClientOp::Delete {
                id: oid,
                everyone: false
            }
        );
        assert_eq!(
            op(&format!(r#"{{"op_type":4,"content":"{id}"}}"#)),
            ClientOp::MarkRead(ReadTarget::Message(oid))
        );
    }
}
