//! Recent chats (`GET /conversations`): every conversation of the caller with its last message
//! and unread count (the same count op 3 gives), pinned first, then by recency; pin, hide,
//! read all. And `GET /contacts`: friends plus the groups shown among contacts.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::{ConversationId, GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::http::json::JsonBody;
use crate::http::pagination::Params;
use crate::http::people::profiles;
use crate::messaging::check_participant;
use crate::session::CurrentSession;
use crate::state::AppState;
use crate::store::mongo::messages::{self, Message};
use crate::store::mongo::reads::{self, ReadPosition};
use crate::store::mysql::{groups, people, users};
use crate::store::redis::seq;
use crate::ws::ops::mark_read::advance_and_tell;

/// How many conversations are looked at concurrently.
const CONCURRENCY: usize = 8;
/// Most friends listed among contacts.
const CONTACTS_MAX: i64 = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/conversations").route(web::get().to(list)))
        .service(web::resource("/conversations/{conversation}").route(web::patch().to(update)))
        .service(
            web::resource("/conversations/{conversation}/read").route(web::post().to(read_all)),
        )
        .service(web::resource("/contacts").route(web::get().to(contacts)));
}

/// One conversation's state for the list.
struct Entry {
    position: ReadPosition,
    conversation: ConversationId,
    last: Option<Message>,
    unread: u64,
}

async fn entry(state: &AppState, user: UserId, position: ReadPosition) -> AppResult<Option<Entry>> {
    let Some(conversation) = ConversationId::parse(&position.conversation) else {
        return Ok(None);
    };
    let ((newest, _), unread) = tokio::try_join!(
        messages::history(&state.mongo, user, &position.conversation, None, 0, 1),
        messages::count_unread(
            &state.mongo,
            user,
            &position.conversation,
            position.read_seq
        ),
    )?;
    let last = newest.last().map(Message::from);
    Ok(Some(Entry {
        position,
        conversation,
        last,
        unread,
    }))
}

async fn list(
    session: CurrentSession,
    state: web::Data<AppState>,
    params: Params,
) -> AppResult<HttpResponse> {
    let me = session.user_id;
    let page = params.page()?;
    let positions = reads::list(&state.mongo, me).await?;
    let state_ref: &AppState = &state;
    let entries: Vec<Option<Entry>> = futures_util::stream::iter(positions)
        .map(|p| entry(state_ref, me, p))
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    // Hidden ones stay out until something newer than the hiding arrives.
    let mut entries: Vec<Entry> = entries
        .into_iter()
        .flatten()
        .filter(|e| match e.position.hidden_seq {
            Some(hidden) => e.last.as_ref().is_some_and(|m| m.seq > hidden),
            None => true,
        })
        .collect();

    let group_ids: Vec<GroupId> = entries
        .iter()
        .filter_map(|e| e.conversation.group())
        .collect();
    let found_groups = groups::find_many(&state.mysql, &group_ids).await?;
    let settings: HashMap<GroupId, groups::Membership> =
        groups::memberships_of(&state.mysql, me, &group_ids)
            .await?
            .into_iter()
            .collect();
    // Dissolved groups, and groups the caller is no longer in, leave the list.
    entries.retain(|e| match e.conversation.group() {
        Some(g) if g.is_lobby() => true,
        Some(g) => {
            settings.contains_key(&g) && found_groups.iter().any(|f| f.id == g && !f.dissolved)
        }
        None => true,
    });
    entries.sort_by(|a, b| {
        let pinned = |e: &Entry| e.position.pinned_at;
        let recency = |e: &Entry| e.last.as_ref().map(|m| (m.created_at, m.seq));
        pinned(b)
            .is_some()
            .cmp(&pinned(a).is_some())
            .then_with(|| pinned(b).cmp(&pinned(a)))
            .then_with(|| recency(b).cmp(&recency(a)))
            .then_with(|| a.position.conversation.cmp(&b.position.conversation))
    });
    let (entries, total) = page.slice(entries);

    let peers: Vec<UserId> = entries
        .iter()
        .filter_map(|e| e.conversation.peer_of(me))
        .collect();
    let peer_profiles = profiles(&state, me, users::find_many(&state.mysql, &peers).await?).await?;
    let items: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut item = json!({
                "conversation": e.position.conversation,
                "last_message": e.last,
                "unread": e.unread,
                "pinned": e.position.pinned_at.is_some(),
                "dnd": false,
                "folded": false,
                "hidden": false,
            });
            match e.conversation {
                ConversationId::Direct { .. } => {
                    let peer = e.conversation.peer_of(me);
                    item["kind"] = "user".into();
                    item["peer"] = json!(peer_profiles.iter().find(|p| Some(p.id) == peer));
                }
                ConversationId::Group(g) => {
                    item["kind"] = "group".into();
                    item["group"] = match found_groups.iter().find(|f| f.id == g) {
                        Some(f) => json!({
                            "id": f.id.to_string(), "name": f.name, "avatar": f.avatar,
                            "member_count": f.member_count,
                        }),
                        None => json!({ "id": g.to_string(), "name": "Lobby", "avatar": "", "member_count": null }),
                    };
                    if let Some(m) = settings.get(&g) {
                        item["dnd"] = (m.dnd != 0).into();
                        item["folded"] = (m.folded != 0).into();
                    }
                }
            }
            item
        })
        .collect();
    Ok(HttpResponse::Ok().json(page.body("conversations", items, total)?))
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
    state: web::Data<AppState>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> AppResult<HttpResponse> {
    let me = session.user_id;
    let conversation = parse_conversation(&path)?;
    check_participant(&state, me, conversation).await?;
    let name = conversation.to_string();
    // A conversation not yet in the caller's list joins it, with nothing read.
    reads::ensure(&state.mongo, me, &name, 0).await?;
    if let Some(pinned) = body.pinned {
        reads::set_pinned(&state.mongo, me, &name, pinned).await?;
    }
    if let Some(hidden) = body.hidden {
        let until = if hidden {
            Some(seq::current(&state.redis_link, &state.mongo, &state.keys, &name).await?)
        } else {
            None
        };
        reads::set_hidden(&state.mongo, me, &name, until).await?;
    }
    let now = reads::find(&state.mongo, me, &name).await?;
    Ok(HttpResponse::Ok().json(json!({
        "conversation": name,
        "pinned": now.as_ref().is_some_and(|p| p.pinned_at.is_some()),
        "hidden": now.as_ref().is_some_and(|p| p.hidden_seq.is_some()),
    })))
}

async fn read_all(
    session: CurrentSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let conversation = parse_conversation(&path)?;
    check_participant(&state, session.user_id, conversation).await?;
    let name = conversation.to_string();
    let last = seq::current(&state.redis_link, &state.mongo, &state.keys, &name).await?;
    let position = advance_and_tell(&state, session.user_id, conversation, last, None).await?;
    Ok(HttpResponse::Ok().json(json!({ "conversation": name, "seq": position })))
}

async fn contacts(session: CurrentSession, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let me = session.user_id;
    let (rows, _) = people::list_friends(&state.mysql, me, CONTACTS_MAX, 0).await?;
    let ids: Vec<UserId> = rows.iter().map(|r| UserId(r.friend_id)).collect();
    let found = users::find_many(&state.mysql, &ids).await?;
    let friends = profiles(&state, me, found).await?;
    let groups = groups::contact_groups_of(&state.mysql, me).await?;
    Ok(HttpResponse::Ok().json(json!({ "friends": friends, "groups": groups })))
}
