//! Read positions made when a user starts reading a conversation (the lobby on first
//! connect, a group on joining, a 1:1 on its first message), never for one they cannot read.

use crate::chat::Chat;
use crate::chat::access::not_participant;
use crate::domain::{ConversationId, GroupId, UserId};
use crate::error::AppResult;
use crate::store::mongo::reads;
use crate::store::mysql::groups::{self};
use crate::store::redis::seq;

impl Chat {
    /// Makes every user a reader of the lobby, once, starting when they first connect (its past is
    /// history, not unread). Each process remembers whom it has done this for, so a reconnect costs
    /// nothing; the start is the lobby's seq counter (at worst a few messages early, should the
    /// counter lag), created from MongoDB's last lobby message when missing, so a first connect
    /// does not make MongoDB look for that message again.
    pub(crate) async fn ensure_lobby_reader(&self, user: UserId) -> AppResult<()> {
        if self.lobby_readers.contains(&user) {
            return Ok(());
        }
        let conversation = ConversationId::Group(GroupId::LOBBY).to_string();
        let start = match seq::counter(&self.redis, &self.keys, &conversation).await? {
            Some(counter) => counter,
            None => {
                // Once per counter: later connects find it.
                let stored =
                    seq::current(&self.redis, &self.mongo, &self.keys, &conversation).await?;
                seq::seed(&self.redis, &self.keys, &conversation, stored).await?;
                stored
            }
        };
        reads::ensure(&self.mongo, user, &conversation, start).await?;
        self.lobby_readers.insert_all([user]);
        Ok(())
    }

    /// Makes `user` a reader of the group conversation starting now: earlier messages are history,
    /// not unread.
    pub(crate) async fn start_reading(&self, user: UserId, group: GroupId) -> AppResult<()> {
        let conversation = ConversationId::Group(group);
        let current = seq::current(
            &self.redis,
            &self.mongo,
            &self.keys,
            &conversation.to_string(),
        )
        .await?;
        self.ensure_reader(user, conversation, current).await
    }

    /// Gives `user` a read position in the conversation (starting at `read_seq` when new), for a
    /// caller that has checked their right to read. A group's membership is read again from MySQL
    /// after the write: should a leave or kick have come in between, its delete may have run before
    /// this write, so the position is removed again here (a leave deletes only after MySQL says the
    /// member is gone, so one of the two deletes always comes last).
    pub(crate) async fn ensure_reader(
        &self,
        user: UserId,
        conversation: ConversationId,
        read_seq: i64,
    ) -> AppResult<()> {
        let name = conversation.to_string();
        reads::ensure(&self.mongo, user, &name, read_seq).await?;
        if let ConversationId::Group(group) = conversation
            && !group.is_lobby()
            && groups::membership(&self.mysql, group, user)
                .await?
                .is_none()
        {
            reads::remove(&self.mongo, user, &name).await?;
            return Err(not_participant());
        }
        Ok(())
    }
}
