//! What each fault must show beyond the common exactly-once checks of [`super::tally`]: a
//! graceful stop's exit, the HTTP answers while MariaDB is down, who resumed where, which sends
//! failed or went unanswered while the fault was in force.

use std::time::{Duration, Instant};

use chat_loadgen::client::{PASSWORD, User};
use serde_json::Value;

use super::faults::Fault;
use super::nodes::{SHUTDOWN_TIMEOUT_SECS, StopOutcome};
use super::record::{Attempt, ClientLog, Target};

/// The fault window as plain instants, for the per-fault checks.
pub struct Times {
    pub start: Instant,
    pub end: Instant,
}

/// A graceful stop must end with exit status 0 within the configured budget.
pub fn judge_stop(stop: anyhow::Result<StopOutcome>) -> Result<String, String> {
    let budget = Duration::from_secs(SHUTDOWN_TIMEOUT_SECS);
    match stop {
        Ok(StopOutcome {
            exit_code: Some(0),
            took: Some(took),
            ..
        }) if took <= budget => Ok(format!(
            "node A exited with status 0 {:.1} s after SIGTERM (budget {SHUTDOWN_TIMEOUT_SECS} s)",
            took.as_secs_f64()
        )),
        Ok(StopOutcome {
            exit_code, took, ..
        }) => Err(format!(
            "node A after SIGTERM: exit status {exit_code:?} after {took:?}, expected 0 within {budget:?}"
        )),
        Err(err) => Err(format!("stopping node A failed: {err:#}")),
    }
}

/// While MariaDB is down: a login and a profile call answer 503 `unavailable`.
pub async fn probe_mysql_down(
    port: u16,
    user: &User,
    checks: &mut Vec<String>,
    violations: &mut Vec<String>,
) {
    let base = format!("http://127.0.0.1:{port}");
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
    {
        Ok(http) => http,
        Err(err) => {
            violations.push(format!("probe client: {err}"));
            return;
        }
    };
    let login = http
        .post(format!("{base}/user/login"))
        .json(&serde_json::json!({"user_name": user.name, "password": PASSWORD}))
        .send();
    let me = http
        .get(format!("{base}/user/me"))
        .header("cookie", &user.cookie)
        .send();
    let (login, me) = tokio::join!(login, me);
    for (what, answer) in [("POST /user/login", login), ("GET /user/me", me)] {
        match answer {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                if status == 503 && body["code"] == "unavailable" {
                    checks.push(format!(
                        "{what} answered 503 unavailable while MariaDB was down"
                    ));
                } else {
                    violations.push(format!(
                        "{what} while MariaDB was down: {status} {body}, expected 503 {{\"code\":\"unavailable\"}}"
                    ));
                }
            }
            Err(err) => violations.push(format!("{what} while MariaDB was down: {err}")),
        }
    }
}

/// What each fault must show beyond the common checks.
pub fn fault_checks(fault: Fault, logs: &[ClientLog], w: &Times) -> (Vec<String>, Vec<String>) {
    let mut checks = Vec::new();
    let mut violations = Vec::new();
    let mut judge = |ok: bool, text: String| {
        if ok {
            checks.push(text);
        } else {
            violations.push(text);
        }
    };
    // Node A's clients are the even ones.
    let moved: Vec<&ClientLog> = logs.iter().filter(|l| l.idx % 2 == 0).collect();
    let during = |at: Instant| at >= w.start && at <= w.end;
    match fault {
        Fault::KillNode | Fault::Sigterm => {
            let stranded: Vec<usize> = moved
                .iter()
                .filter(|l| !l.resumed_at.iter().any(|at| *at >= w.start))
                .map(|l| l.idx)
                .collect();
            judge(
                stranded.is_empty(),
                format!(
                    "{} of {} clients of node A resumed on node B{}",
                    moved.len() - stranded.len(),
                    moved.len(),
                    listed(", not", &stranded)
                ),
            );
        }
        Fault::RedisRestart | Fault::RedisFlush => {
            let relogins: u64 = logs.iter().map(|l| l.relogins).sum();
            let reconnected = logs
                .iter()
                .filter(|l| l.resumed_at.iter().any(|at| *at >= w.start))
                .count();
            let total = logs.len();
            if fault == Fault::RedisRestart {
                judge(
                    relogins == 0,
                    format!(
                        "{reconnected} of {total} clients resumed; new logins needed: {relogins} (sessions must survive)"
                    ),
                );
            } else {
                let kept: Vec<usize> = logs
                    .iter()
                    .filter(|l| l.resumed_at.iter().any(|at| *at > w.end) && l.relogins == 0)
                    .map(|l| l.idx)
                    .collect();
                judge(
                    kept.is_empty(),
                    format!(
                        "{reconnected} of {total} clients resumed, with {relogins} new logins{}",
                        listed(
                            "; reconnected after the flush without one (a session outlived its data)",
                            &kept
                        )
                    ),
                );
            }
        }
        Fault::ClusterFailover | Fault::ClusterReshard => {
            // Sends while a master is gone are refused (50000, retried) or wait for the
            // cluster client's retries; either way the tally's checks (nothing lost, nothing
            // twice, every ack the stored message) are what must hold. Sessions are in Redis:
            // one written just before the kill may not have reached the replica.
            let (failed, no_reply, acked) = attempts_in(logs, &during);
            let relogins: u64 = logs.iter().map(|l| l.relogins).sum();
            let reconnected = logs
                .iter()
                .filter(|l| l.resumed_at.iter().any(|at| *at >= w.start))
                .count();
            judge(
                true,
                format!(
                    "during the fault: {failed} sends answered 50000, {no_reply} without a reply, \
                 {acked} acknowledged; {reconnected} of {} clients resumed, {relogins} new logins",
                    logs.len()
                ),
            );
        }
        Fault::MongoStop => {
            let (failed, no_reply, acked) = attempts_in(logs, &during);
            judge(
                failed > 0,
                format!(
                    "while MongoDB was down: {failed} sends answered 50000, {no_reply} without a reply, {acked} acknowledged"
                ),
            );
        }
        Fault::MysqlStop => {
            let (failed, no_reply, _) = attempts_in(logs, &during);
            let acked = |target: Target| {
                logs.iter()
                    .flat_map(|l| &l.sends)
                    .filter(|s| s.target == target)
                    .filter_map(|s| s.ack.as_ref())
                    .filter(|a| during(a.at))
                    .count()
            };
            let (direct, group) = (acked(Target::Direct), acked(Target::Group));
            judge(
                direct > 0 && group > 0 && failed == 0 && no_reply == 0,
                format!(
                    "while MariaDB was down: {direct} 1:1 and {group} group sends acknowledged, \
                     {failed} answered 50000, {no_reply} without a reply"
                ),
            );
        }
    }
    if fault == Fault::Sigterm {
        let without_1012: Vec<usize> = moved
            .iter()
            .filter(|l| {
                !l.drops
                    .iter()
                    .any(|(at, code)| *at >= w.start && *code == Some(1012))
            })
            .map(|l| l.idx)
            .collect();
        judge(
            without_1012.is_empty(),
            format!(
                "sockets of node A closed with 1012{}",
                listed(", except those of", &without_1012)
            ),
        );
    }
    // Acknowledged only to a retry, with a message stored by an attempt whose socket closed
    // before its reply: expected when the process died, and when the socket ended while its send
    // waited on Redis (restart or flush: the session lapses, or the client gives up waiting);
    // never after a graceful stop (a 1012 close must answer the send it is running first).
    let cut: Vec<&str> = logs
        .iter()
        .flat_map(|l| &l.sends)
        .filter(|s| s.stored_by_earlier_attempt)
        .map(|s| s.client_msg_id.as_str())
        .collect();
    if fault == Fault::KillNode {
        checks.push(format!(
            "sends stored by node A just before it died, acknowledged to their retry: {}",
            cut.len()
        ));
    } else if matches!(
        fault,
        Fault::RedisRestart | Fault::RedisFlush | Fault::ClusterFailover | Fault::ClusterReshard
    ) {
        checks.push(format!(
            "sends stored during the Redis fault whose socket ended before their reply, \
             acknowledged to their retry: {}",
            cut.len()
        ));
    } else {
        judge(
            cut.is_empty(),
            format!(
                "sends stored whose socket closed before their reply (answered only to the retry): {}",
                if cut.is_empty() {
                    "none".to_owned()
                } else {
                    cut.join(", ")
                }
            ),
        );
    }
    (checks, violations)
}

/// `"{prefix} [1, 2]"` for a non-empty list of clients, else nothing.
fn listed(prefix: &str, clients: &[usize]) -> String {
    if clients.is_empty() {
        String::new()
    } else {
        format!("{prefix} {clients:?}")
    }
}

/// Send attempts within the window: (answered 50000, written and never answered,
/// acknowledged).
fn attempts_in(logs: &[ClientLog], during: &impl Fn(Instant) -> bool) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for attempt in logs.iter().flat_map(|l| &l.sends).flat_map(|s| &s.attempts) {
        match attempt.outcome {
            Attempt::Failed if during(attempt.ended) => counts.0 += 1,
            // Written while the fault was in force and never answered.
            outcome if outcome.unanswered() && during(attempt.sent) => counts.1 += 1,
            Attempt::Acked if during(attempt.ended) => counts.2 += 1,
            _ => {}
        }
    }
    counts
}
