//! Named rules for everything, besides messages, that makes the server push to another user:
//! friend requests, group edits, moderation, invitations, read receipts, uploads, message edits,
//! reactions, pins, searches (counted per window,
//! cluster-wide, in one Redis script) and typing (at most one push per interval).

use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use redis::Script;

use super::keys::{EventScope, SpamKeys};
use super::{Antispam, content_fingerprint, ms, whole_seconds};
use crate::domain::UserId;
use crate::error::{AppError, AppResult};

/// A rule of events pushed to other users. Its name is the `rule` of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventRule {
    /// Friend requests, per sender.
    FriendRequests,
    /// Notice and settings edits, per group.
    GroupEdits,
    /// Mutes, kicks, bans and role changes, per acting user.
    Moderation,
    /// Invitations and additions to groups, per inviter.
    Invites,
    /// Read marks, per user.
    Receipts,
    /// Uploads (`POST /files`), per user.
    Uploads,
    /// Message edits (op 9), per user.
    Edits,
    /// Reactions (op 10), per user.
    Reactions,
    /// Pins and unpins, per user.
    Pins,
    /// Message searches, per user.
    Search,
}

impl EventRule {
    /// Whether the event says something in a conversation (an edit, a reaction, a pin's
    /// notice): a sender muted by anti-spam may not, as they may not send.
    pub(crate) fn speaks(self) -> bool {
        matches!(self, Self::Edits | Self::Reactions | Self::Pins)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::FriendRequests => "friend_requests",
            Self::GroupEdits => "group_edits",
            Self::Moderation => "moderation",
            Self::Invites => "invites",
            Self::Receipts => "receipts",
            Self::Uploads => "uploads",
            Self::Edits => "edits",
            Self::Reactions => "reactions",
            Self::Pins => "pins",
            Self::Search => "search",
        }
    }
}

/// The window of the rules counted per minute.
const MINUTE: std::num::NonZeroU64 = std::num::NonZeroU64::MIN.saturating_add(59);

/// KEYS: 1 the rule's counter, 2 the duplicate counter of the text (unused without text),
/// 3 the actor's mute.
/// ARGV: 1 limit, 2 window ms, 3 has text (`1`/`0`), 4 duplicate limit, 5 duplicate window ms,
/// 6 whether a muted actor is refused (`1`/`0`), 7 whether the rule's counter is checked and
/// counted here (`1`/`0`).
/// Returns `{0}` when the event passes (and is counted), `{1, rule, retry_after_ms}` otherwise;
/// a refused event is not counted.
///
/// A rule counted per group has its counter in the group's slot, not the actor's: it runs as
/// two calls, the actor's part (mute, duplicate) first, then the group's counter; a refusal by
/// the second leaves the actor's duplicate count one higher (never lower).
static EVENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
        local has_text = ARGV[3] == '1'
        local dup_limit, dup_window = tonumber(ARGV[4]), tonumber(ARGV[5])
        local function remaining(key)
            local ms = redis.call('PTTL', key)
            if ms < 1 then return 1000 end
            return ms
        end
        if ARGV[6] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
            return {1, 'muted', remaining(KEYS[3])}
        end
        local counting = ARGV[7] == '1'
        if counting and tonumber(redis.call('GET', KEYS[1]) or '0') >= limit then
            return {1, 'rule', remaining(KEYS[1])}
        end
        if has_text then
            local dups = tonumber(redis.call('GET', KEYS[2]) or '0')
            if dups >= dup_limit then
                return {1, 'duplicate', remaining(KEYS[2])}
            end
            if redis.call('INCR', KEYS[2]) == 1 then
                redis.call('PEXPIRE', KEYS[2], dup_window)
            end
        end
        if counting and redis.call('INCR', KEYS[1]) == 1 then
            redis.call('PEXPIRE', KEYS[1], window)
        end
        return {0}
        "#,
    )
});

impl Antispam {
    /// Counts one event of `rule` for `scope` (the actor, or the group for
    /// [`EventRule::GroupEdits`]) by `actor`, refusing it with 429 `rate_limited` (50006 on the
    /// socket) over the rule's limit. `text`, when given, also counts towards the duplicate
    /// rule of `actor`, as a message would. Exempt actors pass uncounted; Redis down refuses.
    #[tracing::instrument(skip_all, fields(user_id = %actor, rule = rule.name()))]
    pub(crate) async fn check_event(
        &self,
        actor: UserId,
        rule: EventRule,
        scope: EventScope,
        text: Option<&str>,
    ) -> AppResult<()> {
        if self.is_exempt(actor) {
            return Ok(());
        }
        let s = &self.inner.settings;
        let (limit, window_secs) = match rule {
            EventRule::FriendRequests => (s.friend_requests_limit, s.friend_requests_window_secs),
            EventRule::GroupEdits => (s.group_edits_limit, s.group_edits_window_secs),
            EventRule::Moderation => (s.moderation_limit, s.moderation_window_secs),
            EventRule::Invites => (s.invites_limit, s.invites_window_secs),
            EventRule::Receipts => (s.receipts_limit, s.receipts_window_secs),
            EventRule::Uploads => (s.uploads_limit, s.uploads_window_secs),
            EventRule::Edits => (s.edits_limit, s.edits_window_secs),
            EventRule::Reactions => (s.reactions_limit, s.reactions_window_secs),
            EventRule::Pins => (s.pins_limit, s.pins_window_secs),
            EventRule::Search => (s.search_per_minute, MINUTE),
        };
        let sk = SpamKeys::new(&self.inner.keys);
        let counter = sk.event(rule.name(), actor, scope);
        let duplicate = sk.duplicate(actor, content_fingerprint(text.unwrap_or("")));
        let mute = sk.mute(actor);
        let call = |keys: [&str; 3], actor_part: bool, counting: bool| {
            let mut invocation = EVENT.prepare_invoke();
            for key in keys {
                invocation.key(key);
            }
            invocation
                .arg(limit)
                .arg(ms(window_secs.get()))
                .arg(if actor_part && text.is_some() {
                    "1"
                } else {
                    "0"
                })
                .arg(s.duplicate_limit)
                .arg(ms(s.duplicate_window_secs.get()))
                .arg(if actor_part && rule.speaks() {
                    "1"
                } else {
                    "0"
                })
                .arg(if counting { "1" } else { "0" });
            invocation
        };
        let reply: anyhow::Result<Vec<redis::Value>> = async {
            let mut conn = self.inner.redis.get().await?;
            if scope == EventScope::Actor {
                return Ok(call([&counter, &duplicate, &mute], true, true)
                    .invoke_async(&mut conn)
                    .await?);
            }
            let first: Vec<redis::Value> = call([&mute, &duplicate, &mute], true, false)
                .invoke_async(&mut conn)
                .await?;
            if super::parse_verdict(&first).is_some() {
                return Ok(first);
            }
            Ok(call([&counter, &counter, &counter], false, true)
                .invoke_async(&mut conn)
                .await?)
        }
        .await;
        let reply = self.note_outcome(reply)?;
        match super::parse_verdict(&reply) {
            None => Ok(()),
            Some((which, retry_after_ms)) => {
                let name = match which.as_str() {
                    "duplicate" => "duplicate",
                    "muted" => "muted",
                    _ => rule.name(),
                };
                self.inner.metrics.refused(name);
                Err(AppError::RuleLimited {
                    rule: name,
                    retry_after_secs: whole_seconds(retry_after_ms),
                })
            }
        }
    }

    /// Whether a typing indicator of `user` in `conversation` may be pushed now: at most one
    /// per `antispam.typing_interval_secs`, cluster-wide. Extra ones are not an error, just
    /// not pushed.
    pub(crate) async fn typing_push_allowed(
        &self,
        user: UserId,
        conversation: &str,
    ) -> AppResult<bool> {
        let key = SpamKeys::new(&self.inner.keys).typing(user, conversation);
        let interval_ms = ms(self.inner.settings.typing_interval_secs.get());
        let reply: anyhow::Result<Option<String>> = async {
            let mut conn = self.inner.redis.get().await?;
            Ok(redis::cmd("SET")
                .arg(&key)
                .arg("1")
                .arg("NX")
                .arg("PX")
                .arg(interval_ms)
                .query_async(&mut conn)
                .await?)
        }
        .await;
        Ok(self.note_outcome(reply)?.is_some())
    }

    /// Logs an outage once and turns it into the fail-closed refusal.
    pub(super) fn note_outcome<T>(&self, result: anyhow::Result<T>) -> AppResult<T> {
        let inner = &self.inner;
        match result {
            Ok(value) => {
                if inner.outage.swap(false, Ordering::Relaxed) {
                    tracing::info!("anti-spam checks work again (Redis reachable)");
                }
                Ok(value)
            }
            Err(err) => {
                inner.metrics.refused("unavailable");
                if !inner.outage.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %err, "anti-spam checks failing: refusing until Redis answers");
                }
                Err(AppError::AntispamUnavailable)
            }
        }
    }
}
