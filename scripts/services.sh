#!/usr/bin/env bash
# Starts, stops and reports the local backing services chat-server needs:
# Redis, MariaDB, a MongoDB wire-compatible server (nx-27017) and an SMTP
# server (aiosmtpd) that receives the app's outgoing mail.
#
#   scripts/services.sh [--test | --profile NAME] up|down|status|reset [SERVICE...]
#
# SERVICE is one of redis, mariadb, mongo, smtp (default: all of them). `reset`
# stops the profile's services, deletes their data and starts them again.
#
# They run as plain background processes owned by the current user, with all
# data, logs, sockets and pid files under the repository's var/ directory, so
# nothing depends on (or interferes with) system-wide service configuration.
#
# Two profiles, fully isolated from each other so both can run at once:
#   run (default)  Redis    127.0.0.1:16379  var/redis (AOF persistence)
#                  MariaDB  127.0.0.1:13306  var/mysql
#                  nx-27017 127.0.0.1:17017  var/mongo
#                  SMTP     127.0.0.1:2525   var/mail (Maildir, kept)
#                  database `chat`, user chat/chat granted on chat.*
#                  logs var/log, pid files var/pids
#   test (--test)  Redis    127.0.0.1:16380  var/test/redis (no persistence)
#                  MariaDB  127.0.0.1:13307  var/test/mysql (wiped on start)
#                  nx-27017 127.0.0.1:17018  in memory
#                  SMTP     127.0.0.1:2526   var/test/mail (Maildir, emptied
#                                            on start)
#                  database `chat_test`, user chat/chat granted on *.* because
#                  the test suite creates one database per test
#                  logs var/test/log, pid files var/test/pids
#   bench          Redis 16382, MariaDB 13309, nx-27017 17020 (on disk), SMTP
#                  2528, under var/bench (scripts/bench.sh)
#   chaos          Redis 16381, MariaDB 13308, nx-27017 17019 (on disk), SMTP
#                  2527, under var/chaos (scripts/chaos.sh, which stops and
#                  restarts single services of this profile)
#                  bench and chaos: Redis with AOF persistence, database `chat`,
#                  user chat/chat granted on *.*; data kept until `reset`.
#   cluster        a Redis Cluster only: 3 masters + 3 replicas on
#                  127.0.0.1:7101-7106 (cluster-node-timeout 2000 ms, AOF),
#                  data under var/cluster/redis/<port>, used with another
#                  profile's MariaDB, MongoDB and SMTP (scripts/run.sh
#                  --cluster, scripts/test.sh, scripts/chaos.sh --cluster)
#
# The SMTP server accepts plain SMTP (no TLS, no auth) and stores every message
# it receives as one file in the Maildir's new/ folder, so tests can read the
# mail the app sent.
#
# A service is left alone when the app is pointed at the user's own instance:
# CHAT__REDIS__URL skips Redis, CHAT__MYSQL__URL skips MariaDB,
# CHAT__MONGODB__URI skips the MongoDB-compatible server and
# CHAT__MAIL__SMTP_URL skips the SMTP server.
#
# Missing software is installed on demand: the Debian packages redis-server and
# mariadb-server/mariadb-client through apt-get (root only), and nx-27017 and
# aiosmtpd from the Python package index into the git-ignored venv .tools/venv.
#
# Environment knobs: SERVICES_WAIT_SECS (default 30) bounds every readiness wait.
#
# `status` exits 0 when every non-skipped service is up and answering, 3 otherwise.
set -euo pipefail

# The libraries live next to this script; resolved before anything changes
# the working directory.
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

# Shared helpers, then one file per service; they define functions (and a few
# constants) only, run below.
# shellcheck source=SCRIPTDIR/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"
# shellcheck source=SCRIPTDIR/lib/redis.sh
source "$SCRIPT_DIR/lib/redis.sh"
# shellcheck source=SCRIPTDIR/lib/redis_cluster.sh
source "$SCRIPT_DIR/lib/redis_cluster.sh"
# shellcheck source=SCRIPTDIR/lib/mariadb.sh
source "$SCRIPT_DIR/lib/mariadb.sh"
# shellcheck source=SCRIPTDIR/lib/mongo.sh
source "$SCRIPT_DIR/lib/mongo.sh"
# shellcheck source=SCRIPTDIR/lib/smtp.sh
source "$SCRIPT_DIR/lib/smtp.sh"

parse_args "$@"
load_profile

# Tools needed by the readiness checks, resolved even for status/down.
REDIS_CLI="$(find_bin redis-cli || echo redis-cli)"
MARIADB="$(find_bin mariadb mysql || echo mariadb)"

case "$ACTION" in
    up | down | reset)
        mkdir -p "$BASE"
        # One up/down at a time per profile. Every daemon is started with fd 9
        # closed so none of them keeps this lock.
        exec 9>"$BASE/.services.lock"
        flock -w 300 9 || die "another scripts/services.sh is still running for the $PROFILE profile"
        ;;
esac

cd "$ROOT"
start_time=$SECONDS
case "$ACTION" in
    up) up_services ;;
    down) down_services ;;
    reset) wipe_and_restart ;;
    status) status_services ;;
esac
