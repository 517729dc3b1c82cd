//! Message search: the messages whose text or caption holds every word of the query (see
//! `domain::terms`), newest first, in the conversations the caller may read now only (a left
//! group, a kicked member, a deleted or recalled message: never a hit).

use mongodb::bson::oid::ObjectId;
use serde::Serialize;

use crate::antispam::EventRule;
use crate::antispam::keys::EventScope;
use crate::chat::Chat;
use crate::domain::terms::terms;
use crate::domain::{ConversationId, GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::store::mongo::messages::{self, Message};

/// Most words of a query used (the rest would only narrow it further).
const MAX_QUERY_TERMS: usize = 16;

/// A search as asked.
pub(crate) struct SearchAsked {
    pub query: String,
    pub conversation: Option<ConversationId>,
    pub before: Option<ObjectId>,
    pub limit: i64,
}

/// One page of hits, newest first.
#[derive(Serialize)]
pub(crate) struct Found {
    pub results: Vec<Hit>,
    pub has_more: bool,
    /// The `before` of the next page, when there is one.
    pub next_before: Option<String>,
}

/// A message found, with its conversation.
#[derive(Serialize)]
pub(crate) struct Hit {
    pub conversation: String,
    pub message: Message,
}

impl Chat {
    /// Searches the caller's conversations (or one of them). A query of under 2 characters,
    /// or without a word, is refused (400); rule `search` counts every search.
    pub(crate) async fn search(&self, user: UserId, asked: SearchAsked) -> AppResult<Found> {
        let query = asked.query.trim();
        if query.chars().count() < 2 {
            return Err(AppError::validation("q", "must be at least 2 characters"));
        }
        let mut wanted = terms(query);
        if wanted.is_empty() {
            return Err(AppError::validation("q", "holds no word to search for"));
        }
        wanted.truncate(MAX_QUERY_TERMS);
        self.antispam
            .check_event(user, EventRule::Search, EventScope::Actor, None)
            .await?;
        let conversations: Vec<String> = match asked.conversation {
            Some(conversation) => {
                self.check_participant(user, conversation).await?;
                vec![conversation.to_string()]
            }
            None => {
                let (positions, rights) = self.readable_positions(user).await?;
                let mut all: std::collections::BTreeSet<String> =
                    positions.into_iter().map(|(c, _)| c.to_string()).collect();
                // Groups joined but never read have no position yet; the lobby neither.
                all.extend(
                    rights
                        .groups()
                        .chain([GroupId::LOBBY])
                        .map(|group| ConversationId::Group(group).to_string()),
                );
                all.into_iter().collect()
            }
        };
        let (docs, has_more) = messages::search(
            &self.mongo,
            user,
            conversations,
            wanted,
            asked.before,
            asked.limit,
            std::time::Duration::from_millis(self.settings.messages.search_timeout_ms.get()),
        )
        .await?;
        let mut found: Vec<Message> = docs.iter().map(Message::from).collect();
        self.with_reactions(user, &mut found).await?;
        let next_before = found.last().filter(|_| has_more).map(|m| m.id.clone());
        Ok(Found {
            results: found
                .into_iter()
                .map(|message| Hit {
                    conversation: message.conversation.clone(),
                    message,
                })
                .collect(),
            has_more,
            next_before,
        })
    }
}
