//! Reading messages (ops 2, 3 and 7): a page of history, the unread messages of a conversation
//! or the unread counts of all of them, and everything not seen since a reconnect. Every read
//! checks the current right to read ([`Chat::can_read`] rules, via the participant checks).
//! A reply stops at `ws.max_reply_bytes` of messages, saying where to go on.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::chat::Chat;
use crate::domain::{ConversationId, UserId};
use crate::error::AppResult;
use crate::store::mongo::messages::{self, ChangeCursor, Message};
use crate::store::mongo::reads;

/// Which page of history: the newest `limit` below `before_seq` (all when None), after
/// skipping the newest `skip` of those.
pub(crate) struct PageAsked {
    pub before_seq: Option<i64>,
    pub skip: u64,
    pub limit: i64,
}

/// A page of history, ascending.
#[derive(Serialize)]
pub(crate) struct Page {
    pub messages: Vec<Message>,
    pub has_more: bool,
    /// The cursor for the next (older) page: the oldest seq returned, when older ones exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_seq: Option<i64>,
}

/// The unread messages of one conversation.
#[derive(Serialize)]
pub(crate) struct ConversationUnread {
    pub conversation: String,
    pub messages: Vec<Message>,
    pub unread: u64,
    /// How many of the unread ones mention the reader (or everyone).
    pub mentions_unread: u64,
    pub has_more: bool,
}

/// The unread count of one conversation.
#[derive(Serialize)]
pub(crate) struct UnreadCount {
    pub conversation: String,
    pub unread: u64,
    /// How many of the unread ones mention the reader (or everyone).
    pub mentions_unread: u64,
    pub last_seq: i64,
}

/// What was not seen since a reconnect.
#[derive(Serialize)]
pub(crate) struct Resumed {
    pub messages: Vec<Message>,
    pub has_more: bool,
    /// Where each conversation continues from.
    pub since: BTreeMap<String, i64>,
    /// With `changed_since`: what changed among the messages the client holds.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
}

/// What changed since op 7's `changed_since` in the messages up to each conversation's
/// `since` (the client holds those; newer ones come in `messages` as they are now).
#[derive(Debug, Serialize)]
pub(crate) struct Changes {
    /// Edited messages, messages whose reactions or quote changed: as they are now.
    pub changed: Vec<Message>,
    /// Messages recalled meanwhile.
    pub recalled: Vec<RecalledRef>,
    /// The `changed_since` of the next resume: an opaque cursor (`"<ms>"` or
    /// `"<ms>.<message id>"`).
    pub changed_until: String,
    /// Whether more changes follow (resume again with `changed_until`).
    pub changed_more: bool,
}

/// A recalled message, by its place.
#[derive(Debug, Serialize)]
pub(crate) struct RecalledRef {
    pub conversation: String,
    pub id: String,
    pub seq: i64,
}

/// How far before the start of a changes query the next one starts again: a change stamped
/// just before the query may be written just after it (clients replace by id, so a change
/// seen twice does no harm).
const CHANGES_OVERLAP_MS: i64 = 5_000;

/// How many conversations are counted at once for the unread summary.
const COUNT_CONCURRENCY: usize = 8;

impl Chat {
    /// A page of a conversation's history, newest first as paged, returned ascending. A page
    /// cut short by the reply budget keeps the newest and continues below them.
    pub(crate) async fn history(
        &self,
        user: UserId,
        conversation: ConversationId,
        asked: PageAsked,
    ) -> AppResult<Page> {
        self.check_participant(user, conversation).await?;
        let (docs, older) = messages::history(
            &self.mongo,
            user,
            &conversation.to_string(),
            asked.before_seq,
            asked.skip,
            asked.limit,
        )
        .await?;
        let mut all: Vec<Message> = docs.iter().map(Message::from).collect();
        self.with_reactions(user, &mut all).await?;
        let mut budget = ReplyBudget::new(self.settings.ws.max_reply_bytes);
        let mut kept: Vec<Message> = all
            .into_iter()
            .rev()
            .take_while(|m| budget.admit(m))
            .collect();
        kept.reverse();
        let has_more = older || kept.len() < docs.len();
        Ok(Page {
            before_seq: kept.first().filter(|_| has_more).map(|m| m.seq),
            messages: kept,
            has_more,
        })
    }

    /// The unread messages of one conversation (at most `messages.unread_max`) and their count.
    pub(crate) async fn unread(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> AppResult<ConversationUnread> {
        self.check_participant(user, conversation).await?;
        let name = conversation.to_string();
        let read_seq = reads::get(&self.mongo, user, &name).await?;
        let limit = i64::from(self.settings.messages.unread_max.get());
        let (page, unread, mentions_unread) = tokio::try_join!(
            messages::after(&self.mongo, user, &name, read_seq, limit, true),
            messages::count_unread(&self.mongo, user, &name, read_seq),
            messages::count_mentions_unread(&self.mongo, user, &name, read_seq),
        )?;
        let (docs, has_more) = page;
        let mut found: Vec<Message> = docs.iter().map(Message::from).collect();
        self.with_reactions(user, &mut found).await?;
        Ok(ConversationUnread {
            conversation: name,
            messages: found,
            unread,
            mentions_unread,
            has_more,
        })
    }

    /// Every conversation the user may read now with unread messages, by name.
    pub(crate) async fn unread_counts(&self, user: UserId) -> AppResult<Vec<UnreadCount>> {
        use futures_util::{StreamExt, TryStreamExt};
        let (positions, _) = self.readable_positions(user).await?;
        let counted: Vec<UnreadCount> = futures_util::stream::iter(positions)
            .map(|(_, p)| async move {
                let unread =
                    messages::count_unread(&self.mongo, user, &p.conversation, p.read_seq).await?;
                let (last_seq, mentions_unread) = if unread > 0 {
                    tokio::try_join!(
                        messages::max_seq(&self.mongo, &p.conversation),
                        messages::count_mentions_unread(
                            &self.mongo,
                            user,
                            &p.conversation,
                            p.read_seq
                        ),
                    )?
                } else {
                    (0, 0)
                };
                AppResult::Ok(UnreadCount {
                    conversation: p.conversation,
                    unread,
                    mentions_unread,
                    last_seq,
                })
            })
            .buffer_unordered(COUNT_CONCURRENCY)
            .try_collect()
            .await?;
        let mut with_unread: Vec<UnreadCount> =
            counted.into_iter().filter(|c| c.unread > 0).collect();
        with_unread.sort_by(|a, b| a.conversation.cmp(&b.conversation));
        Ok(with_unread)
    }

    /// Everything the user has not seen, after a reconnect: conversations named in `since`
    /// continue from the given seq, the others the user may read now from their read
    /// position. Stops at `messages.resume_max` messages or the reply budget, with `has_more`
    /// and the `since` to continue from.
    pub(crate) async fn resume(
        &self,
        user: UserId,
        since: Vec<(ConversationId, i64)>,
        changed_since: Option<ChangeCursor>,
    ) -> AppResult<Resumed> {
        let named: Vec<ConversationId> = since.iter().map(|(c, _)| *c).collect();
        self.check_participant_all(user, &named).await?;
        let mut from: BTreeMap<String, i64> = since
            .into_iter()
            .map(|(conversation, seq)| (conversation.to_string(), seq))
            .collect();
        let (positions, _) = self.readable_positions(user).await?;
        for (_, position) in positions {
            from.entry(position.conversation)
                .or_insert(position.read_seq);
        }

        let mut count_left = i64::from(self.settings.messages.resume_max.get());
        let mut bytes = ReplyBudget::new(self.settings.ws.max_reply_bytes);
        let mut out = Vec::new();
        let mut has_more = false;
        let mut next = from.clone();
        // Every conversation is asked (an indexed range query each): the Redis counters cannot
        // say "nothing new" reliably, they may lag behind MongoDB after a Redis restore.
        for (name, after) in &from {
            if count_left == 0 {
                has_more = true;
                break;
            }
            let (docs, more) =
                messages::after(&self.mongo, user, name, *after, count_left, false).await?;
            let mut full = false;
            let mut found: Vec<Message> = docs.iter().map(Message::from).collect();
            self.with_reactions(user, &mut found).await?;
            for message in found {
                if !bytes.admit(&message) {
                    full = true;
                    break;
                }
                next.insert(name.clone(), message.seq);
                count_left -= 1;
                out.push(message);
            }
            if full || more {
                has_more = true;
                break;
            }
        }
        let changes = match changed_since {
            Some(t) => Some(
                self.changes(user, &from, t, has_more, count_left, &mut bytes)
                    .await?,
            ),
            None => None,
        };
        Ok(Resumed {
            messages: out,
            has_more,
            since: next,
            changes,
        })
    }

    /// The changes after `from` to messages at or below `held`'s seqs, within what is left
    /// of the reply. While new messages are still to come (`later`), none: they come once
    /// the messages have.
    async fn changes(
        &self,
        user: UserId,
        held: &BTreeMap<String, i64>,
        from: ChangeCursor,
        later: bool,
        count_left: i64,
        bytes: &mut ReplyBudget,
    ) -> AppResult<Changes> {
        let started = chrono::Utc::now().timestamp_millis();
        // A time to come is now: nothing changed after it yet.
        let from = ChangeCursor {
            ms: from.ms.min(started),
            after: from.after.filter(|_| from.ms <= started),
        };
        let mut changes = Changes {
            changed: Vec::new(),
            recalled: Vec::new(),
            changed_until: from.token(),
            changed_more: true,
        };
        if later || count_left == 0 || held.is_empty() {
            return Ok(changes);
        }
        let names: Vec<String> = held.keys().cloned().collect();
        let max_time =
            std::time::Duration::from_millis(self.settings.messages.changes_timeout_ms.get());
        let (docs, more) =
            messages::changed(&self.mongo, user, names, from, count_left, max_time).await?;
        let held_here = |doc: &messages::MessageDoc| {
            held.get(&doc.conversation)
                .is_some_and(|seq| doc.seq <= *seq)
        };
        let mut now: Vec<Message> = docs
            .iter()
            .filter(|d| held_here(d) && d.recalled_at.is_none())
            .map(Message::from)
            .collect();
        self.with_reactions(user, &mut now).await?;
        let mut now = now.into_iter();
        // Changes come in (changed_at, _id) order: `last` is the last one taken.
        let mut last = from;
        let mut cut = false;
        for doc in &docs {
            if held_here(doc) {
                if doc.recalled_at.is_some() {
                    changes.recalled.push(RecalledRef {
                        conversation: doc.conversation.clone(),
                        id: doc.id.to_hex(),
                        seq: doc.seq,
                    });
                } else if let Some(message) = now.next() {
                    if !bytes.admit(&message) {
                        cut = true;
                        break;
                    }
                    changes.changed.push(message);
                }
            }
            last = ChangeCursor {
                ms: doc.changed_at.unwrap_or(from.ms),
                after: Some(doc.id),
            };
        }
        changes.changed_more = cut || more;
        changes.changed_until = if changes.changed_more {
            last.token()
        } else {
            // Caught up: the next resume looks a little way back again (see
            // CHANGES_OVERLAP_MS), never before where this one started.
            let back = ChangeCursor {
                ms: started - CHANGES_OVERLAP_MS,
                after: None,
            };
            if back.ms > from.ms { back } else { from }.token()
        };
        Ok(changes)
    }
}

/// How many bytes of messages a reply may still carry (`ws.max_reply_bytes`, measured as their
/// serialized JSON). The first message always fits, so a reply always makes progress.
pub(crate) struct ReplyBudget {
    left: usize,
    first: bool,
}

impl ReplyBudget {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            left: max_bytes,
            first: true,
        }
    }

    /// Takes `message` out of the budget; false (taking nothing) when it does not fit.
    pub(crate) fn admit(&mut self, message: &Message) -> bool {
        // The comma between array elements counts too.
        let size = serde_json::to_vec(message).map_or(usize::MAX, |v| v.len() + 1);
        if size <= self.left || self.first {
            self.left = self.left.saturating_sub(size);
            self.first = false;
            true
        } else {
            false
        }
    }
}
