#!/usr/bin/env bash
# Fault and soak runs against real processes on loopback: every fault of `loadgen chaos`
# (a server process SIGKILLed or SIGTERMed, Redis restarted or wiped, MongoDB or MariaDB
# stopped) under steady 1:1 and group traffic, each followed by the exactly-once checks,
# then `loadgen soak` (many connections on one process, RSS sampled). The services are the
# `chaos` profile of scripts/services.sh, reset at the start and stopped at the end.
#
#   scripts/chaos.sh [--small] [FAULT...]
#   scripts/chaos.sh --cluster [--small] [FAULT...]
#
# FAULT is one of kill-node, redis-restart, redis-flush, mongo-stop, mysql-stop, sigterm
# (default: all of them, then the soak; naming faults skips the soak).
#
#   --cluster the servers run in Redis Cluster mode on the cluster profile of
#             scripts/services.sh (3 masters + 3 replicas on 127.0.0.1:7101-7106, reset at
#             the start and stopped at the end), and the faults are cluster-failover (SIGKILL
#             the master with the most slots under load: its replica takes over, the node is
#             started again and must rejoin as a replica) and cluster-reshard (1000 slots moved
#             between masters with redis-cli --cluster reshard during traffic). No soak.
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

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
cd "$ROOT"
# shellcheck source=SCRIPTDIR/lib/harness.sh
source "$SCRIPT_DIR/lib/harness.sh"

CLUSTER=0
args=()
for arg in "$@"; do
    if [[ "$arg" == "--cluster" ]]; then
        CLUSTER=1
    else
        args+=("$arg")
    fi
done
if ((CLUSTER)); then
    harness_args --small "cluster-failover cluster-reshard" "${args[@]}"
else
    harness_args --small "kill-node redis-restart redis-flush mongo-stop mysql-stop sigterm" "${args[@]}"
fi
SMALL=$HARNESS_SMALL
FAULTS=("${HARNESS_PICKED[@]}")
if ((CLUSTER && ${#FAULTS[@]} == 0)); then
    FAULTS=(cluster-failover cluster-reshard)
fi

# The faults stop and restart the profile's services, which must be its own.
require_own_services chaos "the fault run"

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

raise_open_files
if ((!SMALL)) && (($(ulimit -n) < 12000)); then
    log "warning: open-files limit $(ulimit -n) is low for 5,000 soak connections"
fi

started=$SECONDS
own_services chaos
if ((CLUSTER)); then
    "$ROOT/scripts/services.sh" --profile cluster reset
    trap 'harness_stop_services; "$ROOT/scripts/services.sh" --profile cluster down >/dev/null 2>&1 || true' EXIT
    OUT="$OUT-cluster"
    DOC_ARGS=()
fi
build_harness "${BUILD_FLAGS[@]}"

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
if ((${#FAULTS[@]} == 0 && !CLUSTER)); then
    if ((!SMALL)); then
        reset_services
    fi
    "$LOADGEN" soak --server-bin "$SERVER" --out "$OUT" "${DOC_ARGS[@]}" "${SOAK_ARGS[@]}" || status=$?
fi

log "results in ${OUT#"$ROOT"/}/ ($((SECONDS - started)) s in all)"
if ((status != 0)); then
    die "violations found (exit status $status); see ${OUT#"$ROOT"/}/"
fi
log "every fault passed"
