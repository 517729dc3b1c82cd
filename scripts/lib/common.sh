# shellcheck shell=bash
# What every service of scripts/services.sh shares: logging, the command line
# and the profiles (ports, data directories, the MariaDB socket), the
# per-service names (pid and log files, the "use my own instance" variables),
# process helpers (spawn, readiness waits, stop), installation helpers (apt,
# the tools venv), and the generic up/down/status steps. Sourced by
# scripts/services.sh once ROOT is set; apart from the constants below it
# defines functions only, which services.sh calls.
#
# The profile's settings and START_STATE are read by the per-service files.
# shellcheck disable=SC2034

# The venv the Python-based services (nx-27017, aiosmtpd) are installed into.
TOOLS_DIR="$ROOT/.tools"
VENV="$TOOLS_DIR/venv"
VENV_PY="$VENV/bin/python"

WAIT_SECS="${SERVICES_WAIT_SECS:-30}"

log() { printf '%s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    log "usage: scripts/services.sh [--test | --profile run|test|bench|chaos|cluster] up|down|status|reset [redis|mariadb|mongo|smtp ...]"
    exit 2
}

# ---------------------------------------------------------------------------
# Arguments and profile
# ---------------------------------------------------------------------------

# Reads the command line into PROFILE, ACTION and ONLY (the services named).
parse_args() {
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
}

# Sets the ports, directories and database settings of PROFILE, and SERVICES
# (the ones named on the command line, else all of them).
load_profile() {
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
    elif [[ "$PROFILE" == "cluster" ]]; then
        # Only a Redis Cluster (lib/redis_cluster.sh); MariaDB, MongoDB and SMTP
        # come from another profile.
        BASE="$ROOT/var/cluster"
        REDIS_PORT=7101
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
    [[ "$PROFILE" != "cluster" ]] || SERVICES=(redis)
    if ((${#ONLY[@]} > 0)); then
        SERVICES=("${ONLY[@]}")
    fi
}

service_port() {
    case "$1" in
        redis) echo "$REDIS_PORT" ;;
        redis-*) echo "${1#redis-}" ;;
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
        cd "$BASE" || exit
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

# True when the venv's interpreter still runs (it breaks when the base Python
# is removed or upgraded).
venv_runs() {
    "$VENV_PY" -c '' >/dev/null 2>&1
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
# Records that the venv holds package NAME at its pinned version (MARKER), once its
# entry point BIN exists; markers of other versions go.
mark_installed() {
    local name="$1" bin="$2" marker="$3"
    [[ -x "$bin" ]] || die "$bin missing after installation"
    rm -f "$VENV"/.installed-"$name"-*
    touch "$marker"
}

# A readiness check written in Python (SCRIPT, given PORT), run by the venv's interpreter.
venv_ping() {
    [[ -x "$VENV_PY" ]] || return 1
    timeout 10 "$VENV_PY" -c "$1" "$2" >/dev/null 2>&1
}

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

service_ping() {
    case "$1" in
        redis) redis_ping ;;
        redis-*) cluster_node_ping "${1#redis-}" ;;
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
# The actions, over every service of SERVICES
# ---------------------------------------------------------------------------
up_services() {
    log "services ($PROFILE profile): up"
    for svc in "${SERVICES[@]}"; do
        if is_skipped "$svc"; then
            log "$svc: skipped, $(service_env "$svc") is set (using your own instance)"
            continue
        fi
        case "$svc" in
            redis)
                ensure_redis_installed
                if [[ "$PROFILE" == "cluster" ]]; then up_redis_cluster; else up_redis; fi
                ;;
            mariadb) ensure_mariadb_installed; up_mariadb ;;
            mongo) ensure_nx_installed; up_mongo ;;
            smtp) ensure_aiosmtpd_installed; up_smtp ;;
        esac
    done
    # start_time: set by services.sh once it holds the profile's lock.
    # shellcheck disable=SC2154
    log "services ($PROFILE profile): ready in $((SECONDS - start_time))s"
}

down_services() {
    log "services ($PROFILE profile): down"
    for svc in "${SERVICES[@]}"; do
        if is_skipped "$svc"; then
            log "$svc: skipped, $(service_env "$svc") is set (using your own instance)"
            continue
        fi
        if [[ "$PROFILE" == "cluster" && "$svc" == "redis" ]]; then
            down_redis_cluster
        else
            down_service "$svc"
        fi
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

# `reset`: stops the services, deletes their data and starts them again.
wipe_and_restart() {
    [[ "$PROFILE" != "run" ]] || die "reset deletes data; it is only for the test, bench and chaos profiles"
    down_services
    for svc in "${SERVICES[@]}"; do
        is_skipped "$svc" || rm -rf "$(service_data "$svc")"
    done
    up_services
}

# `status`: one line per service; exits 0 when all are up, 3 otherwise.
status_services() {
    local all_up=0 svc
    for svc in "${SERVICES[@]}"; do
        if [[ "$PROFILE" == "cluster" && "$svc" == "redis" ]]; then
            status_redis_cluster || all_up=3
        else
            status_service "$svc" || all_up=3
        fi
    done
    exit "$all_up"
}
