#!/usr/bin/env bash
# Runs the whole test suite against the test-profile services of scripts/services.sh
# (isolated from the run profile, fresh data on each start): the layering check
# (scripts/check-layers.sh), `cargo test` (unit and
# integration tests of the server and the load generator), the server's integration tests
# again with the server in Redis Cluster mode (on the cluster profile of scripts/services.sh:
# 3 masters + 3 replicas on 127.0.0.1:7101-7106, reset first), then the clients against a fresh server (scripts/clients/run.sh: the
# Postman collection under newman, the WebSocket scenarios, and the browser end-to-end test
# in Chromium), then the small fault and soak run (scripts/chaos.sh --small, on the chaos
# profile's own services, stopped again at its end) and every benchmark scenario once at a tiny
# size with its exactly-once checks (scripts/bench.sh --tiny, on the bench profile's services,
# stopped again at its end). The tests read the service addresses from
# conf/test.toml, so no URLs are exported here. The test services are left running afterwards
# because reusing them makes the next run faster; `scripts/services.sh --test down` stops them.
#
#   scripts/test.sh                  everything
#   scripts/test.sh <cargo args>     only `cargo test <cargo args>`, e.g. a test name filter
#
# Exits non-zero when anything fails to build or pass.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

"$ROOT/scripts/services.sh" --test up

cd "$ROOT"
# The whole workspace: the server's tests and the load generator's own (its exactly-once
# ledger, the report tables, the shipped settings it reads).
locked=()
if [[ -f Cargo.lock ]]; then
    locked=(--locked)
fi
cargo_flags=("${locked[@]}" --workspace --all-targets)
if (($# > 0)); then
    exec cargo test "${cargo_flags[@]}" "$@"
fi

# The module layering (leaves import no upper layer, the edges stay apart, no circles).
"$ROOT/scripts/check-layers.sh"
cargo test "${cargo_flags[@]}"
# Everything that uses Redis, in cluster mode: sessions, delivery and its order, anti-spam,
# resume, cache invalidation, revocation (the whole integration suite; the tests reach Redis
# through tests/it/redis_support.rs in either mode).
# The cluster is stopped again afterwards, also when a test fails.
trap '"$ROOT/scripts/services.sh" --profile cluster down >/dev/null 2>&1 || true' EXIT
"$ROOT/scripts/services.sh" --profile cluster reset
CHAT__REDIS__MODE=cluster \
    CHAT__REDIS__URLS="redis://127.0.0.1:7101,redis://127.0.0.1:7102,redis://127.0.0.1:7103" \
    cargo test "${locked[@]}" -p chat-server --test it
"$ROOT/scripts/services.sh" --profile cluster down
trap - EXIT
"$ROOT/scripts/clients/run.sh"
# Faults under traffic (process kills, service outages) and a short soak, on the chaos profile;
# then a Redis Cluster master killed and slots resharded under traffic (cluster mode).
"$ROOT/scripts/chaos.sh" --small
"$ROOT/scripts/chaos.sh" --cluster --small
# Every benchmark scenario once at a tiny size: keeps the load generator and its checks working.
"$ROOT/scripts/bench.sh" --tiny
