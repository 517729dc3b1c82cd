#!/usr/bin/env bash
# Stops a server started by scripts/clients/start-server.sh and removes its data (the MySQL
# database, the Redis keys under its prefix, the MongoDB database). Safe to run any number of
# times: an instance that is not running is reported and skipped.
#
#   scripts/clients/stop-server.sh [NAME]     (default `default`)
#   scripts/clients/stop-server.sh --all      every instance under var/test/clients/
#
# The server gets SIGTERM (graceful: sockets close with 1012) and SIGKILL if it is still there
# after CLIENTS_STOP_TIMEOUT seconds (default 20). The log file stays for inspection.
# CLIENTS_KEEP_DATA=1 keeps the databases and Redis keys.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLIENTS_DIR="$ROOT/var/test/clients"
STOP_TIMEOUT="${CLIENTS_STOP_TIMEOUT:-20}"

MYSQL_HOST=127.0.0.1
MYSQL_PORT=13307
REDIS_PORT=16380
MONGO_URI="mongodb://127.0.0.1:17018"
VENV_PY="$ROOT/.tools/venv/bin/python"

log() { printf 'stop-server[%s]: %s\n' "$1" "$2" >&2; }

instance_dir() {
    if [[ "$1" == "default" ]]; then echo "$CLIENTS_DIR"; else echo "$CLIENTS_DIR/$1"; fi
}

# True when PID is a live chat-server process (not some unrelated process that reused the pid).
is_our_server() {
    local pid="$1" exe
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    [[ "$exe" == */chat-server || "$exe" == */chat-server" (deleted)" ]]
}

cleanup_data() {
    local name="$1" envfile="$2" db="" prefix="" mongo_db="" line
    while IFS= read -r line; do
        case "$line" in
            MYSQL_DATABASE=*) db="${line#*=}" ;;
            REDIS_KEY_PREFIX=*) prefix="${line#*=}" ;;
            MONGODB_DATABASE=*) mongo_db="${line#*=}" ;;
        esac
    done <"$envfile"

    if [[ "$db" =~ ^chat_clients_[0-9a-f]+$ ]]; then
        mariadb -h"$MYSQL_HOST" -P"$MYSQL_PORT" -uchat -pchat -e "DROP DATABASE IF EXISTS \`$db\`" 2>/dev/null ||
            log "$name" "warning: could not drop MySQL database $db"
    fi
    if [[ "$prefix" =~ ^chat_clients_[0-9a-f]+:$ ]] && command -v redis-cli >/dev/null; then
        # SCAN + UNLINK in batches; the prefix is unique to this instance.
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --scan --pattern "${prefix}*" 2>/dev/null |
            xargs -r -n 500 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" unlink >/dev/null 2>&1 ||
            log "$name" "warning: could not remove Redis keys ${prefix}*"
    fi
    if [[ "$mongo_db" =~ ^chat_clients_[0-9a-f]+$ && -x "$VENV_PY" ]]; then
        "$VENV_PY" - "$MONGO_URI" "$mongo_db" <<'PY' 2>/dev/null || log "$name" "warning: could not drop MongoDB database $mongo_db"
import sys
from pymongo import MongoClient
client = MongoClient(sys.argv[1], serverSelectionTimeoutMS=3000)
client.drop_database(sys.argv[2])
PY
    fi
}

stop_one() {
    local name="$1" dir pid="" i
    dir="$(instance_dir "$name")"
    if [[ "${CLIENTS_LOCK_HELD:-0}" != "1" ]]; then
        mkdir -p "$CLIENTS_DIR/.locks"
        exec 9>"$CLIENTS_DIR/.locks/$name.lock"
        flock 9
    fi

    [[ -f "$dir/server.pid" ]] && pid="$(cat "$dir/server.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && is_our_server "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
            is_our_server "$pid" || break
            sleep 0.1
        done
        if is_our_server "$pid"; then
            log "$name" "still running after ${STOP_TIMEOUT}s, killing pid $pid"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        log "$name" "stopped (pid $pid)"
    else
        log "$name" "not running"
    fi
    rm -f "$dir/server.pid" "$dir/url"

    if [[ -f "$dir/instance.env" ]]; then
        if [[ "${CLIENTS_KEEP_DATA:-0}" != "1" ]]; then
            cleanup_data "$name" "$dir/instance.env"
        fi
        rm -f "$dir/instance.env"
    fi
    if [[ "${CLIENTS_LOCK_HELD:-0}" != "1" ]]; then
        exec 9>&-
    fi
}

if [[ $# -gt 1 ]]; then
    echo "usage: scripts/clients/stop-server.sh [NAME | --all]" >&2
    exit 2
fi

if [[ "${1:-}" == "--all" ]]; then
    names=()
    if [[ -f "$CLIENTS_DIR/server.pid" || -f "$CLIENTS_DIR/instance.env" ]]; then
        names+=(default)
    fi
    for d in "$CLIENTS_DIR"/*/; do
        [[ -d "$d" ]] || continue
        if [[ -f "$d/server.pid" || -f "$d/instance.env" ]]; then
            names+=("$(basename "$d")")
        fi
    done
    if [[ ${#names[@]} -eq 0 ]]; then
        echo "stop-server: nothing to stop" >&2
    fi
    for n in "${names[@]}"; do stop_one "$n"; done
    exit 0
fi

NAME="${1:-default}"
if [[ ! "$NAME" =~ ^[A-Za-z0-9_-]{1,48}$ ]]; then
    echo "usage: scripts/clients/stop-server.sh [NAME | --all]" >&2
    exit 2
fi
stop_one "$NAME"
