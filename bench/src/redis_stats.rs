//! Redis work per message, from `INFO commandstats` taken before and after a measurement.
//!
//! Redis counts the commands a Lua script runs as calls of their own (an `EVALSHA` that runs
//! three `INCR`s counts four calls), so the calls are split into script invocations, commands
//! of the kinds the server's scripts run (GET, INCR, PUBLISH, ZRANGE ...: nearly all of them
//! inside scripts during a measurement) and everything else. Round trips are the script
//! invocations plus the other commands (a pipeline counts once per command: an upper bound),
//! except `UNWATCH`: the connection pool (deadpool-redis) checks every connection it hands out
//! with `UNWATCH` + `PING` in one pipeline, so `PING` alone counts that round trip.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

/// Commands that issue a script.
const SCRIPT_COMMANDS: &[&str] = &[
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
];
/// The commands the server's Lua scripts call (src/antispam/script.rs, src/store/redis/seq.rs,
/// src/hub/relay.rs).
const IN_SCRIPT_COMMANDS: &[&str] = &[
    "get",
    "set",
    "incr",
    "pexpire",
    "pttl",
    "exists",
    "del",
    "srem",
    "sadd",
    "publish",
    "spublish",
    "hset",
    "hget",
    "hdel",
    "hlen",
    "hkeys",
    "zremrangebyscore",
    "zrange",
];
/// The load generator's own commands.
const OWN_COMMANDS: &[&str] = &["info"];
/// The pool's check of a connection before handing it out: `UNWATCH` pipelined with `PING`.
const POOL_CHECK_PIPELINED: &str = "unwatch";
const POOL_CHECK: &str = "ping";

/// A snapshot of the calls per command.
#[derive(Debug, Clone, Default)]
pub struct CommandStats(BTreeMap<String, u64>);

pub async fn snapshot(url: &str) -> Result<CommandStats> {
    let client = redis::Client::open(url).context("Redis URL")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .context("INFO commandstats")?;
    Ok(parse(&info))
}

/// `cmdstat_get:calls=12,usec=...` → {"get": 12}
/// The commands the masters of a Redis Cluster ran, summed (replicas replay writes; they are
/// left out). `seeds`: the nodes' URLs, comma-separated; every node of the cluster must be in
/// it or reachable under the addresses it reports.
pub async fn snapshot_cluster(seeds: &str) -> Result<CommandStats> {
    let first = seeds.split(',').next().context("no seed node")?;
    let client = redis::Client::open(first).context("Redis URL")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to a cluster node")?;
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .context("CLUSTER NODES")?;
    let mut total = CommandStats::default();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if !flags.contains("master") || flags.contains("fail") {
            continue;
        }
        let addr = addr.split('@').next().unwrap_or(addr);
        let node = snapshot(&format!("redis://{addr}")).await?;
        for (name, calls) in node.0 {
            *total.0.entry(name).or_default() += calls;
        }
    }
    Ok(total)
}

fn parse(info: &str) -> CommandStats {
    let mut calls = BTreeMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        let count = fields
            .split(',')
            .find_map(|f| f.strip_prefix("calls="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        calls.insert(name.to_owned(), count);
    }
    CommandStats(calls)
}

/// Redis work between two snapshots, per message.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedisWork {
    pub messages: u64,
    pub calls_total: u64,
    pub script_invocations: u64,
    pub in_script_kind_calls: u64,
    pub other_calls: u64,
    /// Connection checks by the pool (`UNWATCH` + `PING`, one round trip each).
    pub pool_checks: u64,
    /// (script invocations + other commands, a pool check counted once) / messages.
    pub round_trips_per_message: f64,
    pub script_invocations_per_message: f64,
    pub pool_checks_per_message: f64,
    pub calls_per_message: f64,
    /// Calls per command (the difference), for the record.
    pub by_command: BTreeMap<String, u64>,
}

pub fn diff(before: &CommandStats, after: &CommandStats, messages: u64) -> RedisWork {
    let mut work = RedisWork {
        messages,
        ..RedisWork::default()
    };
    for (name, &calls) in &after.0 {
        let calls = calls.saturating_sub(before.0.get(name).copied().unwrap_or(0));
        let base = name.split('|').next().unwrap_or(name);
        if calls == 0 || OWN_COMMANDS.contains(&base) {
            continue;
        }
        work.calls_total += calls;
        if SCRIPT_COMMANDS.contains(&base) {
            work.script_invocations += calls;
        } else if IN_SCRIPT_COMMANDS.contains(&base) {
            work.in_script_kind_calls += calls;
        } else {
            work.other_calls += calls;
        }
        if base == POOL_CHECK {
            work.pool_checks += calls;
        }
        if base == POOL_CHECK_PIPELINED {
            work.other_calls -= calls;
        }
        work.by_command.insert(name.clone(), calls);
    }
    let per = |n: u64| n as f64 / messages.max(1) as f64;
    work.round_trips_per_message = per(work.script_invocations + work.other_calls);
    work.script_invocations_per_message = per(work.script_invocations);
    work.pool_checks_per_message = per(work.pool_checks);
    work.calls_per_message = per(work.calls_total);
    work
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_classifies() {
        let before = parse("# Commandstats\r\ncmdstat_evalsha:calls=10,usec=1\r\n");
        let after = parse(
            "cmdstat_evalsha:calls=40,usec=1\r\ncmdstat_incr:calls=60,usec=1\r\n\
             cmdstat_zcount:calls=3,usec=1\r\ncmdstat_info:calls=9,usec=1\r\n\
             cmdstat_ping:calls=30,usec=1\r\ncmdstat_unwatch:calls=30,usec=1\r\n",
        );
        let work = diff(&before, &after, 30);
        assert_eq!(work.script_invocations, 30);
        assert_eq!(work.in_script_kind_calls, 60);
        assert_eq!(work.other_calls, 33);
        assert_eq!(work.pool_checks, 30);
        assert_eq!(work.calls_total, 153);
        assert!((work.round_trips_per_message - 2.1).abs() < 1e-9);
    }
}
