#!/usr/bin/env bash
# Starts target/debug/chat-server in the background against the test-profile services of
# scripts/services.sh, with data nobody else sees: a fresh MySQL database chat_clients_<random>,
# a fresh Redis key prefix, a fresh MongoDB database and a random session secret.
#
#   scripts/clients/start-server.sh [NAME]
#
# NAME (default `default`, letters, digits, `_` and `-`) keeps several servers apart, so
# callers can run them side by side:
#
#   NAME=default  var/test/clients/{url,server.pid,server.log,instance.env}
#   NAME=e2e      var/test/clients/e2e/{url,server.pid,server.log,instance.env}
#
# `url` holds the base URL (http://127.0.0.1:PORT), which is also printed on stdout (the only
# thing printed there, so `URL=$(scripts/clients/start-server.sh e2e)` works); progress goes to
# stderr. `instance.env` records the database, key prefix and Mongo database for
# stop-server.sh, which stops the server and removes that data.
#
# Starting a NAME that is still running stops that instance first (one server per NAME).
#
# Environment:
#   CHAT__...              passed through to the server, e.g. CHAT__ANTISPAM__RATE_LIMIT=3. The
#                          isolation settings (MySQL URL, Redis URL and key prefix, MongoDB URI and
#                          database, SMTP URL) and the JSON log format are always set here;
#                          anything else, including CHAT__SERVER__ADDR (default 127.0.0.1:0),
#                          CHAT__AUTH__BCRYPT_COST (default 4) and CHAT__SESSION__SECRET
#                          (default random), may be given by the caller.
#   CLIENTS_START_TIMEOUT  seconds to wait for the "listening" line (default 60)
#   CLIENTS_SERVICES_UP=1  run `scripts/services.sh --test up` when the services are down
#                          (default: fail with a hint)
#
# Needs the test services (scripts/services.sh --test up) and a built binary (cargo build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NAME="${1:-default}"
BIN="$ROOT/target/debug/chat-server"
TIMEOUT="${CLIENTS_START_TIMEOUT:-60}"

MYSQL_HOST=127.0.0.1
MYSQL_PORT=13307
REDIS_URL="redis://127.0.0.1:16380"
MONGO_URI="mongodb://127.0.0.1:17018"
SMTP_URL="smtp://127.0.0.1:2526"

log() { printf 'start-server[%s]: %s\n' "$NAME" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

if [[ $# -gt 1 || ! "$NAME" =~ ^[A-Za-z0-9_-]{1,48}$ ]]; then
    die "usage: scripts/clients/start-server.sh [NAME]   (NAME: 1-48 of [A-Za-z0-9_-])"
fi
# These would collide with the default instance's files in var/test/clients/ (and run.sh's logs/).
case "$NAME" in url | server | instance | logs) die "NAME '$NAME' is reserved" ;; esac

CLIENTS_DIR="$ROOT/var/test/clients"
if [[ "$NAME" == "default" ]]; then
    DIR="$CLIENTS_DIR"
else
    DIR="$CLIENTS_DIR/$NAME"
fi
mkdir -p "$DIR" "$CLIENTS_DIR/.locks"

# One start or stop per NAME at a time; different NAMEs never wait for each other.
exec 9>"$CLIENTS_DIR/.locks/$NAME.lock"
flock 9

[[ -x "$BIN" ]] || die "$BIN is missing: run \`cargo build\` first"

if ! "$ROOT/scripts/services.sh" --test status >/dev/null 2>&1; then
    if [[ "${CLIENTS_SERVICES_UP:-0}" == "1" ]]; then
        log "test services are down, starting them"
        "$ROOT/scripts/services.sh" --test up >&2
    else
        die "the test services are not all up: run \`scripts/services.sh --test up\`"
    fi
fi

# A previous instance under this NAME is stopped (and its data removed) first. The lock is
# already held, so the stop script is told not to take it again.
if [[ -f "$DIR/server.pid" || -f "$DIR/instance.env" ]]; then
    log "an instance of '$NAME' exists, stopping it first"
    CLIENTS_LOCK_HELD=1 "$ROOT/scripts/clients/stop-server.sh" "$NAME" >&2
fi
rm -f "$DIR/url" "$DIR/server.pid"

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

SUFFIX="$(rand_hex 6)"
DB_NAME="chat_clients_${SUFFIX}"
KEY_PREFIX="chat_clients_${SUFFIX}:"
MONGO_DB="chat_clients_${SUFFIX}"
SECRET="$(rand_hex 48)" # 96 hex characters

mariadb -h"$MYSQL_HOST" -P"$MYSQL_PORT" -uchat -pchat \
    -e "CREATE DATABASE \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" >&2 ||
    die "could not create the MySQL database $DB_NAME"

# Written before the server starts, so stop-server.sh can clean up after a failed start too.
cat >"$DIR/instance.env" <<EOF
NAME=$NAME
MYSQL_DATABASE=$DB_NAME
REDIS_KEY_PREFIX=$KEY_PREFIX
MONGODB_DATABASE=$MONGO_DB
EOF

: >"$DIR/server.log"
cd "$ROOT" # the server reads conf/config.toml relative to the working directory
# setsid: the server gets its own session, so signals meant for the caller (Ctrl-C in a
# terminal, a test runner killing its process group) leave it alone: stop-server.sh stops it.
# 9>&-: the server must not inherit the lock descriptor (it would hold the NAME's lock for its
# whole life and stop-server.sh would wait for it forever).
env \
    CHAT__SERVER__ADDR="${CHAT__SERVER__ADDR:-127.0.0.1:0}" \
    CHAT__AUTH__BCRYPT_COST="${CHAT__AUTH__BCRYPT_COST:-4}" \
    CHAT__SESSION__SECRET="${CHAT__SESSION__SECRET:-$SECRET}" \
    CHAT__LOG__FORMAT=json \
    CHAT__MYSQL__URL="mysql://chat:chat@$MYSQL_HOST:$MYSQL_PORT/$DB_NAME" \
    CHAT__REDIS__URL="$REDIS_URL" \
    CHAT__REDIS__KEY_PREFIX="$KEY_PREFIX" \
    CHAT__MONGODB__URI="$MONGO_URI" \
    CHAT__MONGODB__DATABASE="$MONGO_DB" \
    CHAT__MAIL__SMTP_URL="$SMTP_URL" \
    setsid "$BIN" </dev/null >>"$DIR/server.log" 2>&1 9>&- &
PID=$!
echo "$PID" >"$DIR/server.pid"

# The port is in the JSON line {"fields":{"message":"chat-server listening","port":N,...}}.
listening_port() {
    python3 - "$DIR/server.log" <<'PY'
import json, sys
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    for line in f:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        fields = rec.get("fields") if isinstance(rec, dict) else None
        if isinstance(fields, dict) and fields.get("message") == "chat-server listening":
            print(fields.get("port", ""))
            break
PY
}

PORT=""
deadline=$((SECONDS + TIMEOUT))
while [[ -z "$PORT" ]]; do
    if ! kill -0 "$PID" 2>/dev/null; then
        log "the server exited during startup; last lines of $DIR/server.log:"
        tail -n 20 "$DIR/server.log" >&2 || true
        CLIENTS_LOCK_HELD=1 "$ROOT/scripts/clients/stop-server.sh" "$NAME" >/dev/null 2>&1 || true
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        log "no \"chat-server listening\" line after ${TIMEOUT}s; last lines of $DIR/server.log:"
        tail -n 20 "$DIR/server.log" >&2 || true
        CLIENTS_LOCK_HELD=1 "$ROOT/scripts/clients/stop-server.sh" "$NAME" >/dev/null 2>&1 || true
        exit 1
    fi
    sleep 0.2
    PORT="$(listening_port)"
done

URL="http://127.0.0.1:$PORT"
echo "$URL" >"$DIR/url"
log "listening on $URL (pid $PID, database $DB_NAME, log ${DIR#"$ROOT"/}/server.log)"
echo "$URL"
