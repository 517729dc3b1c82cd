#!/usr/bin/env bash
# Runs the whole test suite against the test-profile services of
# scripts/services.sh (isolated from the run profile, fresh data on each
# start). The tests read the service addresses from conf/test.toml, so no URLs
# are exported here. The services are left running afterwards because reusing
# them makes the next run faster; `scripts/services.sh --test down` stops them.
#
#   scripts/test.sh [extra cargo test arguments, e.g. a test name filter]
#
# Exits with cargo's status: non-zero when anything fails to build or pass.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

"$ROOT/scripts/services.sh" --test up

cd "$ROOT"
cargo_flags=(--all-targets)
if [[ -f Cargo.lock ]]; then
    cargo_flags=(--locked "${cargo_flags[@]}")
fi
exec cargo test "${cargo_flags[@]}" "$@"
