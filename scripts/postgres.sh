#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, reachable on loopback only, with trust authentication.
#
#   scripts/postgres.sh         install the server binaries if missing (Debian apt, as root), create the
#                               cluster if missing, start it if stopped, create the test database if
#                               missing; print its DSN as the only line on stdout
#   scripts/postgres.sh stop    stop it (the data directory stays; delete it by hand to start afresh)
#
# Settings (environment):
#   PATIENT_INSIGHTS_PG_DIR   data directory, also holds the socket and server.log
#                             (default /tmp/patient-insights-pg; as root it must be reachable by `postgres`)
#   PATIENT_INSIGHTS_PG_PORT  TCP port on 127.0.0.1 (default 55432)
#
# The server refuses to run as root, so as root the cluster belongs to the `postgres` system user that
# Debian's package creates; otherwise it belongs to the current user. The superuser is `postgres` either
# way. Durability is switched off (fsync, full_page_writes): the data is for tests and is disposable.
set -euo pipefail
set -o errtrace # the ERR trap below reports failures inside functions too

# Everything but the DSN goes to stderr, so `$(scripts/postgres.sh)` captures the DSN alone.
exec 3>&1 1>&2

PROG=postgres.sh
PG_DIR="${PATIENT_INSIGHTS_PG_DIR:-/tmp/patient-insights-pg}"
PG_PORT="${PATIENT_INSIGHTS_PG_PORT:-55432}"
PG_HOST=127.0.0.1
PG_SUPERUSER=postgres
PG_DB=patient_insights_test
ACTION="${1:-start}"

log() { printf '%s: %s\n' "$PROG" "$*"; }
# The last stderr line is what callers (the test fixture) show as the reason, so it names the problem.
die() {
    printf '%s: error: %s\n' "$PROG" "$*"
    exit 1
}
on_error() { printf '%s: error: command failed (exit %s, line %s): %s\n' "$PROG" "$1" "$2" "$3"; }
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

case "$ACTION" in
start | stop) ;;
*) die "unknown argument '$ACTION' (use no argument to start, or 'stop')" ;;
esac
[[ "$PG_PORT" =~ ^[0-9]+$ ]] || die "PATIENT_INSIGHTS_PG_PORT must be a number, got '$PG_PORT'"
[[ "$PG_DIR" == /* ]] || PG_DIR="$PWD/$PG_DIR"

# The bin directory of the newest installed major version that has a server, or of $1 if given.
find_bindir() {
    local want="${1:-}" dir best=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" && -x "$dir/psql" ]] || continue
        if [[ -n "$want" ]]; then
            [[ "$dir" == "/usr/lib/postgresql/$want/bin" ]] && best="$dir"
        elif [[ -z "$best" ]] || [[ "$(printf '%s\n%s\n' "$best" "$dir" | sort -V | tail -n1)" == "$dir" ]]; then
            best="$dir"
        fi
    done
    printf '%s' "$best"
}

# Run a server-side command as the cluster's owner (the server will not run as root).
if [[ "$(id -u)" == 0 ]]; then
    OWNER=postgres
    as_owner() { (cd / && runuser -u "$OWNER" -- "$@"); }
else
    OWNER="$(id -un)"
    as_owner() { "$@"; }
fi

# An existing cluster fixes the major version; a new one takes the newest installed.
CLUSTER_VERSION=""
[[ -f "$PG_DIR/PG_VERSION" ]] && CLUSTER_VERSION="$(<"$PG_DIR/PG_VERSION")"
BINDIR="$(find_bindir "$CLUSTER_VERSION")"

if [[ "$ACTION" == stop ]]; then
    if [[ -z "$CLUSTER_VERSION" ]]; then
        log "no cluster in $PG_DIR; nothing to stop"
    elif [[ -z "$BINDIR" ]]; then
        die "PostgreSQL $CLUSTER_VERSION binaries not found under /usr/lib/postgresql; cannot stop $PG_DIR"
    elif as_owner "$BINDIR/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
        as_owner "$BINDIR/pg_ctl" -D "$PG_DIR" -m fast -w stop
    else
        log "server in $PG_DIR is not running"
    fi
    exit 0
fi

if [[ -z "$BINDIR" ]]; then
    [[ -n "$CLUSTER_VERSION" ]] && die "$PG_DIR holds a PostgreSQL $CLUSTER_VERSION cluster but its binaries" \
        "are not installed; delete $PG_DIR or install postgresql-$CLUSTER_VERSION"
    [[ "$(id -u)" == 0 ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin" \
        "and not root to install them"
    log "installing PostgreSQL with apt-get"
    # fd 3 closed: a service that the package's scripts may start must not hold the caller's stdout
    apt-get update -qq 3>&-
    # without recommends: they add sysstat and its systemd timers, which a test server does not need
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql </dev/null 3>&-
    BINDIR="$(find_bindir)"
    [[ -n "$BINDIR" ]] || die "apt-get installed postgresql but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
    # The package's own cluster (port 5432) plays no part here; stop it if the install started it.
    if command -v pg_ctlcluster >/dev/null; then
        major="$(basename "$(dirname "$BINDIR")")"
        pg_ctlcluster "$major" main stop >/dev/null 2>&1 || true
    fi
fi
log "using $("$BINDIR/postgres" --version) from $BINDIR"

if [[ "$(id -u)" == 0 ]] && ! id "$OWNER" >/dev/null 2>&1; then
    log "creating system user $OWNER"
    useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin "$OWNER"
fi

if [[ -z "$CLUSTER_VERSION" ]]; then
    if [[ -d "$PG_DIR" && -n "$(ls -A "$PG_DIR")" ]]; then
        die "$PG_DIR exists, is not empty and holds no PostgreSQL cluster; choose another" \
            "PATIENT_INSIGHTS_PG_DIR or delete it"
    fi
    mkdir -p "$PG_DIR"
    chown "$OWNER:" "$PG_DIR"
    chmod 700 "$PG_DIR"
    log "creating a cluster in $PG_DIR"
    as_owner "$BINDIR/initdb" -D "$PG_DIR" --username="$PG_SUPERUSER" --auth=trust --encoding=UTF8 \
        --no-locale --no-instructions >/dev/null
    # Trust, but only from this machine: the socket in the (0700) data directory and 127.0.0.1.
    as_owner tee "$PG_DIR/pg_hba.conf" >/dev/null <<'EOF'
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
    as_owner tee -a "$PG_DIR/postgresql.conf" >/dev/null <<'EOF'

# scripts/postgres.sh: listen address, port and socket are set in this file on every start
include 'patient_insights.conf'
EOF
fi

if as_owner "$BINDIR/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    # postmaster.pid: line 4 is the port the running server listens on
    running_port="$(sed -n 4p "$PG_DIR/postmaster.pid" 2>/dev/null || true)"
    [[ "$running_port" == "$PG_PORT" ]] || die "the server in $PG_DIR is running on port" \
        "${running_port:-?}, not $PG_PORT; run '$0 stop' first"
    log "server in $PG_DIR is already running"
else
    as_owner tee "$PG_DIR/patient_insights.conf" >/dev/null <<EOF
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
# no DETAIL/CONTEXT lines in the log: a duplicate key's DETAIL would quote the row's values
log_error_verbosity = terse
EOF
    log "starting the server on $PG_HOST:$PG_PORT (log: $PG_DIR/server.log)"
    # fd 3 (the caller's stdout) is closed for the server: were it inherited, `$(scripts/postgres.sh)`
    # would wait for the server to exit
    if ! as_owner "$BINDIR/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 start </dev/null \
        >/dev/null 3>&-; then
        tail -n 20 "$PG_DIR/server.log" || true
        die "the server did not start on $PG_HOST:$PG_PORT; see $PG_DIR/server.log"
    fi
fi

psql_admin() {
    "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres "$@"
}
if [[ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]]; then
    log "creating database $PG_DB"
    psql_admin -c "CREATE DATABASE $PG_DB"
fi

printf 'postgresql://%s@%s:%s/%s\n' "$PG_SUPERUSER" "$PG_HOST" "$PG_PORT" "$PG_DB" >&3
