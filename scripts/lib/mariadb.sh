# shellcheck shell=bash
# MariaDB for scripts/services.sh: installation (Debian's mariadb-server), the
# readiness checks (the app user over TCP, the admin over the unix socket), the
# app database and user, start-up.

# The application's account, as in conf/config.toml and conf/test.toml; a
# fixed password will do because the server listens on 127.0.0.1 only.
APP_USER="chat"
APP_PASSWORD="chat"

ensure_mariadb_installed() {
    if ! find_bin mariadbd mysqld >/dev/null || ! find_bin mariadb-install-db mysql_install_db >/dev/null ||
        ! find_bin mariadb mysql >/dev/null; then
        apt_install mariadb-server mariadb-client
    fi
    MARIADBD="$(find_bin mariadbd mysqld)" || die "mariadbd not found after installation"
    MARIADB_INSTALL_DB="$(find_bin mariadb-install-db mysql_install_db)" || die "mariadb-install-db not found after installation"
    MARIADB="$(find_bin mariadb mysql)" || die "mariadb client not found after installation"
}

# As the application user over TCP, inside the application database.
mariadb_app_ok() {
    MYSQL_PWD="$APP_PASSWORD" timeout 10 "$MARIADB" --no-defaults --protocol=TCP -h127.0.0.1 -P"$MYSQL_PORT" \
        -u"$APP_USER" -N -B -e 'SELECT 1' "$DB_NAME" >/dev/null 2>&1
}

# Administrative access over the unix socket: mariadb-install-db gives the OS
# user that ran it passwordless socket authentication.
mariadb_admin() {
    timeout 30 "$MARIADB" --no-defaults --socket="$MYSQL_SOCK" -u"$(id -un)" -N -B "$@"
}

mariadb_admin_ok() {
    mariadb_admin -e 'SELECT 1' >/dev/null 2>&1
}

# Creates the application database and user; every statement is idempotent so
# this can run on each start and repairs a partially initialised instance.
mariadb_setup() {
    local host users="" sql
    for host in 127.0.0.1 localhost %; do
        users+="${users:+, }'$APP_USER'@'$host'"
    done
    sql="CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    for host in 127.0.0.1 localhost %; do
        sql+=" CREATE USER IF NOT EXISTS '$APP_USER'@'$host' IDENTIFIED BY '$APP_PASSWORD';"
    done
    sql+=" GRANT ALL PRIVILEGES ON $GRANT_ON TO $users; FLUSH PRIVILEGES;"
    mariadb_admin -e "$sql"
}

up_mariadb() {
    local pid logf
    prepare_start mariadb
    if [[ "$START_STATE" == "running" ]]; then
        return 0
    elif [[ "$START_STATE" == "repair" ]]; then
        # Running, but the app database/user is gone: recreate them.
        log "mariadb: (re)creating database $DB_NAME and user $APP_USER"
        mariadb_setup >/dev/null || fail_service mariadb "creating database/user failed"
        mariadb_app_ok || fail_service mariadb "user $APP_USER cannot connect to $DB_NAME"
        return 0
    fi
    logf="$(log_file mariadb)"
    if [[ "$PROFILE" == "test" ]]; then
        # Each test run starts from an empty server.
        rm -rf "$MYSQL_DIR"
    fi
    local as_user=()
    if [[ "$(id -u)" -eq 0 ]]; then
        # mariadbd refuses to run as root unless told to explicitly.
        as_user=(--user=root)
    fi
    if [[ ! -d "$MYSQL_DIR/mysql" ]]; then
        log "mariadb: initialising data directory ${MYSQL_DIR#"$ROOT"/}"
        rm -rf "$MYSQL_DIR"
        mkdir -p "$MYSQL_DIR"
        # Its chatty output goes to a log of its own, keeping the server log's
        # tail (shown on failure) about the server.
        local install_log="$LOG_DIR/mariadb-install-db.log"
        if ! "$MARIADB_INSTALL_DB" --no-defaults --datadir="$MYSQL_DIR" "${as_user[@]}" \
            --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve \
            >"$install_log" 2>&1 9>&-; then
            log "---- last 30 lines of $install_log ----"
            tail -n 30 "$install_log" >&2
            fail_service mariadb "mariadb-install-db failed"
        fi
    fi
    mkdir -p "$(dirname "$MYSQL_SOCK")"
    local extra=()
    if [[ "$PROFILE" == "test" ]]; then
        # Throwaway data: trade durability for speed, and allow the many
        # connection pools a parallel test run opens.
        extra=(--innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --max-connections=1000)
    elif [[ "$PROFILE" != "run" ]]; then
        # Several server processes, each with its own pool.
        extra=(--max-connections=1000)
    fi
    log "mariadb: starting on 127.0.0.1:$MYSQL_PORT"
    # --no-defaults keeps the system /etc/mysql config (datadir, socket,
    # pid file of the distribution's own instance) out of the picture.
    pid="$(spawn "$logf" "$MARIADBD" --no-defaults "${as_user[@]}" --datadir="$MYSQL_DIR" \
        --port="$MYSQL_PORT" --bind-address=127.0.0.1 --socket="$MYSQL_SOCK" --skip-name-resolve \
        --pid-file="$(pid_file mariadb)" --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        "${extra[@]}")"
    wait_started mariadb "$pid" "did not accept connections" mariadb_admin_ok
    mariadb_setup >/dev/null 2>>"$logf" || fail_service mariadb "creating database/user failed"
    wait_started mariadb "$pid" "user $APP_USER could not query $DB_NAME" mariadb_app_ok
    echo "$pid" >"$(pid_file mariadb)"
    log "mariadb: up on 127.0.0.1:$MYSQL_PORT (pid $pid, database $DB_NAME, user $APP_USER/$APP_PASSWORD)"
}
