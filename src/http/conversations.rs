//! Recent chats (`GET /conversations`): every conversation of the caller with its last message
//! and unread count (the same count op 3 gives), pinned first, then by recency; pin, hide,
//! read all. And `GET /contacts`: friends plus the groups shown among contacts.

use std::cmp::Ordering;

use actix_web::{HttpResponse, web};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::chat::Chat;

use crate::chat::profiles::Profile;
use crate::chat::reads::Mark;
use crate::config::ConversationSettings;
use crate::domain::{ConversationId, GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::http::json::JsonBody;
use crate::http::pagination::Params;
use crate::session::CurrentSession;
use crate::store::mongo::messages::{self, Message};
use crate::store::mongo::reads::{self, ReadPosition};
use crate::store::mysql::{groups, relations, users};
use crate::store::redis::seq;

/// How many conversations are looked at concurrently.
const CONCURRENCY: usize = 8;
/// Most friends listed among contacts.
const CONTACTS_MAX: i64 = 1000;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/conversations").route(web::get().to(list)))
        .service(web::resource("/conversations/{conversation}").route(web::patch().to(update)))
        .service(
            web::resource("/conversations/{conversation}/read").route(web::post().to(read_all)),
        )
        .service(web::resource("/contacts").route(web::get().to(contacts)));
}

/// Where a conversation stands in the list: pinned ones first (the latest pin first), then by
/// the time of the last message (newest first), then by id. It is also the `before` cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SortKey {
    pinned_at: Option<i64>,
    /// The last message's creation time (Unix milliseconds) and seq.
    last: Option<(i64, i64)>,
    conversation: String,
}

impl SortKey {
    /// The list's order: `Less` when `self` comes first.
    fn order(&self, other: &Self) -> Ordering {
        other
            .pinned_at
            .is_some()
            .cmp(&self.pinned_at.is_some())
            .then_with(|| other.pinned_at.cmp(&self.pinned_at))
            .then_with(|| other.last.cmp(&self.last))
            .then_with(|| self.conversation.cmp(&other.conversation))
    }

    /// `<pinned_at>_<last ms>_<last seq>_<conversation>`, `n` for an absent number.
    fn cursor(&self) -> String {
        let number = |n: Option<i64>| n.map_or_else(|| "n".to_owned(), |n| n.to_string());
        format!(
            "{}_{}_{}_{}",
            number(self.pinned_at),
            number(self.last.map(|(ms, _)| ms)),
            number(self.last.map(|(_, seq)| seq)),
            self.conversation
        )
    }

    fn parse_cursor(raw: &str) -> AppResult<Self> {
        let bad = || AppError::validation("before", "must be a next_before of a previous page");
        let number = |part: &str| -> AppResult<Option<i64>> {
            match part {
                "n" => Ok(None),
                digits => digits.parse().map(Some).map_err(|_| bad()),
            }
        };
        let mut parts = raw.splitn(4, '_');
        let mut next = || parts.next().ok_or_else(bad);
        let pinned_at = number(next()?)?;
        let (ms, seq) = (number(next()?)?, number(next()?)?);
        let conversation = ConversationId::parse(next()?).ok_or_else(bad)?;
        let last = match (ms, seq) {
            (Some(ms), Some(seq)) => Some((ms, seq)),
            (None, None) => None,
            _ => return Err(bad()),
        };
        Ok(Self {
            pinned_at,
            last,
            conversation: conversation.to_string(),
        })
    }
}

/// `?limit=` (default `conversations.page_default_limit`, at most `page_max_limit`: 400
/// above), `?before=` (a `next_before`: the conversations after it in the list's order) and
/// `?offset=` (after the cursor, if any).
struct ListPage {
    limit: usize,
    offset: usize,
    before: Option<SortKey>,
}

impl ListPage {
    fn parse(params: &Params, settings: &ConversationSettings) -> AppResult<Self> {
        let max = settings.page_max_limit;
        let limit = match params.get("limit") {
            None => settings.page_default_limit.get(),
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    return Err(AppError::validation(
                        "limit",
                        format!("must be a whole number from 1 to {max}"),
                    ));
                }
            },
        };
        let offset = match params.get("offset") {
            None => 0,
            Some(raw) => raw.trim().parse::<usize>().map_err(|_| {
                AppError::validation("offset", "must be a whole number of at least 0")
            })?,
        };
        let before = params
            .get("before")
            .map(SortKey::parse_cursor)
            .transpose()?;
        Ok(Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            offset,
            before,
        })
    }
}

/// One conversation's state for the list.
struct Entry {
    position: ReadPosition,
    conversation: ConversationId,
    last: Option<Message>,
    key: SortKey,
}

async fn entry(
    state: &Chat,
    user: UserId,
    conversation: ConversationId,
    position: ReadPosition,
) -> AppResult<Entry> {
    let (newest, _) =
        messages::history(&state.mongo, user, &position.conversation, None, 0, 1).await?;
    let last = newest.last().map(Message::from);
    let key = SortKey {
        pinned_at: position.pinned_at,
        last: last
            .as_ref()
            .map(|m| (m.created_at.0.timestamp_millis(), m.seq)),
        conversation: position.conversation.clone(),
    };
    Ok(Entry {
        position,
        conversation,
        last,
        key,
    })
}

/// The conversations the caller may read now (dissolved groups aside), one page of them.
async fn list(
    session: CurrentSession,
    state: web::Data<Chat>,
    params: Params,
) -> AppResult<HttpResponse> {
    let me = session.user_id;
    let page = ListPage::parse(&params, &state.settings.conversations)?;
    let (positions, rights) = state.readable_positions(me).await?;
    let listed = positions.into_iter().filter(|(c, _)| match c.group() {
        Some(g) if !g.is_lobby() => rights.membership(g).is_some_and(|m| !m.dissolved),
        _ => true,
    });
    let state_ref: &Chat = &state;
    let mut entries: Vec<Entry> = futures_util::stream::iter(listed)
        .map(|(c, p)| entry(state_ref, me, c, p))
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    // Hidden ones stay out until something newer than the hiding arrives.
    entries.retain(|e| match e.position.hidden_seq {
        Some(hidden) => e.last.as_ref().is_some_and(|m| m.seq > hidden),
        None => true,
    });
    entries.sort_by(|a, b| a.key.order(&b.key));
    let total = entries.len();
    if let Some(before) = &page.before {
        entries.retain(|e| before.order(&e.key) == Ordering::Less);
    }
    let after_cursor = entries.len();
    let mut entries: Vec<Entry> = entries
        .into_iter()
        .skip(page.offset)
        .take(page.limit)
        .collect();
    let has_more = page.offset.saturating_add(entries.len()) < after_cursor;
    let next_before = entries.last().filter(|_| has_more).map(|e| e.key.cursor());

    // Only the page's entries are counted and described.
    let unread: Vec<(u64, u64)> = futures_util::stream::iter(entries.iter())
        .map(|e| async {
            let name = &e.position.conversation;
            let read = e.position.read_seq;
            let unread = messages::count_unread(&state.mongo, me, name, read).await?;
            // Only group messages mention anyone.
            let mentions = if unread > 0 && e.conversation.group().is_some() {
                messages::count_mentions_unread(&state.mongo, me, name, read).await?
            } else {
                0
            };
            AppResult::Ok((unread, mentions))
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut lasts: Vec<Message> = entries.iter_mut().filter_map(|e| e.last.take()).collect();
    state.with_reactions(me, &mut lasts).await?;
    for e in &mut entries {
        if e.key.last.is_some() && !lasts.is_empty() {
            e.last = Some(lasts.remove(0));
        }
    }
    let group_ids: Vec<GroupId> = entries
        .iter()
        .filter_map(|e| e.conversation.group())
        .filter(|g| !g.is_lobby())
        .collect();
    let found_groups = groups::find_many(&state.mysql, &group_ids).await?;
    let peers: Vec<UserId> = entries
        .iter()
        .filter_map(|e| e.conversation.peer_of(me))
        .collect();
    let peer_profiles = state
        .profiles(me, users::find_many(&state.mysql, &peers).await?)
        .await?;
    let items: Vec<Item<'_>> = entries
        .drain(..)
        .zip(unread)
        .map(|(e, (unread, mentions_unread))| {
            let mut item = Item {
                conversation: e.position.conversation,
                preview: e.last.as_ref().map(Message::preview),
                last_message: e.last,
                unread,
                mentions_unread,
                pinned: e.position.pinned_at.is_some(),
                dnd: false,
                folded: false,
                hidden: false,
                kind: "user",
                peer: None,
                group: None,
            };
            match e.conversation {
                ConversationId::Direct { .. } => {
                    let peer = e.conversation.peer_of(me);
                    item.peer = Some(peer_profiles.iter().find(|p| Some(p.id) == peer));
                }
                ConversationId::Group(g) => {
                    item.kind = "group";
                    item.group = Some(match found_groups.iter().find(|f| f.id == g) {
                        Some(f) => GroupSummary {
                            id: f.id,
                            name: f.name.clone(),
                            avatar: f.avatar.clone(),
                            member_count: Some(f.member_count),
                        },
                        None => GroupSummary {
                            id: g,
                            name: "Lobby".to_owned(),
                            avatar: String::new(),
                            member_count: None,
                        },
                    });
                    if let Some(m) = rights.membership(g) {
                        item.dnd = m.membership.dnd != 0;
                        item.folded = m.membership.folded != 0;
                    }
                }
            }
            item
        })
        .collect();
    Ok(HttpResponse::Ok().json(List {
        conversations: items,
        total,
        offset: page.offset,
        limit: page.limit,
        has_more,
        next_before,
    }))
}

/// A page of the caller's conversations.
#[derive(Serialize)]
struct List<'a> {
    conversations: Vec<Item<'a>>,
    total: usize,
    offset: usize,
    limit: usize,
    has_more: bool,
    /// The cursor of the next page (`?before=`), when there is one.
    next_before: Option<String>,
}

/// One conversation of the list: its last message, unread count and the caller's flags; with
/// the peer's profile (`kind: "user"`) or the group's summary (`kind: "group"`).
#[derive(Serialize)]
struct Item<'a> {
    conversation: String,
    last_message: Option<Message>,
    /// The last message in one line: its text or caption, else `"[image]"` and the like.
    preview: Option<String>,
    unread: u64,
    /// How many of the unread messages mention the caller (or everyone).
    mentions_unread: u64,
    pinned: bool,
    dnd: bool,
    folded: bool,
    hidden: bool,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<Option<&'a Profile>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<GroupSummary>,
}

#[derive(Serialize)]
struct GroupSummary {
    id: GroupId,
    name: String,
    avatar: String,
    /// Null for the lobby.
    member_count: Option<i64>,
}

/// A conversation's flags after a change.
#[derive(Serialize)]
struct Flags {
    conversation: String,
    pinned: bool,
    hidden: bool,
}

/// A conversation read up to `seq`.
#[derive(Serialize)]
struct Read {
    conversation: String,
    seq: i64,
}

/// The caller's contacts: friends and the groups they show there.
#[derive(Serialize)]
struct Contacts {
    friends: Vec<Profile>,
    groups: Vec<groups::Group>,
}

fn parse_conversation(raw: &str) -> AppResult<ConversationId> {
    ConversationId::parse(raw)
        .ok_or_else(|| AppError::validation("conversation", "must be u:<a>:<b> or g:<group id>"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    pinned: Option<bool>,
    #[serde(default)]
    hidden: Option<bool>,
}

async fn update(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> AppResult<HttpResponse> {
    let me = session.user_id;
    let conversation = parse_conversation(&path)?;
    state.can_read(me, conversation).await?;
    let name = conversation.to_string();
    // A conversation not yet in the caller's list joins it, with nothing read.
    state.ensure_reader(me, conversation, 0).await?;
    if let Some(pinned) = body.pinned {
        reads::set_pinned(&state.mongo, me, &name, pinned).await?;
    }
    if let Some(hidden) = body.hidden {
        let until = if hidden {
            Some(seq::current(&state.redis, &state.mongo, &state.keys, &name).await?)
        } else {
            None
        };
        reads::set_hidden(&state.mongo, me, &name, until).await?;
    }
    let now = reads::find(&state.mongo, me, &name).await?;
    Ok(HttpResponse::Ok().json(Flags {
        conversation: name,
        pinned: now.as_ref().is_some_and(|p| p.pinned_at.is_some()),
        hidden: now.as_ref().is_some_and(|p| p.hidden_seq.is_some()),
    }))
}

async fn read_all(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let conversation = parse_conversation(&path)?;
    let (conversation, position) = state
        .mark_read(session.user_id, Mark::All(conversation), None)
        .await?;
    Ok(HttpResponse::Ok().json(Read {
        conversation: conversation.to_string(),
        seq: position,
    }))
}

async fn contacts(session: CurrentSession, state: web::Data<Chat>) -> AppResult<HttpResponse> {
    let me = session.user_id;
    let (rows, _) = relations::list_friends(&state.mysql, me, CONTACTS_MAX, 0).await?;
    let ids: Vec<UserId> = rows.iter().map(|r| UserId(r.friend_id)).collect();
    let found = users::find_many(&state.mysql, &ids).await?;
    let friends = state.profiles(me, found).await?;
    let groups = groups::contact_groups_of(&state.mysql, me).await?;
    Ok(HttpResponse::Ok().json(Contacts { friends, groups }))
}
