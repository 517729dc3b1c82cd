#!/usr/bin/env bash
# Starts, stops and reports the local backing services chat-server needs:
# Redis, MariaDB, a MongoDB wire-compatible server (nx-27017) and an SMTP
# server (aiosmtpd) that receives the app's outgoing mail.
#
#   scripts/services.sh [--test | --profile NAME] up|down|status|reset [SERVICE...]
#
# SERVICE is one of redis, mariadb, mongo, smtp (default: all of them). `reset`
# stops the profile's services, deletes their data and starts them again.
#
# They run as plain background processes owned by the current user, with all
# data, logs, sockets and pid files under the repository's var/ directory, so
# nothing depends on (or interferes with) system-wide service configuration.
#
# Two profiles, fully isolated from each other so both can run at once:
#   run (default)  Redis    127.0.0.1:16379  var/redis (AOF persistence)
#                  MariaDB  127.0.0.1:13306  var/mysql
#                  nx-27017 127.0.0.1:17017  var/mongo
#                  SMTP     127.0.0.1:2525   var/mail (Maildir, kept)
#                  database `chat`, user chat/chat granted on chat.*
#                  logs var/log, pid files var/pids
#   test (--test)  Redis    127.0.0.1:16380  var/test/redis (no persistence)
#                  MariaDB  127.0.0.1:13307  var/test/mysql (wiped on start)
#                  nx-27017 127.0.0.1:17018  in memory
#                  SMTP     127.0.0.1:2526   var/test/mail (Maildir, emptied
#                                            on start)
#                  database `chat_test`, user chat/chat granted on *.* because
#                  the test suite creates one database per test
#                  logs var/test/log, pid files var/test/pids
#   bench          Redis 16382, MariaDB 13309, nx-27017 17020 (on disk), SMTP
#                  2528, under var/bench (scripts/bench.sh)
#   chaos          Redis 16381, MariaDB 13308, nx-27017 17019 (on disk), SMTP
#                  2527, under var/chaos (scripts/chaos.sh, which stops and
#                  restarts single services of this profile)
#                  bench and chaos: Redis with AOF persistence, database `chat`,
#                  user chat/chat granted on *.*; data kept until `reset`.
#
# The SMTP server accepts plain SMTP (no TLS, no auth) and stores every message
# it receives as one file in the Maildir's new/ folder, so tests can read the
# mail the app sent.
#
# A service is left alone when the app is pointed at the user's own instance:
# CHAT__REDIS__URL skips Redis, CHAT__MYSQL__URL skips MariaDB,
# CHAT__MONGODB__URI skips the MongoDB-compatible server and
# CHAT__MAIL__SMTP_URL skips the SMTP server.
#
# Missing software is installed on demand: the Debian packages redis-server and
# mariadb-server/mariadb-client through apt-get (root only), and nx-27017 and
# aiosmtpd from the Python package index into the git-ignored venv .tools/venv.
#
# Environment knobs: SERVICES_WAIT_SECS (default 30) bounds every readiness wait.
#
# `status` exits 0 when every non-skipped service is up and answering, 3 otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# nx-27017 is pinned exactly: its wire-protocol coverage changes between
# releases and the test suite depends on the behaviour of this one.
NX_VERSION="0.8.1"
TOOLS_DIR="$ROOT/.tools"
VENV="$TOOLS_DIR/venv"
NX_BIN="$VENV/bin/nx-27017"
VENV_PY="$VENV/bin/python"
# The marker records which pinned version the venv holds, so later runs can
# skip pip entirely and a change of pin triggers a reinstall.
NX_MARKER="$VENV/.installed-nx-27017-$NX_VERSION"
# aiosmtpd is pinned for the same reason: the Maildir layout and the extra
# headers it adds to each stored message are what tests parse.
AIOSMTPD_VERSION="1.4.6"
# Its console script only serves as evidence of the installation; the server
# is started as `python -m aiosmtpd`, the documented entry point.
AIOSMTPD_BIN="$VENV/bin/aiosmtpd"
AIOSMTPD_MARKER="$VENV/.installed-aiosmtpd-$AIOSMTPD_VERSION"

WAIT_SECS="${SERVICES_WAIT_SECS:-30}"
APP_USER="chat"
APP_PASSWORD="chat"

log() { printf '%s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    log "usage: scripts/services.sh [--test | --profile run|test|bench|chaos] up|down|status|reset [redis|mariadb|mongo|smtp ...]"
    exit 2
}

# ---------------------------------------------------------------------------
# Arguments and profile
# ---------------------------------------------------------------------------
PROFILE="run"
ACTION=""
ONLY=()
while (($# > 0)); do
    case "$1" in
        --test) PROFILE="test" ;;
        --profile)
            (($# > 1)) || usage
            PROFILE="$2"
            shift
            ;;
        up | down | status | reset)
            [[ -z "$ACTION" ]] || usage
            ACTION="$1"
            ;;
        redis | mariadb | mongo | smtp)
            [[ -n "$ACTION" ]] || usage
            ONLY+=("$1")
            ;;
        -h | --help) usage ;;
        *) usage ;;
    esac
    shift
done
[[ -n "$ACTION" ]] || usage

if [[ "$PROFILE" == "test" ]]; then
    BASE="$ROOT/var/test"
    REDIS_PORT=16380
    MYSQL_PORT=13307
    MONGO_PORT=17018
    MONGO_DATA="memory"
    SMTP_PORT=2526
    DB_NAME="chat_test"
    # The integration tests create and drop a database per test.
    GRANT_ON="*.*"
elif [[ "$PROFILE" == "bench" || "$PROFILE" == "chaos" ]]; then
    BASE="$ROOT/var/$PROFILE"
    if [[ "$PROFILE" == "bench" ]]; then
        REDIS_PORT=16382
        MYSQL_PORT=13309
        MONGO_PORT=17020
        SMTP_PORT=2528
    else
        REDIS_PORT=16381
        MYSQL_PORT=13308
        MONGO_PORT=17019
        SMTP_PORT=2527
    fi
    MONGO_DATA="$BASE/mongo"
    DB_NAME="chat"
    GRANT_ON="*.*"
elif [[ "$PROFILE" == "run" ]]; then
    BASE="$ROOT/var"
    REDIS_PORT=16379
    MYSQL_PORT=13306
    MONGO_PORT=17017
    MONGO_DATA="$BASE/mongo"
    SMTP_PORT=2525
    DB_NAME="chat"
    GRANT_ON="\`chat\`.*"
else
    usage
fi
REDIS_DIR="$BASE/redis"
MYSQL_DIR="$BASE/mysql"
MAIL_DIR="$BASE/mail"
LOG_DIR="$BASE/log"
PID_DIR="$BASE/pids"
RUN_DIR="$BASE/run"

# Unix socket paths are limited to ~107 bytes; fall back to a per-checkout
# name in /tmp when the repository lives in a deeply nested directory.
MYSQL_SOCK="$RUN_DIR/mariadb.sock"
if ((${#MYSQL_SOCK} > 100)); then
    MYSQL_SOCK="${TMPDIR:-/tmp}/chat-server-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)-$PROFILE-mariadb.sock"
fi

SERVICES=(redis mariadb mongo smtp)
if ((${#ONLY[@]} > 0)); then
    SERVICES=("${ONLY[@]}")
fi

service_port() {
    case "$1" in
        redis) echo "$REDIS_PORT" ;;
        mariadb) echo "$MYSQL_PORT" ;;
        mongo) echo "$MONGO_PORT" ;;
        smtp) echo "$SMTP_PORT" ;;
    esac
}

# Name of the environment variable that, when set, means "use my own instance".
service_env() {
    case "$1" in
        redis) echo "CHAT__REDIS__URL" ;;
        mariadb) echo "CHAT__MYSQL__URL" ;;
        mongo) echo "CHAT__MONGODB__URI" ;;
        smtp) echo "CHAT__MAIL__SMTP_URL" ;;
    esac
}

is_skipped() {
    local var
    var="$(service_env "$1")"
    [[ -n "${!var:-}" ]]
}

pid_file() { echo "$PID_DIR/$1.pid"; }
log_file() { echo "$LOG_DIR/$1.log"; }

# ---------------------------------------------------------------------------
# Process helpers
# ---------------------------------------------------------------------------

# True when PID is a live process. `kill -0` alone also succeeds for zombies,
# which linger when nothing reaps orphaned daemons (containers without an init).
pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/stat" ]]; then
        state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
        [[ "$state" != "Z" ]] || return 1
    fi
    return 0
}

# True when PID is alive and is one of our daemons for PORT: guards against a
# stale pid file whose number has been reused by an unrelated process.
pid_is_ours() {
    local pid="$1" port="$2" cmdline
    pid_alive "$pid" || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 0
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$port"* ]]
}

read_pid() {
    local f
    f="$(pid_file "$1")"
    [[ -f "$f" ]] || return 0
    tr -dc '0-9' <"$f" 2>/dev/null || true
}

# Pid of the running instance of SERVICE started by this script, or nothing.
running_pid() {
    local pid
    pid="$(read_pid "$1")"
    if [[ -n "$pid" ]] && pid_is_ours "$pid" "$(service_port "$1")"; then
        echo "$pid"
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Describes whoever holds PORT, to make "port already in use" actionable.
port_holder() {
    if command -v ss >/dev/null 2>&1; then
        ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n1
    fi
}

# Starts a long-running process in its own session (so a Ctrl-C in the
# terminal that ran us, e.g. via scripts/run.sh, does not reach it), from the
# profile's var directory, with stdio going to its log. Every other inherited
# descriptor is closed: our lock (fd 9) must not outlive this script, and a
# caller's pipe (e.g. `services.sh up | tee`, or a CI runner capturing output)
# would otherwise stay open until the daemon exits and make the caller hang.
# Prints the daemon's pid (setsid/nohup exec in place, so it is the real one).
spawn() {
    local logf="$1"
    shift
    (
        cd "$BASE"
        if [[ -d "/proc/$BASHPID/fd" ]]; then
            for fd in "/proc/$BASHPID/fd"/*; do
                fd="${fd##*/}"
                if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then
                    eval "exec $fd>&-"
                fi
            done
        fi
        exec setsid nohup "$@" </dev/null >>"$logf" 2>&1 9>&-
    ) &
    echo "$!"
}

# Keeps the previous log around as .1 and starts a fresh one, so logs of
# long-lived dev setups don't grow forever.
rotate_log() {
    local f="$1"
    if [[ -s "$f" ]]; then
        mv -f "$f" "$f.1"
    fi
    : >"$f"
}

# Waits until CHECK (a command) succeeds, failing early if PID dies.
wait_ready() {
    local pid="$1"
    shift
    local deadline=$((SECONDS + WAIT_SECS))
    while ((SECONDS < deadline)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            return 1
        fi
        sleep 0.2
    done
    "$@" >/dev/null 2>&1
}

# Waits for a service we just started; on failure reports whether the process
# died or merely never answered, with the end of its log.
wait_started() {
    local name="$1" pid="$2" what="$3"
    shift 3
    if wait_ready "$pid" "$@"; then
        return 0
    fi
    if ! pid_alive "$pid"; then
        fail_service "$name" "exited during startup"
    fi
    # Don't leave a half-started daemon behind to confuse the next `up`.
    stop_pid "$name" "$pid" 10
    rm -f "$(pid_file "$name")"
    fail_service "$name" "$what within ${WAIT_SECS}s (stopped pid $pid)"
}

fail_service() {
    local name="$1" msg="$2" logf
    logf="$(log_file "$name")"
    log "error: $name: $msg"
    if [[ -s "$logf" ]]; then
        log "---- last 30 lines of $logf ----"
        tail -n 30 "$logf" >&2
        log "----"
    fi
    exit 1
}

# Sends SIGTERM (a clean shutdown for all the servers: Redis flushes its AOF,
# InnoDB checkpoints, nx-27017 closes its SQLite files; aiosmtpd has no handler
# and simply exits, which is safe because Maildir delivery writes into tmp/ and
# renames into new/ only once a message is complete) and waits.
stop_pid() {
    local name="$1" pid="$2" grace="$3" deadline
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + grace))
    while pid_alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if pid_alive "$pid"; then
        log "$name: did not stop within ${grace}s, killing pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
}

# ---------------------------------------------------------------------------
# Installation
# ---------------------------------------------------------------------------
APT_UPDATED=0

# Installs Debian packages, or explains what to install and exits when that
# is not possible (not root, or not a Debian-like system).
apt_install() {
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        log "error: missing system packages: $*"
        log "install them first, e.g.: sudo apt-get install -y $*"
        exit 1
    fi
    log "installing system packages: $*"
    if ((APT_UPDATED == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq 9>&- >&2
        APT_UPDATED=1
    fi
    # Package maintainer scripts may start system daemons; closing fd 9 keeps
    # them from inheriting (and forever holding) our lock.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" 9>&- >&2
}

# Finds a program, also looking in sbin directories that are often missing
# from a regular user's PATH (mariadbd lives in /usr/sbin on Debian).
find_bin() {
    local name
    for name in "$@"; do
        if command -v "$name" 2>/dev/null; then
            return 0
        fi
        if [[ -x "/usr/sbin/$name" ]]; then
            echo "/usr/sbin/$name"
            return 0
        fi
    done
    return 1
}

ensure_redis_installed() {
    if ! find_bin redis-server >/dev/null || ! find_bin redis-cli >/dev/null; then
        apt_install redis-server redis-tools
    fi
    REDIS_SERVER="$(find_bin redis-server)" || die "redis-server not found after installation"
    REDIS_CLI="$(find_bin redis-cli)" || die "redis-cli not found after installation"
}

ensure_mariadb_installed() {
    if ! find_bin mariadbd mysqld >/dev/null || ! find_bin mariadb-install-db mysql_install_db >/dev/null ||
        ! find_bin mariadb mysql >/dev/null; then
        apt_install mariadb-server mariadb-client
    fi
    MARIADBD="$(find_bin mariadbd mysqld)" || die "mariadbd not found after installation"
    MARIADB_INSTALL_DB="$(find_bin mariadb-install-db mysql_install_db)" || die "mariadb-install-db not found after installation"
    MARIADB="$(find_bin mariadb mysql)" || die "mariadb client not found after installation"
}

# True when the venv's interpreter still runs (it breaks when the base Python
# is removed or upgraded).
venv_runs() {
    "$VENV_PY" -c '' >/dev/null 2>&1
}

nx_installed() {
    [[ -f "$NX_MARKER" && -x "$NX_BIN" ]] && venv_runs
}

aiosmtpd_installed() {
    [[ -f "$AIOSMTPD_MARKER" && -x "$AIOSMTPD_BIN" ]] && venv_runs
}

# Runs INSTALLER unless CHECK passes, under a lock: both profiles may be
# brought up concurrently and share the venv, so every change to it is
# serialised. CHECK is repeated once the lock is held because the other
# process may just have done the work.
venv_install() {
    local check="$1" installer="$2"
    "$check" && return 0
    mkdir -p "$TOOLS_DIR"
    (
        if ! flock -n 8; then
            log "waiting for a concurrent installation into ${VENV#"$ROOT"/} to finish"
            flock -w 600 8 || die "timed out waiting for $TOOLS_DIR/.install.lock"
        fi
        if "$check"; then
            exit 0
        fi
        "$installer"
    ) 8>"$TOOLS_DIR/.install.lock"
}

ensure_nx_installed() { venv_install nx_installed install_nx; }
ensure_aiosmtpd_installed() { venv_install aiosmtpd_installed install_aiosmtpd; }

# Creates the venv if needed. Called with the install lock held.
ensure_venv() {
    local out
    # A venv whose interpreter no longer runs cannot be repaired in place.
    if [[ -d "$VENV" ]] && ! venv_runs; then
        rm -rf "$VENV"
    fi
    [[ -x "$VENV_PY" ]] && return 0
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-venv
    fi
    log "creating Python venv in ${VENV#"$ROOT"/}"
    out="$(mktemp)"
    if ! python3 -m venv "$VENV" >"$out" 2>&1; then
        # Debian ships venv/ensurepip separately from python3.
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV" >"$out" 2>&1 || {
            cat "$out" >&2
            rm -f "$out"
            die "python3 -m venv failed"
        }
    fi
    rm -f "$out"
}

# Installs packages into the venv, showing pip's output only when it fails.
venv_pip_install() {
    local out
    out="$(mktemp)"
    if ! "$VENV_PY" -m pip install --disable-pip-version-check --no-input -q "$@" >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        die "pip install $* failed"
    fi
    rm -f "$out"
}

install_nx() {
    ensure_venv
    log "installing nx-27017==$NX_VERSION into ${VENV#"$ROOT"/}"
    venv_pip_install "nx-27017==$NX_VERSION"
    # pymongo is a dependency of nx-27017 and is what the readiness check uses.
    if ! "$VENV_PY" -c 'import pymongo' >/dev/null 2>&1; then
        venv_pip_install pymongo
    fi
    [[ -x "$NX_BIN" ]] || die "$NX_BIN missing after installation"
    rm -f "$VENV"/.installed-nx-27017-*
    touch "$NX_MARKER"
}

install_aiosmtpd() {
    ensure_venv
    log "installing aiosmtpd==$AIOSMTPD_VERSION into ${VENV#"$ROOT"/}"
    venv_pip_install "aiosmtpd==$AIOSMTPD_VERSION"
    [[ -x "$AIOSMTPD_BIN" ]] || die "$AIOSMTPD_BIN missing after installation"
    rm -f "$VENV"/.installed-aiosmtpd-*
    touch "$AIOSMTPD_MARKER"
}

# ---------------------------------------------------------------------------
# Readiness checks: each one is a real round trip through the service's own
# protocol, not just a TCP connect.
# ---------------------------------------------------------------------------
redis_ping() {
    [[ "$(timeout 5 "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]
}

# As the application user over TCP, inside the application database.
mariadb_app_ok() {
    MYSQL_PWD="$APP_PASSWORD" timeout 10 "$MARIADB" --no-defaults --protocol=TCP -h127.0.0.1 -P"$MYSQL_PORT" \
        -u"$APP_USER" -N -B -e 'SELECT 1' "$DB_NAME" >/dev/null 2>&1
}

# Administrative access over the unix socket: mariadb-install-db gives the OS
# user that ran it passwordless socket authentication.
mariadb_admin() {
    timeout 30 "$MARIADB" --no-defaults --socket="$MYSQL_SOCK" -u"$(id -un)" -N -B "$@"
}

mariadb_admin_ok() {
    mariadb_admin -e 'SELECT 1' >/dev/null 2>&1
}

MONGO_PING_PY='
import sys
from pymongo import MongoClient
client = MongoClient("127.0.0.1", int(sys.argv[1]), directConnection=True,
                     serverSelectionTimeoutMS=2000, connectTimeoutMS=2000,
                     socketTimeoutMS=5000)
try:
    ok = client.admin.command("ping").get("ok")
finally:
    client.close()
sys.exit(0 if ok == 1 else 1)
'

mongo_ping() {
    [[ -x "$VENV_PY" ]] || return 1
    timeout 10 "$VENV_PY" -c "$MONGO_PING_PY" "$MONGO_PORT" >/dev/null 2>&1
}

# A full SMTP exchange (greeting, EHLO, NOOP, QUIT) with the standard
# library's client, the same dialogue the app's mailer starts with.
SMTP_PING_PY='
import smtplib, sys
# local_hostname spares the client a reverse DNS lookup of this machine.
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="localhost", timeout=5) as smtp:
    ehlo = smtp.ehlo()[0]
    noop = smtp.noop()[0]
sys.exit(0 if ehlo == 250 and noop == 250 else 1)
'

smtp_ping() {
    [[ -x "$VENV_PY" ]] || return 1
    timeout 10 "$VENV_PY" -c "$SMTP_PING_PY" "$SMTP_PORT" >/dev/null 2>&1
}

service_ping() {
    case "$1" in
        redis) redis_ping ;;
        mariadb) mariadb_app_ok ;;
        mongo) mongo_ping ;;
        smtp) smtp_ping ;;
    esac
}

# ---------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------

# Common preamble for starting NAME. Sets START_STATE to "running" (already
# up and answering: nothing to do), "repair" (MariaDB answers but the app
# database/user is missing) or "start" (stale state cleared, port free).
START_STATE=""
prepare_start() {
    local name="$1" port pid
    port="$(service_port "$name")"
    pid="$(running_pid "$name")"
    if [[ -n "$pid" ]]; then
        local attempt
        for attempt in now later; do
            if [[ "$attempt" == "later" ]]; then
                # Possibly still starting up (e.g. a concurrent `up`): give it time.
                wait_ready "$pid" service_ping "$name" || true
            fi
            if service_ping "$name"; then
                log "$name: already running on 127.0.0.1:$port (pid $pid)"
                START_STATE="running"
                return 0
            fi
            if [[ "$name" == "mariadb" ]] && mariadb_admin_ok; then
                START_STATE="repair"
                return 0
            fi
        done
        fail_service "$name" "running as pid $pid but not answering on port $port"
    fi
    rm -f "$(pid_file "$name")"
    if port_in_use "$port"; then
        local holder
        holder="$(port_holder "$port")"
        die "$name: port $port is already in use${holder:+ by $holder}; stop that process or set $(service_env "$name") to use it"
    fi
    mkdir -p "$LOG_DIR" "$PID_DIR"
    rotate_log "$(log_file "$name")"
    START_STATE="start"
}

up_redis() {
    local pid logf
    prepare_start redis
    [[ "$START_STATE" == "start" ]] || return 0
    logf="$(log_file redis)"
    local persistence=(--appendonly yes)
    if [[ "$PROFILE" == "test" ]]; then
        # Tests want a blank, fast Redis: no snapshot, no AOF, no leftovers.
        rm -rf "$REDIS_DIR"
        persistence=(--save '' --appendonly no)
    fi
    mkdir -p "$REDIS_DIR"
    log "redis: starting on 127.0.0.1:$REDIS_PORT"
    # Foreground mode under our own detaching (rather than --daemonize) gives
    # us its pid immediately, so a failed start is noticed at once.
    pid="$(spawn "$logf" "$REDIS_SERVER" --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
        --dir "$REDIS_DIR" --pidfile "$(pid_file redis)" --daemonize no "${persistence[@]}")"
    wait_started redis "$pid" "did not answer PING" redis_ping
    echo "$pid" >"$(pid_file redis)"
    log "redis: up on 127.0.0.1:$REDIS_PORT (pid $pid)"
}

# Creates the application database and user; every statement is idempotent so
# this can run on each start and repairs a partially initialised instance.
mariadb_setup() {
    local host users="" sql
    for host in 127.0.0.1 localhost %; do
        users+="${users:+, }'$APP_USER'@'$host'"
    done
    sql="CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    for host in 127.0.0.1 localhost %; do
        sql+=" CREATE USER IF NOT EXISTS '$APP_USER'@'$host' IDENTIFIED BY '$APP_PASSWORD';"
    done
    sql+=" GRANT ALL PRIVILEGES ON $GRANT_ON TO $users; FLUSH PRIVILEGES;"
    mariadb_admin -e "$sql"
}

up_mariadb() {
    local pid logf
    prepare_start mariadb
    if [[ "$START_STATE" == "running" ]]; then
        return 0
    elif [[ "$START_STATE" == "repair" ]]; then
        # Running, but the app database/user is gone: recreate them.
        log "mariadb: (re)creating database $DB_NAME and user $APP_USER"
        mariadb_setup >/dev/null || fail_service mariadb "creating database/user failed"
        mariadb_app_ok || fail_service mariadb "user $APP_USER cannot connect to $DB_NAME"
        return 0
    fi
    logf="$(log_file mariadb)"
    if [[ "$PROFILE" == "test" ]]; then
        # Each test run starts from an empty server.
        rm -rf "$MYSQL_DIR"
    fi
    local as_user=()
    if [[ "$(id -u)" -eq 0 ]]; then
        # mariadbd refuses to run as root unless told to explicitly.
        as_user=(--user=root)
    fi
    if [[ ! -d "$MYSQL_DIR/mysql" ]]; then
        log "mariadb: initialising data directory ${MYSQL_DIR#"$ROOT"/}"
        rm -rf "$MYSQL_DIR"
        mkdir -p "$MYSQL_DIR"
        # Its chatty output goes to a log of its own, keeping the server log's
        # tail (shown on failure) about the server.
        local install_log="$LOG_DIR/mariadb-install-db.log"
        if ! "$MARIADB_INSTALL_DB" --no-defaults --datadir="$MYSQL_DIR" "${as_user[@]}" \
            --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve \
            >"$install_log" 2>&1 9>&-; then
            log "---- last 30 lines of $install_log ----"
            tail -n 30 "$install_log" >&2
            fail_service mariadb "mariadb-install-db failed"
        fi
    fi
    mkdir -p "$(dirname "$MYSQL_SOCK")"
    local extra=()
    if [[ "$PROFILE" == "test" ]]; then
        # Throwaway data: trade durability for speed, and allow the many
        # connection pools a parallel test run opens.
        extra=(--innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --max-connections=1000)
    elif [[ "$PROFILE" != "run" ]]; then
        # Several server processes, each with its own pool.
        extra=(--max-connections=1000)
    fi
    log "mariadb: starting on 127.0.0.1:$MYSQL_PORT"
    # --no-defaults keeps the system /etc/mysql config (datadir, socket,
    # pid file of the distribution's own instance) out of the picture.
    pid="$(spawn "$logf" "$MARIADBD" --no-defaults "${as_user[@]}" --datadir="$MYSQL_DIR" \
        --port="$MYSQL_PORT" --bind-address=127.0.0.1 --socket="$MYSQL_SOCK" --skip-name-resolve \
        --pid-file="$(pid_file mariadb)" --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        "${extra[@]}")"
    wait_started mariadb "$pid" "did not accept connections" mariadb_admin_ok
    mariadb_setup >/dev/null 2>>"$logf" || fail_service mariadb "creating database/user failed"
    wait_started mariadb "$pid" "user $APP_USER could not query $DB_NAME" mariadb_app_ok
    echo "$pid" >"$(pid_file mariadb)"
    log "mariadb: up on 127.0.0.1:$MYSQL_PORT (pid $pid, database $DB_NAME, user $APP_USER/$APP_PASSWORD)"
}

up_mongo() {
    local pid logf
    prepare_start mongo
    [[ "$START_STATE" == "start" ]] || return 0
    logf="$(log_file mongo)"
    if [[ "$MONGO_DATA" != "memory" ]]; then
        mkdir -p "$MONGO_DATA"
    fi
    log "mongo: starting nx-27017 on 127.0.0.1:$MONGO_PORT (data: ${MONGO_DATA#"$ROOT"/})"
    # Run in the foreground under our own detaching rather than with -d: its
    # daemon mode reports success before binding the port. It writes the pid
    # file itself (and refuses to start if that file names a live process, so
    # we must not pre-create it). Its console output already carries every
    # log line and any traceback, hence --log-file /dev/null.
    pid="$(spawn "$logf" "$NX_BIN" --host 127.0.0.1 -p "$MONGO_PORT" --data-dir "$MONGO_DATA" \
        --pid-file "$(pid_file mongo)" --log-file /dev/null)"
    wait_started mongo "$pid" "did not answer a MongoDB ping" mongo_ping
    echo "$pid" >"$(pid_file mongo)"
    log "mongo: up on 127.0.0.1:$MONGO_PORT (pid $pid)"
}

up_smtp() {
    local pid logf
    prepare_start smtp
    [[ "$START_STATE" == "start" ]] || return 0
    logf="$(log_file smtp)"
    if [[ "$PROFILE" == "test" ]]; then
        # Tests look for the mail they caused; leftovers of earlier runs
        # would only confuse them.
        rm -rf "$MAIL_DIR"
    fi
    # Python's mailbox module creates only a missing Maildir, not the
    # subfolders of an existing one, and tests may start watching new/ as
    # soon as we return.
    mkdir -p "$MAIL_DIR/cur" "$MAIL_DIR/new" "$MAIL_DIR/tmp"
    log "smtp: starting aiosmtpd on 127.0.0.1:$SMTP_PORT (mail: ${MAIL_DIR#"$ROOT"/}/new)"
    # -n: don't try to switch to user nobody (it would fail as a regular user
    # and, as root, leave the Maildir unwritable). -u: accept SMTPUTF8 so
    # non-ASCII addresses can be tested. -d: log the SMTP dialogue, so a test
    # that got no mail can tell whether the app connected at all. The Mailbox
    # handler stores each message as its own file in the Maildir. aiosmtpd
    # has no pid file option; the pid comes from spawn.
    pid="$(spawn "$logf" "$VENV_PY" -m aiosmtpd -n -u -d -l "127.0.0.1:$SMTP_PORT" \
        -c aiosmtpd.handlers.Mailbox "$MAIL_DIR")"
    wait_started smtp "$pid" "did not answer an SMTP EHLO/NOOP" smtp_ping
    echo "$pid" >"$(pid_file smtp)"
    log "smtp: up on 127.0.0.1:$SMTP_PORT (pid $pid)"
}

# ---------------------------------------------------------------------------
# down / status
# ---------------------------------------------------------------------------
down_service() {
    local name="$1" pid grace=20
    pid="$(running_pid "$name")"
    if [[ -z "$pid" ]]; then
        rm -f "$(pid_file "$name")"
        log "$name: not running"
        return 0
    fi
    # InnoDB may need a while to flush on shutdown.
    [[ "$name" == "mariadb" ]] && grace=120
    log "$name: stopping pid $pid"
    stop_pid "$name" "$pid" "$grace"
    rm -f "$(pid_file "$name")"
    log "$name: stopped"
}

status_service() {
    local name="$1" port pid var
    port="$(service_port "$name")"
    if is_skipped "$name"; then
        var="$(service_env "$name")"
        printf '%-8s %-8s %s\n' "$name" "skipped" "($var is set)"
        return 0
    fi
    pid="$(running_pid "$name")"
    if [[ -z "$pid" ]]; then
        printf '%-8s %-8s 127.0.0.1:%s\n' "$name" "down" "$port"
        return 1
    fi
    if service_ping "$name"; then
        printf '%-8s %-8s 127.0.0.1:%s  pid %s\n' "$name" "up" "$port" "$pid"
        return 0
    fi
    printf '%-8s %-8s 127.0.0.1:%s  pid %s (process alive, not answering)\n' "$name" "stuck" "$port" "$pid"
    return 1
}

# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

# Tools needed by the readiness checks, resolved even for status/down.
REDIS_CLI="$(find_bin redis-cli || echo redis-cli)"
MARIADB="$(find_bin mariadb mysql || echo mariadb)"

case "$ACTION" in
    up | down | reset)
        mkdir -p "$BASE"
        # One up/down at a time per profile. Every daemon is started with fd 9
        # closed so none of them keeps this lock.
        exec 9>"$BASE/.services.lock"
        flock -w 300 9 || die "another scripts/services.sh is still running for the $PROFILE profile"
        ;;
esac

cd "$ROOT"
start_time=$SECONDS
up_services() {
    log "services ($PROFILE profile): up"
    for svc in "${SERVICES[@]}"; do
        if is_skipped "$svc"; then
            log "$svc: skipped, $(service_env "$svc") is set (using your own instance)"
            continue
        fi
        case "$svc" in
            redis) ensure_redis_installed; up_redis ;;
            mariadb) ensure_mariadb_installed; up_mariadb ;;
            mongo) ensure_nx_installed; up_mongo ;;
            smtp) ensure_aiosmtpd_installed; up_smtp ;;
        esac
    done
    log "services ($PROFILE profile): ready in $((SECONDS - start_time))s"
}

down_services() {
    log "services ($PROFILE profile): down"
    for svc in "${SERVICES[@]}"; do
        if is_skipped "$svc"; then
            log "$svc: skipped, $(service_env "$svc") is set (using your own instance)"
            continue
        fi
        down_service "$svc"
    done
}

# Data directory of SERVICE, deleted by `reset`.
service_data() {
    case "$1" in
        redis) echo "$REDIS_DIR" ;;
        mariadb) echo "$MYSQL_DIR" ;;
        mongo) [[ "$MONGO_DATA" == "memory" ]] || echo "$MONGO_DATA" ;;
        smtp) echo "$MAIL_DIR" ;;
    esac
}

case "$ACTION" in
    up) up_services ;;
    down) down_services ;;
    reset)
        [[ "$PROFILE" != "run" ]] || die "reset deletes data; it is only for the test, bench and chaos profiles"
        down_services
        for svc in "${SERVICES[@]}"; do
            is_skipped "$svc" || rm -rf "$(service_data "$svc")"
        done
        up_services
        ;;
    status)
        all_up=0
        for svc in "${SERVICES[@]}"; do
            status_service "$svc" || all_up=3
        done
        exit "$all_up"
        ;;
esac
