#!/usr/bin/env bash
# Fault and soak runs against real processes on loopback: every fault of `loadgen chaos`
# (a server process SIGKILLed or SIGTERMed, Redis restarted or wiped, MongoDB or MariaDB
# stopped) under steady 1:1 and group traffic, each followed by the exactly-once checks,
# then `loadgen soak` (many connections on one process, RSS sampled). The services are the
# `chaos` profile of scripts/services.sh, reset at the start and stopped at the end.
#
#   scripts/chaos.sh [--small] [FAULT...]
#
# FAULT is one of kill-node, redis-restart, redis-flush, mongo-stop, mysql-stop, sigterm
# (default: all of them, then the soak; naming faults skips the soak).
#
#   --small   debug build, few clients, short phases (about 3 minutes; run by the test
#             suite). Results go to var/chaos-small/ only.
#   (default) release build, the full sizes (100 clients per fault, each fault on freshly reset
#             services; 5,000 soak connections for 5 minutes, about 30 minutes in all). Results
#             go to var/chaos/results/ and into the figures sections of docs/reliability.md.
#
# Exits non-zero when any fault or the soak finds a violation (a lost or duplicated message, a
# server that does not recover, ...). See docs/reliability.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf 'chaos.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

SMALL=0
FAULTS=()
while (($# > 0)); do
    case "$1" in
        --small) SMALL=1 ;;
        kill-node | redis-restart | redis-flush | mongo-stop | mysql-stop | sigterm) FAULTS+=("$1") ;;
        -h | --help)
            sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

# The harness starts every service itself; a URL pointing elsewhere would make services.sh
# skip a service that the faults then could not stop.
for var in CHAT__REDIS__URL CHAT__MYSQL__URL CHAT__MONGODB__URI CHAT__MAIL__SMTP_URL; do
    [[ -z "${!var:-}" ]] || die "$var is set; the fault runs need the chaos profile's own services"
done

if ((SMALL)); then
    SIZE=small
    PROFILE_DIR=debug
    BUILD_FLAGS=()
    OUT="$ROOT/var/chaos-small"
    DOC_ARGS=()
    SOAK_ARGS=(--connections 50 --duration-secs 10 --rate 20)
    CHAOS_ARGS=()
else
    SIZE=full
    PROFILE_DIR=release
    BUILD_FLAGS=(--release)
    OUT="$ROOT/var/chaos/results"
    DOC_ARGS=(--doc "$ROOT/docs/reliability.md")
    SOAK_ARGS=(--connections 5000 --duration-secs 300 --rate 200)
    # The local MongoDB stand-in slows down as it fills: every fault starts from empty services.
    CHAOS_ARGS=(--reset-between)
fi

# Thousands of sockets on both ends of loopback: raise the soft limit as far as allowed.
hard="$(ulimit -Hn)"
if [[ "$hard" == "unlimited" ]]; then
    hard=1048576
fi
ulimit -n "$hard" 2>/dev/null || log "could not raise the open-files limit (now $(ulimit -n))"
if ((!SMALL)) && (($(ulimit -n) < 12000)); then
    log "warning: open-files limit $(ulimit -n) is low for 5,000 soak connections"
fi

stop_services() {
    "$ROOT/scripts/services.sh" --profile chaos down >/dev/null 2>&1 || log "stopping the chaos services failed"
}
trap stop_services EXIT

started=$SECONDS
"$ROOT/scripts/services.sh" --profile chaos reset

cargo_flags=("${BUILD_FLAGS[@]}")
if [[ -f Cargo.lock ]]; then
    cargo_flags+=(--locked)
fi
cargo build "${cargo_flags[@]}" -p chat-server -p chat-loadgen

LOADGEN="$ROOT/target/$PROFILE_DIR/loadgen"
SERVER="$ROOT/target/$PROFILE_DIR/chat-server"
rm -rf "$OUT"
mkdir -p "$OUT"

fault_args=()
for fault in "${FAULTS[@]}"; do
    fault_args+=(--fault "$fault")
done

status=0
"$LOADGEN" chaos --size "$SIZE" --server-bin "$SERVER" --out "$OUT" "${DOC_ARGS[@]}" "${CHAOS_ARGS[@]}" \
    "${fault_args[@]}" || status=$?
if ((${#FAULTS[@]} == 0)); then
    if ((!SMALL)); then
        "$ROOT/scripts/services.sh" --profile chaos reset
    fi
    "$LOADGEN" soak --server-bin "$SERVER" --out "$OUT" "${DOC_ARGS[@]}" "${SOAK_ARGS[@]}" || status=$?
fi

log "results in ${OUT#"$ROOT"/}/ ($((SECONDS - started)) s in all)"
if ((status != 0)); then
    die "violations found (exit status $status); see ${OUT#"$ROOT"/}/"
fi
log "every fault passed"
