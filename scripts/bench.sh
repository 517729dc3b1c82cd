#!/usr/bin/env bash
# Benchmarks chat-server with the load generator in bench/ (`loadgen bench`): 1:1 throughput,
# latency at fixed rates, group fan-out, idle connections, two processes and uploads, each
# compared in the same run with what bounds it (the storage limit, the bare relay, the raw
# GridFS writes). The services are the `bench` profile of scripts/services.sh, reset at the
# start and stopped at the end; the two-processes scenario runs once more with the servers in
# Redis Cluster mode on the cluster profile (reset at the start, stopped at the end).
#
#   scripts/bench.sh [--tiny] [SCENARIO...]
#
# SCENARIO is one of throughput, latency, fanout, idle, two-processes, uploads (default: all).
#
#   (default) release build, full sizes (about 12 minutes); writes docs/benchmarks.md,
#             images/bench-*.png and the headline table in README.md, plus the JSON result
#             in var/bench/. With SCENARIOs named, everything goes to var/bench/ only.
#   --tiny    debug build, a few clients and messages, every scenario once (under two
#             minutes; part of the test suite). Results go to var/bench-tiny/ only. Exits
#             non-zero when an exactly-once check fails or a scenario errors (an upload
#             refused, a downloaded file whose sha256 differs).
#
# With CARGO_TARGET_DIR set (e.g. a target directory shared between git worktrees), the
# compiled dependencies come from there and the binaries still land in this checkout's target/
# (scripts/lib/harness.sh, build_harness).
#
# A missed performance target is reported in the document, not an error.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
cd "$ROOT"
# shellcheck source=SCRIPTDIR/lib/harness.sh
source "$SCRIPT_DIR/lib/harness.sh"

harness_args --tiny "throughput latency fanout idle two-processes uploads" "$@"
TINY=$HARNESS_SMALL
SCENARIOS=("${HARNESS_PICKED[@]}")

require_own_services bench "the benchmark"

# The plots need a TrueType font (Debian's fonts-dejavu-core).
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
if [[ ! -f "$FONT" ]]; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing fonts-dejavu-core"
        mkdir -p var/log
        export DEBIAN_FRONTEND=noninteractive
        { apt-get update -qq && apt-get install -y -qq fonts-dejavu-core; } >var/log/bench-apt.log 2>&1 ||
            die "apt-get install fonts-dejavu-core failed (see var/log/bench-apt.log)"
    else
        die "missing $FONT (install it: sudo apt-get install -y fonts-dejavu-core)"
    fi
fi

# 10,000 idle connections need as many descriptors in the server and in the load generator.
raise_open_files

if ((TINY)); then
    PROFILE_DIR=debug
    BUILD_FLAGS=()
    BENCH_ARGS=(--size tiny)
else
    PROFILE_DIR=release
    BUILD_FLAGS=(--release)
    BENCH_ARGS=(--size full)
    if ((${#SCENARIOS[@]} == 0)); then
        BENCH_ARGS+=(--out-doc docs/benchmarks.md --images-dir images --readme README.md)
    fi
fi

# One run at a time: every run resets and stops the same services.
mkdir -p var/bench
exec 8>var/bench/.bench.lock
if ! flock -n 8; then
    log "another scripts/bench.sh is running; waiting for it"
    flock 8
fi

log "building ($PROFILE_DIR)"
build_harness "${BUILD_FLAGS[@]}"
# Run private copies: the shared target directory may be rebuilt while the run goes on.
BIN="var/bench-bin/$PROFILE_DIR"
mkdir -p "$BIN"
cp -f "target/$PROFILE_DIR/loadgen" "target/$PROFILE_DIR/chat-server" "$BIN/"

own_services bench

# The two-processes scenario also runs on a Redis Cluster (the cluster profile, reset here and
# stopped at the end), beside the single Redis.
wants_cluster=1
if ((${#SCENARIOS[@]} > 0)); then
    wants_cluster=0
    for scenario in "${SCENARIOS[@]}"; do
        [[ "$scenario" != "two-processes" ]] || wants_cluster=1
    done
fi
if ((wants_cluster)); then
    "$ROOT/scripts/services.sh" --profile cluster reset
    trap 'harness_stop_services; "$ROOT/scripts/services.sh" --profile cluster down >/dev/null 2>&1 || true' EXIT
    BENCH_ARGS+=(--cluster-seeds "redis://127.0.0.1:7101,redis://127.0.0.1:7102,redis://127.0.0.1:7103")
fi

start=$SECONDS
"$BIN/loadgen" bench --server-bin "$BIN/chat-server" \
    --pids-dir var/bench/pids "${BENCH_ARGS[@]}" "${SCENARIOS[@]}"
log "done in $((SECONDS - start)) s"
