//! Anti-spam: the cluster-wide rules (one atomic Redis script per send, see [`script`]), the
//! local per-connection first line ([`local`]), and the caller's standing for
//! `GET /user/me/limits`. Refusals are reply code 50006 with the rule and the wait.
//! When Redis cannot be reached, sends are refused (fail closed) and the outage is logged once.

pub mod local;
pub mod script;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::AsyncCommands;
use serde::Serialize;

use crate::config::AntispamSettings;
use crate::domain::{GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::metrics::Metrics;
use crate::store::redis::{Keys, Shared};

#[derive(Clone)]
pub struct Antispam {
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
    pub fn new(
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

    pub fn settings(&self) -> &AntispamSettings {
        &self.inner.settings
    }

    pub fn is_exempt(&self, user: UserId) -> bool {
        self.inner.settings.exempt_user_ids.contains(&user.0)
    }

    /// Checks a send against every rule and, when it passes, counts it (once: a retry of a
    /// passed `client_msg_id` is not counted again). Refused → `AppError::Throttled`.
    /// Exempt senders pass unchecked (their messages still count as answers).
    #[tracing::instrument(skip_all, fields(user_id = %from))]
    pub async fn check_send(
        &self,
        from: UserId,
        target: Target,
        content: &str,
        client_msg_id: Option<&str>,
    ) -> AppResult<()> {
        let result = self.run_script(from, target, content, client_msg_id).await;
        let inner = &self.inner;
        match result {
            Ok(verdict) => {
                if inner.outage.swap(false, Ordering::Relaxed) {
                    tracing::info!("anti-spam checks work again (Redis reachable)");
                }
                match verdict {
                    None => Ok(()),
                    Some((rule, retry_after_ms)) => {
                        inner.metrics.refused(&rule);
                        Err(AppError::Throttled {
                            rule,
                            retry_after_secs: whole_seconds(retry_after_ms),
                        })
                    }
                }
            }
            Err(err) => {
                inner.metrics.refused("unavailable");
                if !inner.outage.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %err, "anti-spam checks failing: sends are refused until Redis answers");
                }
                Err(AppError::AntispamUnavailable)
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
        let mut invocation = script::CHECK.prepare_invoke();
        invocation
            .key(k.antispam(&format!("mute:{from}")))
            .key(k.antispam(&format!("strike:{from}")))
            .key(k.antispam(&format!("step:{from}")))
            .key(k.antispam(&format!("rate:{from}")))
            .key(k.antispam(&format!("dup:{from}:{:016x}", content_fingerprint(content))))
            .key(k.antispam(&format!("grate:{from}:{group}")))
            .key(k.antispam(&format!("una:{from}:{recipient}")))
            .key(k.antispam(&format!("unablock:{from}:{recipient}")))
            .key(k.antispam(&format!("answered:{from}:{recipient}")))
            .key(k.antispam(&format!("answered:{recipient}:{from}")))
            .key(k.antispam(&format!("una:{recipient}:{from}")))
            .key(k.antispam(&format!("unablock:{recipient}:{from}")))
            .key(k.sent(from.0, client_msg_id.unwrap_or("")))
            .key(k.antispam(&format!("unaset:{from}")))
            .key(k.antispam(&format!("unaset:{recipient}")));
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
            .arg(ms(s.rate_window_secs))
            .arg(s.duplicate_limit)
            .arg(ms(s.duplicate_window_secs))
            .arg(s.group_rate_limit)
            .arg(ms(s.group_rate_window_secs))
            .arg(s.unanswered_limit)
            .arg(ms(s.unanswered_window_secs))
            .arg(ms(s.unanswered_block_secs))
            .arg(ms(s.strike_window_secs))
            .arg(ms(s.retry_memory_secs))
            .arg(from.0)
            .arg(recipient.0)
            .arg(if self.is_exempt(from) { "1" } else { "0" });
        for step in &s.mute_steps_secs {
            invocation.arg(ms(*step));
        }
        let mut conn = self.inner.redis.get().await?;
        let reply: Vec<redis::Value> = invocation.invoke_async(&mut conn).await?;
        Ok(parse_verdict(&reply))
    }

    /// The caller's standing: mute, strikes, and the counters nearest their limits.
    pub async fn standing(&self, user: UserId) -> AppResult<Standing> {
        let s = &self.inner.settings;
        let k = &self.inner.keys;
        let mut conn = self.inner.redis.get().await?;
        let mute_key = k.antispam(&format!("mute:{user}"));
        let rate_key = k.antispam(&format!("rate:{user}"));
        let (mute_ms, strike, step, rate, rate_ms, pending): (
            i64,
            bool,
            Option<u64>,
            Option<u64>,
            i64,
            Vec<u64>,
        ) = redis::pipe()
            .pttl(&mute_key)
            .exists(k.antispam(&format!("strike:{user}")))
            .get(k.antispam(&format!("step:{user}")))
            .get(&rate_key)
            .pttl(&rate_key)
            .smembers(k.antispam(&format!("unaset:{user}")))
            .query_async(&mut conn)
            .await?;
        let mut unanswered = Vec::new();
        for peer in pending {
            let count: Option<u64> = conn.get(k.antispam(&format!("una:{user}:{peer}"))).await?;
            let block_ms: i64 = conn
                .pttl(k.antispam(&format!("unablock:{user}:{peer}")))
                .await?;
            if count.is_none() && block_ms < 0 {
                continue;
            }
            unanswered.push(UnansweredStanding {
                user_id: UserId(peer),
                sent: count.unwrap_or(0),
                limit: s.unanswered_limit,
                blocked_for_secs: (block_ms > 0).then(|| whole_seconds(block_ms)),
            });
        }
        Ok(Standing {
            exempt: self.is_exempt(user),
            muted_for_secs: (mute_ms > 0).then(|| whole_seconds(mute_ms)),
            muted_until: (mute_ms > 0).then(|| {
                (chrono::Utc::now() + chrono::Duration::milliseconds(mute_ms))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            }),
            strike_active: strike,
            mutes_so_far: step.unwrap_or(0),
            rate: RateStanding {
                sent: rate.unwrap_or(0),
                limit: s.rate_limit,
                window_secs: s.rate_window_secs,
                resets_in_secs: (rate_ms > 0).then(|| whole_seconds(rate_ms)),
            },
            unanswered,
        })
    }
}

/// The target of a send.
#[derive(Debug, Clone, Copy)]
pub enum Target {
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
pub struct Standing {
    pub exempt: bool,
    pub muted_until: Option<String>,
    pub muted_for_secs: Option<u64>,
    pub strike_active: bool,
    pub mutes_so_far: u64,
    pub rate: RateStanding,
    pub unanswered: Vec<UnansweredStanding>,
}

#[derive(Debug, Serialize)]
pub struct RateStanding {
    pub sent: u64,
    pub limit: u64,
    pub window_secs: u64,
    pub resets_in_secs: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct UnansweredStanding {
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
pub fn normalise(content: &str) -> String {
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
