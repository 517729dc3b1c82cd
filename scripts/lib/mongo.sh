# shellcheck shell=bash
# The MongoDB wire-protocol server (nx-27017, pinned, in the tools venv) for
# scripts/services.sh: installation, the readiness check (a ping through
# pymongo) and start-up.

# nx-27017 is pinned exactly: its wire-protocol coverage changes between
# releases and the test suite depends on the behaviour of this one.
NX_VERSION="0.8.1"
NX_BIN="$VENV/bin/nx-27017"
# The marker records which pinned version the venv holds, so later runs can
# skip pip entirely and a change of pin triggers a reinstall.
NX_MARKER="$VENV/.installed-nx-27017-$NX_VERSION"

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

nx_installed() {
    [[ -f "$NX_MARKER" && -x "$NX_BIN" ]] && venv_runs
}

ensure_nx_installed() { venv_install nx_installed install_nx; }

install_nx() {
    ensure_venv
    log "installing nx-27017==$NX_VERSION into ${VENV#"$ROOT"/}"
    venv_pip_install "nx-27017==$NX_VERSION"
    # pymongo is a dependency of nx-27017 and is what the readiness check uses.
    if ! "$VENV_PY" -c 'import pymongo' >/dev/null 2>&1; then
        venv_pip_install pymongo
    fi
    mark_installed nx-27017 "$NX_BIN" "$NX_MARKER"
}

mongo_ping() { venv_ping "$MONGO_PING_PY" "$MONGO_PORT"; }

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
