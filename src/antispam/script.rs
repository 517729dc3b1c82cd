//! The cluster-wide rules as Redis scripts: every check and every counter update of a send
//! happen atomically in one round trip on the sender's keys (one slot in cluster mode), so any
//! number of connections and processes of one sender see one truth. A 1:1 send that passes
//! then answers its recipient in a second script on the recipient's keys ([`ANSWER`]).
//! Counters are compared as numbers (`tonumber`), never as strings.

use std::sync::LazyLock;

use redis::Script;

/// KEYS (all of sender S; R the recipient of a 1:1 send, G the group):
///  1 mute(S)  2 strike(S)  3 mute step(S)  4 rate(S)  5 duplicate(S, content)  6 group rate(S, G)
///  7 unanswered count(S→R)  8 unanswered block(S→R)  9 answered(S by R)
/// 10 passed client_msg_id(S)  11 unanswered set(S)
///
/// ARGV: 1 kind (`direct`, `group`, `self`), 2 check rule 1 (`1`/`0`), 3 has client_msg_id,
/// 4 rate limit, 5 rate window ms, 6 duplicate limit, 7 duplicate window ms, 8 group limit,
/// 9 group window ms, 10 unanswered limit, 11 unanswered window ms, 12 unanswered block ms,
/// 13 strike window ms, 14 retry memory ms, 15 S, 16 R, 17 exempt sender (`1`/`0`),
/// 18.. mute steps ms. An exempt sender is neither checked nor counted (their messages still
/// answer their recipients: the caller runs [`ANSWER`] for every 1:1 send that passes).
///
/// Returns `{0}` when the send passes (and has been counted), or `{1, rule, retry_after_ms}`.
pub(crate) static CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local kind = ARGV[1]
        local check_unanswered = ARGV[2] == '1'
        local has_cmid = ARGV[3] == '1'
        local rate_limit, rate_window = tonumber(ARGV[4]), tonumber(ARGV[5])
        local dup_limit, dup_window = tonumber(ARGV[6]), tonumber(ARGV[7])
        local group_limit, group_window = tonumber(ARGV[8]), tonumber(ARGV[9])
        local una_limit, una_window, una_block = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
        local strike_window, retry_memory = tonumber(ARGV[13]), tonumber(ARGV[14])
        local sender, recipient = ARGV[15], ARGV[16]
        local exempt = ARGV[17] == '1'
        local first_step = 17

        local function remaining(key)
            local ms = redis.call('PTTL', key)
            if ms < 1 then return 1000 end
            return ms
        end
        local function count(key)
            return tonumber(redis.call('GET', key) or '0')
        end
        local function bump(key, window)
            if redis.call('INCR', key) == 1 then
                redis.call('PEXPIRE', key, window)
            end
        end

        if exempt then
            return {0}
        end
        -- A retry of a send that already passed is neither checked nor counted again.
        if has_cmid and redis.call('EXISTS', KEYS[10]) == 1 then
            return {0}
        end
        if redis.call('EXISTS', KEYS[1]) == 1 then
            return {1, 'muted', remaining(KEYS[1])}
        end

        local unanswered = check_unanswered and redis.call('EXISTS', KEYS[9]) == 0
        if unanswered then
            if redis.call('EXISTS', KEYS[8]) == 1 then
                return {1, 'unanswered', remaining(KEYS[8])}
            end
            if count(KEYS[7]) >= una_limit then
                -- The block is the penalty; once it ends the sender starts counting afresh.
                redis.call('SET', KEYS[8], '1', 'PX', una_block)
                redis.call('DEL', KEYS[7])
                return {1, 'unanswered', una_block}
            end
        end

        local refused, retry = nil, 0
        if count(KEYS[4]) >= rate_limit then
            refused, retry = 'rate', remaining(KEYS[4])
        elseif count(KEYS[5]) >= dup_limit then
            refused, retry = 'duplicate', remaining(KEYS[5])
        elseif kind == 'group' and count(KEYS[6]) >= group_limit then
            refused, retry = 'group_rate', remaining(KEYS[6])
        end
        if refused then
            if redis.call('EXISTS', KEYS[2]) == 1 then
                local step = redis.call('INCR', KEYS[3])
                local steps = #ARGV - first_step
                local mute = tonumber(ARGV[first_step + math.min(step, steps)])
                redis.call('PEXPIRE', KEYS[3], mute + strike_window)
                redis.call('SET', KEYS[1], '1', 'PX', mute)
                redis.call('SET', KEYS[2], '1', 'PX', strike_window)
                return {1, 'muted', mute}
            end
            redis.call('SET', KEYS[2], '1', 'PX', strike_window)
            return {1, refused, retry}
        end

        bump(KEYS[4], rate_window)
        bump(KEYS[5], dup_window)
        if kind == 'group' then
            bump(KEYS[6], group_window)
        end
        if unanswered then
            bump(KEYS[7], una_window)
            redis.call('SADD', KEYS[11], recipient)
            redis.call('PEXPIRE', KEYS[11], una_window)
        end
        if has_cmid then
            redis.call('SET', KEYS[10], '1', 'PX', retry_memory)
        end
        return {0}
        "#,
    )
});

/// Writing to R answers R: R's messages to S are replies from now on. Run after [`CHECK`]
/// passed a 1:1 send (also a retry, also of an exempt sender); idempotent.
///
/// KEYS (all of the recipient R): 1 answered(R by S)  2 unanswered count(R→S)
/// 3 unanswered block(R→S)  4 unanswered set(R). ARGV: 1 unanswered window ms, 2 S.
pub(crate) static ANSWER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        -- While S has answered R, R's messages to S are not counted, so there is nothing to
        -- clear unless the answer had lapsed.
        if redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[1]), 'GET') == false then
            redis.call('DEL', KEYS[2], KEYS[3])
            redis.call('SREM', KEYS[4], ARGV[2])
        end
        return 0
        ",
    )
});
