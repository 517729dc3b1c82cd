# shellcheck shell=bash
# The SMTP server (aiosmtpd, pinned, in the tools venv) that receives the app's
# mail for scripts/services.sh: installation, the readiness check and start-up.

# aiosmtpd is pinned for the same reason as nx-27017 (see mongo.sh): the
# Maildir layout and the extra headers it adds to each stored message are what
# tests parse.
AIOSMTPD_VERSION="1.4.6"
# Its console script only serves as evidence of the installation; the server
# is started as `python -m aiosmtpd`, the documented entry point.
AIOSMTPD_BIN="$VENV/bin/aiosmtpd"
# Records the pinned version the venv holds, like NX_MARKER.
AIOSMTPD_MARKER="$VENV/.installed-aiosmtpd-$AIOSMTPD_VERSION"

# A full SMTP exchange (greeting, EHLO, NOOP, QUIT) with the standard
# library's client, the same dialogue the app's mailer starts with.
SMTP_PING_PY='
import smtplib, sys
# local_hostname spares the client a reverse DNS lookup of this machine.
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="localhost", timeout=5) as smtp:
    ehlo = smtp.ehlo()[0]
    noop = smtp.noop()[0]
sys.exit(0 if ehlo == 250 and noop == 250 else 1)
'

aiosmtpd_installed() {
    [[ -f "$AIOSMTPD_MARKER" && -x "$AIOSMTPD_BIN" ]] && venv_runs
}

ensure_aiosmtpd_installed() { venv_install aiosmtpd_installed install_aiosmtpd; }

install_aiosmtpd() {
    ensure_venv
    log "installing aiosmtpd==$AIOSMTPD_VERSION into ${VENV#"$ROOT"/}"
    venv_pip_install "aiosmtpd==$AIOSMTPD_VERSION"
    mark_installed aiosmtpd "$AIOSMTPD_BIN" "$AIOSMTPD_MARKER"
}

smtp_ping() { venv_ping "$SMTP_PING_PY" "$SMTP_PORT"; }

up_smtp() {
    local pid logf
    prepare_start smtp
    [[ "$START_STATE" == "start" ]] || return 0
    logf="$(log_file smtp)"
    if [[ "$PROFILE" == "test" ]]; then
        # Tests look for the mail they caused; leftovers of earlier runs
        # would only confuse them.
        rm -rf "$MAIL_DIR"
    fi
    # Python's mailbox module creates only a missing Maildir, not the
    # subfolders of an existing one, and tests may start watching new/ as
    # soon as we return.
    mkdir -p "$MAIL_DIR/cur" "$MAIL_DIR/new" "$MAIL_DIR/tmp"
    log "smtp: starting aiosmtpd on 127.0.0.1:$SMTP_PORT (mail: ${MAIL_DIR#"$ROOT"/}/new)"
    # -n: don't try to switch to user nobody (it would fail as a regular user
    # and, as root, leave the Maildir unwritable). -u: accept SMTPUTF8 so
    # non-ASCII addresses can be tested. -d: log the SMTP dialogue, so a test
    # that got no mail can tell whether the app connected at all. The Mailbox
    # handler stores each message as its own file in the Maildir. aiosmtpd
    # has no pid file option; the pid comes from spawn.
    pid="$(spawn "$logf" "$VENV_PY" -m aiosmtpd -n -u -d -l "127.0.0.1:$SMTP_PORT" \
        -c aiosmtpd.handlers.Mailbox "$MAIL_DIR")"
    wait_started smtp "$pid" "did not answer an SMTP EHLO/NOOP" smtp_ping
    echo "$pid" >"$(pid_file smtp)"
    log "smtp: up on 127.0.0.1:$SMTP_PORT (pid $pid)"
}
