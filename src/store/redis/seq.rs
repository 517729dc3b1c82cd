//! Per-conversation sequence numbers: a Redis counter per conversation, advanced atomically by a
//! script so every process draws from one sequence. MongoDB is the truth: a counter that is
//! missing (Redis flushed or restarted without persistence) is re-seeded from the highest stored
//! seq before use, and a caller that still collides with a stored seq re-seeds past it.

use std::collections::HashMap;
use std::sync::LazyLock;

use deadpool_redis::redis::{AsyncCommands, Script};
use mongodb::Database;

use crate::error::AppResult;
use crate::store::mongo::messages;
use crate::store::redis::{Keys, Link, Shared};

/// KEYS: per seq wanted, the conversation's counter and its publication watermark (a pair may
/// repeat). ARGV: a floor for each pair, or "".
/// A counter below its floor (or missing, with a floor given) is raised to it before INCR. A
/// missing watermark starts at the counter's value before the draw: every seq handed out
/// before is taken as published, so the first seq drawn here is the next one to publish.
/// Returns one seq per pair, or -1 where the counter is missing and no floor was given.
static ALLOCATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local out = {}
        for i = 1, #KEYS / 2 do
            local key, watermark = KEYS[2 * i - 1], KEYS[2 * i]
            local floor = ARGV[i]
            local current = redis.call('GET', key)
            if floor ~= nil and floor ~= '' then
                if current == false or tonumber(current) < tonumber(floor) then
                    redis.call('SET', key, floor)
                    current = floor
                end
            end
            if current == false then
                out[i] = -1
            else
                redis.call('SET', watermark, current, 'NX')
                out[i] = redis.call('INCR', key)
            end
        end
        return out
        ",
    )
});

/// One seq for each entry of `conversations` (entries may repeat: they get consecutive seqs).
/// `floors` forces counters up to at least the given value first (after a collision).
pub(crate) async fn allocate(
    redis: &Shared,
    db: &Database,
    keys: &Keys,
    conversations: &[String],
    floors: &HashMap<String, i64>,
) -> AppResult<Vec<i64>> {
    let mut conn = redis.get().await?;
    let mut seqs = invoke(&mut conn, keys, conversations, floors).await?;
    let missing: Vec<&String> = conversations
        .iter()
        .zip(&seqs)
        .filter(|(_, seq)| **seq < 0)
        .map(|(c, _)| c)
        .collect();
    if missing.is_empty() {
        return Ok(seqs);
    }
    // Counters gone: seed them from what MongoDB holds, then draw again for those entries.
    let mut seeds = floors.clone();
    for conversation in missing {
        if !seeds.contains_key(conversation) {
            let stored = messages::max_seq(db, conversation).await?;
            seeds.insert(conversation.clone(), stored);
        }
    }
    let retry: Vec<String> = conversations
        .iter()
        .zip(&seqs)
        .filter(|(_, seq)| **seq < 0)
        .map(|(c, _)| c.clone())
        .collect();
    let drawn = invoke(&mut conn, keys, &retry, &seeds).await?;
    let mut drawn = drawn.into_iter();
    for seq in seqs.iter_mut().filter(|s| **s < 0) {
        *seq = drawn.next().unwrap_or(-1);
    }
    Ok(seqs)
}

/// Draws in one script per delivery shard (one slot each in cluster mode), all at once.
async fn invoke(
    conn: &mut Link,
    keys: &Keys,
    conversations: &[String],
    floors: &HashMap<String, i64>,
) -> AppResult<Vec<i64>> {
    let mut shards: Vec<(u16, Vec<usize>)> = Vec::new();
    for (i, conversation) in conversations.iter().enumerate() {
        let shard = keys.shard_of(conversation);
        match shards.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, at)) => at.push(i),
            None => shards.push((shard, vec![i])),
        }
    }
    let draws = shards.iter().map(|(_, at)| {
        let mut invocation = ALLOCATE.prepare_invoke();
        for i in at {
            let conversation = &conversations[*i];
            invocation
                .key(keys.seq(conversation))
                .key(keys.published(conversation));
            invocation.arg(
                floors
                    .get(conversation)
                    .map_or_else(String::new, i64::to_string),
            );
        }
        let mut conn = conn.clone();
        async move { invocation.invoke_async::<Vec<i64>>(&mut conn).await }
    });
    let drawn = futures_util::future::try_join_all(draws).await?;
    let mut seqs = vec![-1; conversations.len()];
    for ((_, at), drawn) in shards.iter().zip(drawn) {
        for (i, seq) in at.iter().zip(drawn) {
            seqs[*i] = seq;
        }
    }
    Ok(seqs)
}

/// The last seq handed out in a conversation as the counter says, without asking MongoDB: may
/// lag behind the stored messages (a counter restored from an older snapshot) or be missing.
pub(crate) async fn counter(
    redis: &Shared,
    keys: &Keys,
    conversation: &str,
) -> AppResult<Option<i64>> {
    let mut conn = redis.get().await?;
    Ok(conn.get(keys.seq(conversation)).await?)
}

/// Creates a missing counter at `stored`, the highest seq MongoDB holds for the conversation (as
/// a draw would before using it); an existing counter is left alone.
pub(crate) async fn seed(
    redis: &Shared,
    keys: &Keys,
    conversation: &str,
    stored: i64,
) -> AppResult<()> {
    let mut conn = redis.get().await?;
    let _: Option<String> = redis::cmd("SET")
        .arg(keys.seq(conversation))
        .arg(stored)
        .arg("NX")
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// The last seq of a conversation: the higher of the counter and what MongoDB holds (a counter
/// restored from an older Redis snapshot may lag behind the stored messages).
pub(crate) async fn current(
    redis: &Shared,
    db: &Database,
    keys: &Keys,
    conversation: &str,
) -> AppResult<i64> {
    let counter = counter(redis, keys, conversation).await?;
    let stored = messages::max_seq(db, conversation).await?;
    Ok(counter.unwrap_or(0).max(stored))
}
