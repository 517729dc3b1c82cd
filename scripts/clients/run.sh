#!/usr/bin/env bash
# Runs every client against real servers: the Postman collection under newman, the WebSocket
# scenarios (scripts/ws/scenarios.py, plus their anti-spam run against a second server with a low
# rate limit) and, when tests/e2e/chat.e2e.mjs exists, the browser end-to-end test.
#
#   scripts/clients/run.sh
#
# Before that it makes sure the tools are there: node and npm (not installed here: install
# Node.js 18+ first), `npm ci` in scripts/clients when node_modules is missing or
# package-lock.json changed since the last install, the pinned `websockets` in .tools/venv, the
# test services (scripts/services.sh --test up when any is down) and target/debug/chat-server
# (`cargo build`, which does nothing when the binary is up to date: the page is compiled in).
#
# Servers (scripts/clients/start-server.sh, stopped again on exit, also on Ctrl-C or failure):
#   run           newman and the scenarios; per-IP login/registration limits raised, because
#                 both register users from 127.0.0.1 within the same minute
#   run-antispam  scenarios.py --expect-antispam, with CHAT__ANTISPAM__RATE_LIMIT=3
# Every server gets a random metrics.token (CHAT__METRICS__TOKEN, exported, so scenarios.py sends
# it too); newman gets it as metricsToken and checks that /metrics refuses a request without it.
# The end-to-end test starts and stops its own servers through start-server.sh (its own NAMEs);
# it gets CHAT_E2E_START=scripts/clients/start-server.sh (and CHAT_E2E_STOP) in its environment.
#
# Full outputs are kept in var/test/clients/logs/; the terminal gets summaries. Exits non-zero
# when any step failed, after listing which.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLIENTS="$ROOT/scripts/clients"
VENV="$ROOT/.tools/venv"
VENV_PY="$VENV/bin/python"
LOGS="$ROOT/var/test/clients/logs"
SERVERS=()
RESULTS=()
FAILED=0

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' D=$'\033[2m' N=$'\033[0m'
else
    B="" G="" R="" D="" N=""
fi

say() { printf '%s\n' "$*"; }
header() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
die() {
    printf '%serror:%s %s\n' "$R" "$N" "$*" >&2
    exit 1
}
record() { # record NAME STATUS
    if [[ "$2" == 0 ]]; then
        RESULTS+=("${G}passed${N}  $1")
    else
        RESULTS+=("${R}FAILED${N}  $1 (exit $2)")
        FAILED=1
    fi
}

cleanup() {
    local name
    for name in "${SERVERS[@]}"; do
        "$CLIENTS/stop-server.sh" "$name" 2>&1 | sed "s/^/${D}/; s/\$/${N}/"
    done
    SERVERS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

cd "$ROOT" || exit 1
mkdir -p "$LOGS" "$ROOT/var/test/clients/.locks"

# One run at a time: the server NAMEs below are fixed.
exec 8>"$ROOT/var/test/clients/.locks/run.sh.lock"
flock -n 8 || die "another scripts/clients/run.sh is running"

# ---------------------------------------------------------------------------------------------
header "tools"
# Debian's packages for what the clients need: Node.js for newman and Playwright, Chromium
# (Playwright drives the system browser; it cannot download its own here).
apt_missing=()
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_missing+=(npm)
[[ -x /usr/bin/chromium ]] || apt_missing+=(chromium fonts-dejavu-core)
if ((${#apt_missing[@]} > 0)); then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing ${apt_missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        { apt-get update -qq && apt-get install -y -qq "${apt_missing[@]}"; } >"$LOGS/apt.log" 2>&1 ||
            die "apt-get install ${apt_missing[*]} failed (see $LOGS/apt.log)"
    else
        die "missing: ${apt_missing[*]} (install them: sudo apt-get install -y ${apt_missing[*]})"
    fi
fi
command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 18 or newer is needed)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 18)) || die "node $(node --version) is too old: 18 or newer is needed"
say "node $(node --version), npm $(npm --version 2>/dev/null)"

lock_sum="$(sha256sum "$CLIENTS/package-lock.json" | cut -d' ' -f1)"
stamp="$CLIENTS/node_modules/.installed-package-lock.sha256"
if [[ ! -d "$CLIENTS/node_modules" || ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
    say "npm ci in scripts/clients"
    (cd "$CLIENTS" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    echo "$lock_sum" >"$stamp"
fi
say "newman $(cd "$CLIENTS" && node -p 'require("newman/package.json").version'), playwright-core $(cd "$CLIENTS" && node -p 'require("playwright-core/package.json").version')"

if [[ ! -x "$VENV_PY" ]]; then
    say "creating the Python venv .tools/venv"
    python3 -m venv "$VENV" || die "could not create $VENV"
fi
ws_pin="$(sed -n 's/^websockets==//p' "$ROOT/scripts/ws/requirements.txt")"
if [[ "$("$VENV_PY" -c 'import websockets; print(websockets.__version__)' 2>/dev/null)" != "$ws_pin" ]]; then
    say "installing websockets==$ws_pin into .tools/venv"
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/scripts/ws/requirements.txt" ||
        die "pip install failed"
fi
say "python $("$VENV_PY" -c 'import platform; print(platform.python_version())'), websockets $ws_pin"

if ! "$ROOT/scripts/services.sh" --test status >/dev/null 2>&1; then
    say "starting the test services"
    "$ROOT/scripts/services.sh" --test up || die "the test services did not come up"
fi
say "test services up"

# Always: the page is compiled into the binary, and an up-to-date build costs a second.
cargo build --quiet || die "cargo build failed"
say "server binary target/debug/chat-server ($(date -r "$ROOT/target/debug/chat-server" '+%F %T'))"

# ---------------------------------------------------------------------------------------------
start_server() { # start_server NAME [ENV=VALUE...]
    local name="$1"
    shift
    SERVERS+=("$name")
    env "$@" "$CLIENTS/start-server.sh" "$name" 2>&1 >/dev/null | sed "s/^/${D}/; s/\$/${N}/"
    [[ -s "$ROOT/var/test/clients/$name/url" ]]
}

# The failures (if any) and the `N passed, M failed` line of a scenarios.py log; the whole log
# when it ended without that line (a crash).
show_scenarios() {
    if grep -q '^failures:' "$1"; then
        sed -n '/^failures:/,$p' "$1"
    elif grep -q ' passed, [0-9]* failed$' "$1"; then
        tail -n 1 "$1"
    else
        tail -n 30 "$1"
    fi
}

header "server"
CHAT__METRICS__TOKEN="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export CHAT__METRICS__TOKEN
if ! start_server run CHAT__AUTH__REGISTER_PER_IP_PER_MINUTE=1000 CHAT__AUTH__LOGIN_PER_IP_PER_MINUTE=1000; then
    record "server start (see var/test/clients/run/server.log)" 1
    URL=""
else
    URL="$(cat "$ROOT/var/test/clients/run/url")"
fi

if [[ -n "$URL" ]]; then
    # The collection speaks HTTP only: a message to pin and find is sent over the WebSocket
    # first (scripts/ws/seed.py prints seedUserName=..., seedMessageId=... for --env-var).
    seed_vars=()
    if seed_out="$("$VENV_PY" "$ROOT/scripts/ws/seed.py" --url "$URL" 2>"$LOGS/seed.log")"; then
        while IFS= read -r line; do
            [[ -n "$line" ]] && seed_vars+=(--env-var "$line")
        done <<<"$seed_out"
    else
        tail -n 5 "$LOGS/seed.log"
        record "seed for newman (scripts/ws/seed.py, see var/test/clients/logs/seed.log)" 1
    fi
    header "newman: scripts/postman/chat-server.postman_collection.json"
    (cd "$CLIENTS" && npx --no-install newman run ../postman/chat-server.postman_collection.json \
        -e ../postman/chat-server.postman_environment.json --env-var "baseUrl=$URL" \
        --env-var "metricsToken=$CHAT__METRICS__TOKEN" "${seed_vars[@]}" --bail \
        -r cli --reporter-cli-no-success-assertions --color off) >"$LOGS/newman.log" 2>&1
    status=$?
    # The summary table and the failure details; every request is in the log.
    sed -n '/^┌/,$p' "$LOGS/newman.log"
    if [[ $status != 0 ]] && ! grep -q '^┌' "$LOGS/newman.log"; then tail -n 20 "$LOGS/newman.log"; fi
    say "${D}full output: var/test/clients/logs/newman.log${N}"
    record "newman (Postman collection)" "$status"

    header "WebSocket scenarios: scripts/ws/scenarios.py"
    "$VENV_PY" "$ROOT/scripts/ws/scenarios.py" --url "$URL" >"$LOGS/scenarios.log" 2>&1
    status=$?
    show_scenarios "$LOGS/scenarios.log"
    say "${D}full output: var/test/clients/logs/scenarios.log${N}"
    record "WebSocket scenarios" "$status"
else
    record "newman (no server)" 1
    record "WebSocket scenarios (no server)" 1
fi

header "WebSocket scenarios --expect-antispam (CHAT__ANTISPAM__RATE_LIMIT=3)"
if start_server run-antispam CHAT__ANTISPAM__RATE_LIMIT=3; then
    "$VENV_PY" "$ROOT/scripts/ws/scenarios.py" --url "$(cat "$ROOT/var/test/clients/run-antispam/url")" \
        --expect-antispam >"$LOGS/scenarios-antispam.log" 2>&1
    status=$?
    show_scenarios "$LOGS/scenarios-antispam.log"
    say "${D}full output: var/test/clients/logs/scenarios-antispam.log${N}"
    record "WebSocket scenarios --expect-antispam" "$status"
else
    record "server start for --expect-antispam (see var/test/clients/run-antispam/server.log)" 1
fi
cleanup # the end-to-end test starts its own servers

# ---------------------------------------------------------------------------------------------
if [[ -f "$ROOT/tests/e2e/chat.e2e.mjs" ]]; then
    header "browser end-to-end test: node tests/e2e/chat.e2e.mjs"
    CHAT_E2E_START=scripts/clients/start-server.sh CHAT_E2E_STOP=scripts/clients/stop-server.sh \
        NODE_PATH="$CLIENTS/node_modules${NODE_PATH:+:$NODE_PATH}" \
        node tests/e2e/chat.e2e.mjs 2>&1 | tee "$LOGS/e2e.log"
    status=${PIPESTATUS[0]}
    say "${D}full output: var/test/clients/logs/e2e.log${N}"
    record "browser end-to-end test" "$status"
else
    say
    say "${D}(no tests/e2e/chat.e2e.mjs: browser end-to-end test skipped)${N}"
fi

# ---------------------------------------------------------------------------------------------
header "summary"
for line in "${RESULTS[@]}"; do say "  $line"; done
if ((FAILED)); then
    say "${R}some client checks failed${N}"
    exit 1
fi
say "${G}all client checks passed${N}"
