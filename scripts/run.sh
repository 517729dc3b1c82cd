#!/usr/bin/env bash
# Runs chat-server locally, in the foreground, against the run-profile services
# of scripts/services.sh (started here if needed). Ctrl-C stops the server; the
# services keep running so the next start is instant (scripts/services.sh down
# stops them). The server applies its database migrations itself at startup.
#
#   scripts/run.sh             one process on a single Redis
#   scripts/run.sh --cluster   two processes on a local Redis Cluster (the cluster profile
#                              of scripts/services.sh: 3 masters + 3 replicas on
#                              127.0.0.1:7101-7106), sharing the run profile's MariaDB,
#                              MongoDB and SMTP; either process serves any user
#
# Listens on $CHAT__SERVER__ADDR (default 127.0.0.1:8081); with --cluster the second process
# listens on $CHAT_SECOND_ADDR (default 127.0.0.1:8082).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER=0
case "${1:-}" in
    "") ;;
    --cluster) CLUSTER=1 ;;
    *)
        printf 'usage: scripts/run.sh [--cluster]\n' >&2
        exit 2
        ;;
esac
ADDR="${CHAT__SERVER__ADDR:-127.0.0.1:8081}"
ADDRS=("$ADDR")
PID_FILE="$ROOT/var/pids/server.pid"
SECRET_FILE="$ROOT/var/session_secret"
METRICS_TOKEN_FILE="$ROOT/var/metrics_token"

# log and pid_alive (which also tells zombies from live processes) come from
# the helpers of scripts/services.sh.
# shellcheck source=SCRIPTDIR/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# True when the pid file names a live chat-server (not a recycled pid).
server_running() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    pid_alive "$pid" || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q chat-server || return 1
    fi
    printf '%s\n' "$pid"
}

if ((CLUSTER)); then
    "$ROOT/scripts/services.sh" up mariadb mongo smtp
    "$ROOT/scripts/services.sh" --profile cluster up
    export CHAT__REDIS__MODE=cluster
    export CHAT__REDIS__URLS="redis://127.0.0.1:7101,redis://127.0.0.1:7102,redis://127.0.0.1:7103"
    ADDRS+=("${CHAT_SECOND_ADDR:-127.0.0.1:8082}")
else
    "$ROOT/scripts/services.sh" up
fi

# Reads the secret in FILE (HEX_CHARS hex digits), making a random one first when it is
# missing or malformed, and exports it as VAR unless VAR is set already.
persistent_secret() { # persistent_secret VAR FILE BYTES WHAT
    local var="$1" file="$2" bytes="$3" what="$4"
    [[ -z "${!var:-}" ]] || return 0
    mkdir -p "$(dirname "$file")"
    if ! grep -Eqx "[0-9a-f]{$((bytes * 2))}" "$file" 2>/dev/null; then
        (
            umask 077
            tmp="$file.tmp.$$"
            od -An -v -tx1 -N"$bytes" /dev/urandom | tr -d ' \n' >"$tmp"
            mv -f "$tmp" "$file"
        )
        log "generated $what in ${file#"$ROOT/"}"
    fi
    chmod 600 "$file"
    printf -v "$var" '%s' "$(tr -d '\n' <"$file")"
    export "${var?}"
}

# Sessions are signed with this secret; keeping it in var/ (instead of a new
# random one per start) means logins survive server restarts.
persistent_secret CHAT__SESSION__SECRET "$SECRET_FILE" 64 "a session secret"
# GET /metrics wants this bearer token (scrapers read it from var/metrics_token).
persistent_secret CHAT__METRICS__TOKEN "$METRICS_TOKEN_FILE" 32 "a metrics token"

if pid="$(server_running)"; then
    printf 'chat-server is already running at http://%s (pid %s)\n' "$ADDR" "$pid"
    exit 0
fi

cd "$ROOT"
cargo_flags=(--release)
if [[ -f Cargo.lock ]]; then
    cargo_flags+=(--locked)
fi
cargo build "${cargo_flags[@]}"

mkdir -p "$(dirname "$PID_FILE")"

# The servers run as children rather than via exec so that we can remove the
# pid file when they exit. Signals are forwarded as SIGTERM (graceful shutdown):
# a background child of a non-interactive shell starts with SIGINT ignored, so
# forwarding SIGINT itself would not be reliable. A second Ctrl-C kills them.
server_pids=()
for addr in "${ADDRS[@]}"; do
    printf 'chat-server listening on http://%s\n' "$addr"
    CHAT__SERVER__ADDR="$addr" "$ROOT/target/release/chat-server" &
    server_pids+=("$!")
done
printf '%s\n' "${server_pids[0]}" >"$PID_FILE"

signals=0
# shellcheck disable=SC2317 # only invoked through the trap below
forward() {
    signals=$((signals + 1))
    local pid
    for pid in "${server_pids[@]}"; do
        if ((signals == 1)); then
            kill -TERM "$pid" 2>/dev/null || true
        else
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}
# shellcheck disable=SC2317 # only invoked through the trap below
cleanup() {
    if [[ "$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null)" == "${server_pids[0]}" ]]; then
        rm -f "$PID_FILE"
    fi
    log "chat-server stopped; the services are still running (scripts/services.sh down stops them)"
}
trap forward INT TERM HUP
trap cleanup EXIT

# `wait` returns early whenever a trapped signal arrives; keep waiting until
# every server has really exited and been reaped (kill -0 still sees our own
# unreaped child), then exit with the first one's status.
status=0
for pid in "${server_pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
        if wait "$pid"; then
            :
        else
            code=$?
            ((status != 0)) || status=$code
        fi
    done
done
exit "$status"
