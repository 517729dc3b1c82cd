//! Anti-spam: the cluster-wide rules (one atomic Redis script per send, see [`script`]), the
//! local per-connection first line ([`local`]), and the caller's standing for
//! `GET /user/me/limits`. Refusals are reply code 50006 with the rule and the wait.
//! When Redis cannot be reached, sends are refused (fail closed) and the outage is logged once.

pub(crate) mod events;
pub(crate) mod keys;
pub(crate) mod local;
pub(crate) mod script;

pub(crate) use events::EventRule;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use crate::config::AntispamSettings;
use crate::domain::{GroupId, Timestamp, UserId};
use crate::error::{AppError, AppResult};
use crate::metrics::Metrics;
use crate::store::redis::{Keys, Shared};
use keys::SpamKeys;

#[derive(Clone)]
pub(crate) struct Antispam {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AntispamSettings,
    redis: Shared,
    keys: Keys,
    metrics: Arc<Metrics>,
    /// Set while Redis is failing, so the outage is logged once, not once per message.
    outage: AtomicBool,
}

impl Antispam {
    pub(crate) fn new(
        settings: AntispamSettings,
        redis: Shared,
        keys: Keys,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                redis,
                keys,
                metrics,
                outage: AtomicBool::new(false),
            }),
        }
    }

    pub(crate) fn is_exempt(&self, user: UserId) -> bool {
        self.inner.settings.exempt_user_ids.contains(&user.0)
    }

    /// Checks a send against every rule and, when it passes, counts it (once: a retry of a
    /// passed `client_msg_id` is not counted again). Refused → `AppError::Throttled`.
    /// Exempt senders pass unchecked (their messages still count as answers).
    #[tracing::instrument(skip_all, fields(user_id = %from))]
    pub(crate) async fn check_send(
        &self,
        from: UserId,
        target: Target,
        content: &str,
        client_msg_id: Option<&str>,
    ) -> AppResult<()> {
        let result = self.run_script(from, target, content, client_msg_id).await;
        match self.note_outcome(result)? {
            None => Ok(()),
            Some((rule, retry_after_ms)) => {
                self.inner.metrics.refused(&rule);
                Err(AppError::Throttled {
                    rule,
                    retry_after_secs: whole_seconds(retry_after_ms),
                })
            }
        }
    }

    async fn run_script(
        &self,
        from: UserId,
        target: Target,
        content: &str,
        client_msg_id: Option<&str>,
    ) -> anyhow::Result<Option<(String, i64)>> {
        let s = &self.inner.settings;
        let k = &self.inner.keys;
        let (kind, recipient, group) = match target {
            Target::Direct { to, .. } if to == from => ("self", to, GroupId(0)),
            Target::Direct { to, .. } => ("direct", to, GroupId(0)),
            Target::Group { group } => ("group", from, group),
        };
        let sk = SpamKeys::new(k);
        let mut invocation = script::CHECK.prepare_invoke();
        invocation
            .key(sk.mute(from))
            .key(sk.strike(from))
            .key(sk.step(from))
            .key(sk.rate(from))
            .key(sk.duplicate(from, content_fingerprint(content)))
            .key(sk.group_rate(from, group))
            .key(sk.unanswered(from, recipient))
            .key(sk.unanswered_block(from, recipient))
            .key(sk.answered(from, recipient))
            .key(k.sent(from.0, client_msg_id.unwrap_or("")))
            .key(sk.unanswered_peers(from));
        invocation
            .arg(kind)
            // Friends are no first contact.
            .arg(
                if kind == "direct" && !matches!(target, Target::Direct { friends: true, .. }) {
                    "1"
                } else {
                    "0"
                },
            )
            .arg(if client_msg_id.is_some() { "1" } else { "0" })
            .arg(s.rate_limit)
            .arg(ms(s.rate_window_secs.get()))
            .arg(s.duplicate_limit)
            .arg(ms(s.duplicate_window_secs.get()))
            .arg(s.group_rate_limit)
            .arg(ms(s.group_rate_window_secs.get()))
            .arg(s.unanswered_limit)
            .arg(ms(s.unanswered_window_secs.get()))
            .arg(ms(s.unanswered_block_secs.get()))
            .arg(ms(s.strike_window_secs.get()))
            .arg(ms(s.retry_memory_secs.get()))
            .arg(from.0)
            .arg(recipient.0)
            .arg(if self.is_exempt(from) { "1" } else { "0" });
        for step in &s.mute_steps_secs {
            invocation.arg(ms(*step));
        }
        let mut conn = self.inner.redis.get().await?;
        let reply: Vec<redis::Value> = invocation.invoke_async(&mut conn).await?;
        let verdict = parse_verdict(&reply);
        if verdict.is_none() && kind == "direct" {
            // The recipient's keys are in another slot (cluster mode): a second step. Should
            // it fail, the send is refused as if Redis were down (it was counted; a retry with
            // the same client_msg_id passes uncounted and answers again).
            let mut answer = script::ANSWER.prepare_invoke();
            answer
                .key(sk.answered(recipient, from))
                .key(sk.unanswered(recipient, from))
                .key(sk.unanswered_block(recipient, from))
                .key(sk.unanswered_peers(recipient))
                .arg(ms(s.unanswered_window_secs.get()))
                .arg(from.0);
            let _: i64 = answer.invoke_async(&mut conn).await?;
        }
        Ok(verdict)
    }

    /// The caller's standing: mute, strikes, and the counters nearest their limits. One Redis
    /// round trip whatever the number of peers (see [`STANDING`]).
    pub(crate) async fn standing(&self, user: UserId) -> AppResult<Standing> {
        let s = &self.inner.settings;
        let k = &self.inner.keys;
        let mut invocation = STANDING.prepare_invoke();
        let sk = SpamKeys::new(k);
        invocation
            .key(sk.mute(user))
            .key(sk.strike(user))
            .key(sk.step(user))
            .key(sk.rate(user))
            .key(sk.unanswered_peers(user))
            .arg(sk.prefix(user))
            .arg(user.0);
        let mut conn = self.inner.redis.get().await?;
        let reply: Vec<redis::Value> = invocation.invoke_async(&mut conn).await?;
        let figures = StandingReply::parse(&reply)?;
        let unanswered = figures
            .peers
            .into_iter()
            .filter(|p| p.sent.is_some() || p.block_ms > 0)
            .map(|p| UnansweredStanding {
                user_id: UserId(p.user),
                sent: p.sent.unwrap_or(0),
                limit: s.unanswered_limit.get(),
                blocked_for_secs: (p.block_ms > 0).then(|| whole_seconds(p.block_ms)),
            })
            .collect();
        let mute_ms = figures.mute_ms;
        Ok(Standing {
            exempt: self.is_exempt(user),
            muted_for_secs: (mute_ms > 0).then(|| whole_seconds(mute_ms)),
            muted_until: (mute_ms > 0).then(|| {
                Timestamp(chrono::Utc::now() + chrono::Duration::milliseconds(mute_ms)).to_string()
            }),
            strike_active: figures.strike,
            mutes_so_far: figures.step.unwrap_or(0),
            rate: RateStanding {
                sent: figures.rate.unwrap_or(0),
                limit: s.rate_limit.get(),
                window_secs: s.rate_window_secs.get(),
                resets_in_secs: (figures.rate_ms > 0).then(|| whole_seconds(figures.rate_ms)),
            },
            unanswered,
            typing_interval_secs: s.typing_interval_secs.get(),
        })
    }
}

/// Everything `GET /user/me/limits` shows, read in one round trip. The per-peer keys are only
/// known once the set of pending peers is read, so the script derives them from the prefix
/// (as the send script names them) instead of taking them as KEYS.
///
/// KEYS: 1 mute(S)  2 strike(S)  3 mute step(S)  4 rate(S)  5 unanswered set(S).
/// ARGV: 1 the prefix of S's anti-spam keys (their slot in cluster mode), 2 S.
/// Returns: mute pttl, strike exists (0/1), step (`''` when none), rate count (`''`), rate pttl,
/// then per pending peer R: R, unanswered count(S→R) (`''`), unanswered block(S→R) pttl.
static STANDING: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"
        local prefix, sender = ARGV[1], ARGV[2]
        local out = {
            redis.call('PTTL', KEYS[1]),
            redis.call('EXISTS', KEYS[2]),
            redis.call('GET', KEYS[3]) or '',
            redis.call('GET', KEYS[4]) or '',
            redis.call('PTTL', KEYS[4]),
        }
        for _, peer in ipairs(redis.call('SMEMBERS', KEYS[5])) do
            out[#out + 1] = peer
            out[#out + 1] = redis.call('GET', prefix .. 'una:' .. peer) or ''
            out[#out + 1] = redis.call('PTTL', prefix .. 'unablock:' .. peer)
        end
        return out
        "#,
    )
});

/// The standing script's reply, typed.
#[derive(Debug, PartialEq, Eq)]
struct StandingReply {
    mute_ms: i64,
    strike: bool,
    step: Option<u64>,
    rate: Option<u64>,
    rate_ms: i64,
    peers: Vec<PeerFigures>,
}

#[derive(Debug, PartialEq, Eq)]
struct PeerFigures {
    user: u64,
    sent: Option<u64>,
    block_ms: i64,
}

impl StandingReply {
    fn parse(reply: &[redis::Value]) -> AppResult<Self> {
        use redis::FromRedisValue;
        let malformed = || AppError::Internal(anyhow::anyhow!("standing script reply: {reply:?}"));
        let int = |v: &redis::Value| i64::from_redis_value(v).map_err(|_| malformed());
        // `''` stands for a missing counter (a Lua table cannot hold nil).
        let count = |v: &redis::Value| -> AppResult<Option<u64>> {
            let raw = String::from_redis_value(v).map_err(|_| malformed())?;
            if raw.is_empty() {
                Ok(None)
            } else {
                raw.parse().map(Some).map_err(|_| malformed())
            }
        };
        let [mute, strike, step, rate, rate_ms, peers @ ..] = reply else {
            return Err(malformed());
        };
        if peers.len() % 3 != 0 {
            return Err(malformed());
        }
        Ok(Self {
            mute_ms: int(mute)?,
            strike: int(strike)? == 1,
            step: count(step)?,
            rate: count(rate)?,
            rate_ms: int(rate_ms)?,
            peers: peers
                .chunks_exact(3)
                .map(|peer| {
                    Ok(PeerFigures {
                        user: count(&peer[0])?.ok_or_else(malformed)?,
                        sent: count(&peer[1])?,
                        block_ms: int(&peer[2])?,
                    })
                })
                .collect::<AppResult<_>>()?,
        })
    }
}

/// The target of a send.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// `friends`: the two are friends, so rule `unanswered` does not apply.
    Direct {
        to: UserId,
        friends: bool,
    },
    Group {
        group: GroupId,
    },
}

#[derive(Debug, Serialize)]
pub(crate) struct Standing {
    pub exempt: bool,
    pub muted_until: Option<String>,
    pub muted_for_secs: Option<u64>,
    pub strike_active: bool,
    pub mutes_so_far: u64,
    pub rate: RateStanding,
    pub unanswered: Vec<UnansweredStanding>,
    /// At most one typing notice of the caller is pushed per conversation this often: clients
    /// pace their op 8 frames (and how long they show a peer's notice) by it.
    pub typing_interval_secs: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct RateStanding {
    pub sent: u64,
    pub limit: u64,
    pub window_secs: u64,
    pub resets_in_secs: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct UnansweredStanding {
    pub user_id: UserId,
    pub sent: u64,
    pub limit: u64,
    pub blocked_for_secs: Option<u64>,
}

fn parse_verdict(reply: &[redis::Value]) -> Option<(String, i64)> {
    use redis::FromRedisValue;
    match reply {
        [flag, rule, retry] if i64::from_redis_value(flag).ok() == Some(1) => Some((
            String::from_redis_value(rule).unwrap_or_else(|_| "rate".to_owned()),
            i64::from_redis_value(retry).unwrap_or(1000),
        )),
        _ => None,
    }
}

/// The duplicate rule compares content trimmed, case-folded and with whitespace collapsed;
/// the key holds a 64-bit FNV-1a fingerprint of that form, not the content.
pub(crate) fn normalise(content: &str) -> String {
    content
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn content_fingerprint(content: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    normalise(content).bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

fn ms(secs: u64) -> u64 {
    secs.saturating_mul(1000)
}

/// Whole seconds, rounded up, at least 1.
fn whole_seconds(ms: i64) -> u64 {
    u64::try_from(ms.max(1)).unwrap_or(1).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_compared_normalised() {
        assert_eq!(normalise("  Buy   NOW\n cheap "), "buy now cheap");
        assert_eq!(
            content_fingerprint("Buy now"),
            content_fingerprint(" buy   NOW ")
        );
        assert_ne!(
            content_fingerprint("buy now"),
            content_fingerprint("buy later")
        );
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(1), 1);
        assert_eq!(whole_seconds(1000), 1);
        assert_eq!(whole_seconds(1001), 2);
        assert_eq!(whole_seconds(-2), 1);
    }
}
