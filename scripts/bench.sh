#!/usr/bin/env bash
# Benchmarks chat-server with the load generator in bench/ (`loadgen bench`): 1:1 throughput,
# latency at fixed rates, group fan-out, idle connections and two processes, each compared in
# the same run with what bounds it (the storage limit, the bare relay). The services are the
# `bench` profile of scripts/services.sh, reset at the start and stopped at the end.
#
#   scripts/bench.sh [--tiny] [SCENARIO...]
#
# SCENARIO is one of throughput, latency, fanout, idle, two-processes (default: all).
#
#   (default) release build, full sizes (about 12 minutes); writes docs/benchmarks.md,
#             images/bench-*.png and the headline table in README.md, plus the JSON result
#             in var/bench/. With SCENARIOs named, everything goes to var/bench/ only.
#   --tiny    debug build, a few clients and messages, every scenario once (under two
#             minutes; part of the test suite). Results go to var/bench-tiny/ only. Exits
#             non-zero when an exactly-once check fails or a scenario errors.
#
# A missed performance target is reported in the document, not an error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf 'bench.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

TINY=0
SCENARIOS=()
while (($# > 0)); do
    case "$1" in
        --tiny) TINY=1 ;;
        throughput | latency | fanout | idle | two-processes) SCENARIOS+=("$1") ;;
        -h | --help)
            sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

# The run resets and stops the bench profile's own services; a URL pointing elsewhere would
# make services.sh skip one while the load generator still used the profile's address.
for var in CHAT__REDIS__URL CHAT__MYSQL__URL CHAT__MONGODB__URI CHAT__MAIL__SMTP_URL; do
    [[ -z "${!var:-}" ]] || die "$var is set; the benchmark uses the bench profile's own services"
done

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

# 10,000 idle connections need as many descriptors in the server and in the load generator
# (each process has its own limit); raise it as far as the hard limit allows.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
log "open files limit: $(ulimit -n)"

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
cargo build "${BUILD_FLAGS[@]}" --locked -p chat-server -p chat-loadgen
# Run private copies: the shared target directory may be rebuilt while the run goes on.
BIN="var/bench-bin/$PROFILE_DIR"
mkdir -p "$BIN"
cp -f "target/$PROFILE_DIR/loadgen" "target/$PROFILE_DIR/chat-server" "$BIN/"

stop_services() { "$ROOT/scripts/services.sh" --profile bench down >/dev/null 2>&1 || true; }
trap stop_services EXIT
trap 'exit 130' INT TERM HUP

# A fresh profile. mariadb-install-db can trip over another profile initialising at the same
# moment (shared temporary tables); one more attempt gets past that.
if ! "$ROOT/scripts/services.sh" --profile bench reset; then
    log "service reset failed; trying once more"
    sleep 2
    "$ROOT/scripts/services.sh" --profile bench reset
fi

start=$SECONDS
"$BIN/loadgen" bench --server-bin "$BIN/chat-server" \
    --pids-dir var/bench/pids "${BENCH_ARGS[@]}" "${SCENARIOS[@]}"
log "done in $((SECONDS - start)) s"
