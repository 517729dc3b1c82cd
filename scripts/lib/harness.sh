# shellcheck shell=bash
# What scripts/bench.sh and scripts/chaos.sh share: logging under the script's
# name, --help from the script's header, the check that no CHAT__* URL points
# the run elsewhere, the open-files limit, the build of the server and the load
# generator, and the profile's own services (reset at the start, stopped at the
# end). Sourced after ROOT is set and the working directory is ROOT; defines
# functions only.
#
# HARNESS_SMALL and HARNESS_PICKED are read by the scripts.
# shellcheck disable=SC2034

HARNESS_NAME="$(basename "$0")"

log() { printf '%s: %s\n' "$HARNESS_NAME" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Reads the command line every harness script has: its size flag FLAG (e.g.
# --tiny), any of the names in NAMES (a space-separated list), -h/--help.
# Sets HARNESS_SMALL (1 when FLAG was given, else 0) and HARNESS_PICKED (the
# names given, in order); anything else is an error.
harness_args() {
    local flag="$1" name known
    read -r -a known <<<"$2"
    shift 2
    HARNESS_SMALL=0
    HARNESS_PICKED=()
    while (($# > 0)); do
        case "$1" in
            "$flag") HARNESS_SMALL=1 ;;
            -h | --help) harness_help ;;
            *)
                for name in "${known[@]}"; do
                    [[ "$1" != "$name" ]] || break
                done
                [[ "$1" == "$name" ]] || die "unknown argument '$1' (see --help)"
                HARNESS_PICKED+=("$1")
                ;;
        esac
        shift
    done
}

# Prints the script's header comment (lines 2 to the first non-comment line).
harness_help() {
    sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
}

# The run resets and stops PROFILE's own services; a URL pointing elsewhere
# would make services.sh skip one that the run still expects at the profile's
# address (WHY says what for).
require_own_services() {
    local profile="$1" why="$2" var
    for var in CHAT__REDIS__URL CHAT__MYSQL__URL CHAT__MONGODB__URI CHAT__MAIL__SMTP_URL; do
        [[ -z "${!var:-}" ]] || die "$var is set; $why uses the $profile profile's own services"
    done
}

# Thousands of sockets on both ends of loopback (each process has its own
# limit): raises the soft open-files limit as far as the hard limit allows.
raise_open_files() {
    local hard
    hard="$(ulimit -Hn)"
    if [[ "$hard" == "unlimited" ]]; then
        hard=1048576
    fi
    ulimit -n "$hard" 2>/dev/null || log "could not raise the open-files limit (now $(ulimit -n))"
    log "open files limit: $(ulimit -n)"
}

# Builds the server and the load generator with the given cargo flags; the
# binaries land in this checkout's target/. With CARGO_TARGET_DIR set (a target
# directory shared with other checkouts, for their compiled dependencies), that
# directory is only cargo's build directory: the binaries cargo puts at the top
# of a shared one are whichever checkout built last, so another checkout's build
# could replace them between this build and the run.
build_harness() {
    local flags=("$@")
    if [[ -f Cargo.lock ]]; then
        flags+=(--locked)
    fi
    if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
        CARGO_BUILD_BUILD_DIR="$CARGO_TARGET_DIR" CARGO_TARGET_DIR="$ROOT/target" \
            cargo build "${flags[@]}" -p chat-server -p chat-loadgen
    else
        cargo build "${flags[@]}" -p chat-server -p chat-loadgen
    fi
}

# Starts PROFILE's services afresh and stops them when the script exits.
# mariadb-install-db can trip over another profile initialising at the same
# moment (shared temporary tables); one more attempt gets past that.
own_services() {
    HARNESS_PROFILE="$1"
    trap 'harness_stop_services' EXIT
    trap 'exit 130' INT TERM HUP
    reset_services
}

reset_services() {
    if ! "$ROOT/scripts/services.sh" --profile "$HARNESS_PROFILE" reset; then
        log "service reset failed; trying once more"
        sleep 2
        "$ROOT/scripts/services.sh" --profile "$HARNESS_PROFILE" reset
    fi
}

harness_stop_services() {
    "$ROOT/scripts/services.sh" --profile "$HARNESS_PROFILE" down >/dev/null 2>&1 ||
        log "stopping the $HARNESS_PROFILE services failed"
}
