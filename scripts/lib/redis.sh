# shellcheck shell=bash
# Redis for scripts/services.sh: installation (Debian's redis-server), the
# readiness check (PING through redis-cli) and start-up.

ensure_redis_installed() {
    if ! find_bin redis-server >/dev/null || ! find_bin redis-cli >/dev/null; then
        apt_install redis-server redis-tools
    fi
    REDIS_SERVER="$(find_bin redis-server)" || die "redis-server not found after installation"
    REDIS_CLI="$(find_bin redis-cli)" || die "redis-cli not found after installation"
}

# ---------------------------------------------------------------------------
# Readiness checks: each one is a real round trip through the service's own
# protocol, not just a TCP connect.
# ---------------------------------------------------------------------------
redis_ping() {
    [[ "$(timeout 5 "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]
}

up_redis() {
    local pid logf
    prepare_start redis
    [[ "$START_STATE" == "start" ]] || return 0
    logf="$(log_file redis)"
    local persistence=(--appendonly yes)
    if [[ "$PROFILE" == "test" ]]; then
        # Tests want a blank, fast Redis: no snapshot, no AOF, no leftovers.
        rm -rf "$REDIS_DIR"
        persistence=(--save '' --appendonly no)
    fi
    mkdir -p "$REDIS_DIR"
    log "redis: starting on 127.0.0.1:$REDIS_PORT"
    # Foreground mode under our own detaching (rather than --daemonize) gives
    # us its pid immediately, so a failed start is noticed at once.
    pid="$(spawn "$logf" "$REDIS_SERVER" --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
        --dir "$REDIS_DIR" --pidfile "$(pid_file redis)" --daemonize no "${persistence[@]}")"
    wait_started redis "$pid" "did not answer PING" redis_ping
    echo "$pid" >"$(pid_file redis)"
    log "redis: up on 127.0.0.1:$REDIS_PORT (pid $pid)"
}
