# shellcheck shell=bash
# The `cluster` profile of scripts/services.sh: a local Redis Cluster of three
# masters and three replicas (Debian's redis-server, --cluster-enabled yes) on
# 127.0.0.1:7101-7106, data under var/cluster/redis/<port> (AOF), formed with
# `redis-cli --cluster create --cluster-replicas 1` on first start. A node that
# was stopped or killed rejoins with its nodes.conf when started again (as a
# replica, if its replica was promoted meanwhile). cluster-node-timeout is
# 2000 ms, so a dead master's replica takes over within a few seconds; with
# cluster-replica-validity-factor 0 a replica takes over however long ago it last
# heard from its master (a replica of a quiet master would otherwise refuse).

CLUSTER_PORTS=(7101 7102 7103 7104 7105 7106)
CLUSTER_NODE_TIMEOUT_MS="${CLUSTER_NODE_TIMEOUT_MS:-2000}"

cluster_node_ping() {
    [[ "$(timeout 5 "$REDIS_CLI" -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == "PONG" ]]
}

# cluster_state:ok as seen by the node on port $1.
cluster_node_ok() {
    timeout 5 "$REDIS_CLI" -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

# Every node up and seeing a healthy cluster of all six.
cluster_ok() {
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        cluster_node_ok "$port" || return 1
        timeout 5 "$REDIS_CLI" -h 127.0.0.1 -p "$port" cluster info 2>/dev/null |
            grep -q "^cluster_known_nodes:${#CLUSTER_PORTS[@]}" || return 1
    done
}

up_cluster_node() {
    local port="$1" name="redis-$1" pid logf dir
    prepare_start "$name"
    [[ "$START_STATE" == "start" ]] || return 0
    logf="$(log_file "$name")"
    dir="$REDIS_DIR/$port"
    mkdir -p "$dir"
    pid="$(spawn "$logf" "$REDIS_SERVER" --bind 127.0.0.1 --port "$port" --protected-mode yes \
        --dir "$dir" --pidfile "$(pid_file "$name")" --daemonize no \
        --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT_MS" --cluster-replica-validity-factor 0 \
        --appendonly yes --save '')"
    wait_started "$name" "$pid" "did not answer PING" cluster_node_ping "$port"
    echo "$pid" >"$(pid_file "$name")"
    log "$name: up on 127.0.0.1:$port (pid $pid)"
}

up_redis_cluster() {
    local port nodes=()
    for port in "${CLUSTER_PORTS[@]}"; do
        up_cluster_node "$port"
        nodes+=("127.0.0.1:$port")
    done
    # Formed once; afterwards each node finds the others through its nodes.conf.
    if timeout 5 "$REDIS_CLI" -h 127.0.0.1 -p "${CLUSTER_PORTS[0]}" cluster info 2>/dev/null |
        grep -q '^cluster_slots_assigned:0'; then
        log "redis cluster: creating (3 masters, 3 replicas)"
        timeout 60 "$REDIS_CLI" --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
            >>"$(log_file redis-cluster)" 2>&1 ||
            die "redis cluster: redis-cli --cluster create failed (see $(log_file redis-cluster))"
    fi
    local deadline=$((SECONDS + WAIT_SECS))
    until cluster_ok; do
        ((SECONDS < deadline)) || die "redis cluster: not healthy within ${WAIT_SECS}s (redis-cli -p ${CLUSTER_PORTS[0]} cluster nodes)"
        sleep 0.5
    done
    log "redis cluster: ok on 127.0.0.1:${CLUSTER_PORTS[0]}-${CLUSTER_PORTS[-1]}"
}

down_redis_cluster() {
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        down_service "redis-$port"
    done
}

status_redis_cluster() {
    local port all=0
    for port in "${CLUSTER_PORTS[@]}"; do
        status_service "redis-$port" || all=1
    done
    if cluster_ok; then
        printf '%-8s %-8s %s\n' "cluster" "ok" "127.0.0.1:${CLUSTER_PORTS[0]}-${CLUSTER_PORTS[-1]}"
    else
        printf '%-8s %-8s %s\n' "cluster" "degraded" "(redis-cli -p ${CLUSTER_PORTS[0]} cluster nodes)"
        all=1
    fi
    return "$all"
}
