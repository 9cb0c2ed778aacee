#!/usr/bin/env bash
# Provision and run a private TimescaleDB on 127.0.0.1 for semon: start | stop | status.
#
# With SEMON_DATABASE_URL set, that server is used and nothing is provisioned. Otherwise, if the host's
# apt offers postgresql-NN-timescaledb, that package runs a private cluster; if not (Debian bookworm),
# a minimal Debian trixie root with PostgreSQL 17 and TimescaleDB is built with debootstrap and the
# server runs inside it with chroot. Root and data are cached under $SEMON_CACHE for the next run.
# `start` prints "started" on stdout when it started the server, "running" when it already ran.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PG_MAJOR=17
DB_URL=$(setting database_url)
DB_PORT=$(url_port "$DB_URL" 5432)
DB_USER=semon
DB_PASSWORD=semon
CHROOT_DIR="$SEMON_CACHE/trixie-pg$PG_MAJOR-root"
CHROOT_PGDATA=/var/lib/semon/pgdata

# The host's own Debian mirror, read from apt at run time (no mirror host is written in the repo).
debian_mirror() {
    if [ -n "${SEMON_DEBIAN_MIRROR:-}" ]; then printf '%s' "$SEMON_DEBIAN_MIRROR"; return; fi
    apt-cache policy 2>/dev/null | awk '
        $1 ~ /^[0-9]+$/ && $2 ~ /^(https?|file):/ { uri = $2; next }
        /release / && /o=Debian,/ && /l=Debian,/ && uri != "" { print uri; exit }'
}

host_timescaledb_package() {
    apt-cache search --names-only '^postgresql-[0-9]+-timescaledb$' 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1
}

# --- chroot mode -------------------------------------------------------------------------------------

CHROOT_BIN=$(PATH=$PATH:/usr/sbin:/sbin command -v chroot) || fail "chroot (coreutils) not found"
chroot_uid() { awk -F: '$1 == "postgres" {print $3 ":" $4}' "$CHROOT_DIR/etc/passwd"; }

in_chroot() {
    # No /proc or /dev mounts: PostgreSQL runs without them, and nothing is left mounted afterwards.
    $SUDO env -i PATH=/usr/lib/postgresql/$PG_MAJOR/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/var/lib/postgresql \
        "$CHROOT_BIN" --userspec="$(chroot_uid)" "$CHROOT_DIR" "$@"
}

build_chroot() {
    [ -f "$CHROOT_DIR/.semon-complete" ] && return 0
    ensure_debs debootstrap
    local mirror tmp
    mirror=$(debian_mirror)
    if [ -z "$mirror" ] && [ -z "$apt_updated" ]; then
        step "reading the Debian mirror: updating the package lists (apt-get update)"
        $SUDO apt-get update -q >/dev/null || fail "apt-get update failed"
        apt_updated=1
        mirror=$(debian_mirror)
    fi
    [ -n "$mirror" ] || fail "building the TimescaleDB root: no Debian mirror in this host's apt sources (set SEMON_DEBIAN_MIRROR)"
    tmp="$CHROOT_DIR.partial"
    $SUDO rm -rf "$tmp"
    mkdir -p "$SEMON_CACHE"
    step "building a Debian trixie root with PostgreSQL $PG_MAJOR and TimescaleDB in $CHROOT_DIR (about a minute, once)"
    if ! $SUDO debootstrap --variant=minbase --include=postgresql-$PG_MAJOR,postgresql-$PG_MAJOR-timescaledb \
            trixie "$tmp" "$mirror" >"$SEMON_CACHE/debootstrap.log" 2>&1; then
        tail -n 5 "$SEMON_CACHE/debootstrap.log" >&2
        fail "debootstrap of the TimescaleDB root failed (full log: $SEMON_CACHE/debootstrap.log)"
    fi
    $SUDO touch "$tmp/.semon-complete"
    $SUDO mv "$tmp" "$CHROOT_DIR"
}

init_chroot_cluster() {
    [ -f "$CHROOT_DIR$CHROOT_PGDATA/PG_VERSION" ] && return 0
    step "creating the database cluster in $CHROOT_DIR$CHROOT_PGDATA"
    local ids; ids=$(chroot_uid)
    $SUDO rm -rf "$CHROOT_DIR$CHROOT_PGDATA"
    $SUDO mkdir -p "$CHROOT_DIR$CHROOT_PGDATA"
    $SUDO chown -R "$ids" "$CHROOT_DIR/var/lib/semon"
    printf '%s\n' "$DB_PASSWORD" | $SUDO tee "$CHROOT_DIR/tmp/semon-pwfile" >/dev/null
    $SUDO chown "$ids" "$CHROOT_DIR/tmp/semon-pwfile"
    in_chroot initdb -D "$CHROOT_PGDATA" -U "$DB_USER" --pwfile=/tmp/semon-pwfile --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$SEMON_CACHE/initdb.log" 2>&1 \
        || { $SUDO rm -rf "$CHROOT_DIR$CHROOT_PGDATA"; fail "initdb failed (log: $SEMON_CACHE/initdb.log)"; }
    $SUDO rm -f "$CHROOT_DIR/tmp/semon-pwfile"
    $SUDO tee -a "$CHROOT_DIR$CHROOT_PGDATA/postgresql.conf" >/dev/null <<EOF
# semon: a private server on loopback only
listen_addresses = '127.0.0.1'
unix_socket_directories = '/tmp'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
shared_buffers = 512MB
max_wal_size = 2GB
EOF
}

chroot_status() { [ -f "$CHROOT_DIR/.semon-complete" ] && in_chroot pg_ctl -D "$CHROOT_PGDATA" status >/dev/null 2>&1; }

chroot_start() {
    build_chroot
    init_chroot_cluster
    if chroot_status; then echo running; return 0; fi
    port_in_use 127.0.0.1 "$DB_PORT" && fail "starting TimescaleDB: port $DB_PORT on 127.0.0.1 is taken by another program"
    step "starting TimescaleDB on 127.0.0.1:$DB_PORT"
    in_chroot pg_ctl -D "$CHROOT_PGDATA" -l "$CHROOT_PGDATA/server.log" -o "-p $DB_PORT" -w -t 60 start >/dev/null \
        || { $SUDO tail -n 5 "$CHROOT_DIR$CHROOT_PGDATA/server.log" >&2; fail "PostgreSQL did not start (log: $CHROOT_DIR$CHROOT_PGDATA/server.log)"; }
    ensure_database
    echo started
}

chroot_stop() {
    chroot_status || return 0
    step "stopping TimescaleDB"
    in_chroot pg_ctl -D "$CHROOT_PGDATA" -m fast -w stop >/dev/null
}

# --- host package mode -------------------------------------------------------------------------------

HOST_PGDATA=""
host_paths() {
    local pkg=$1 major
    major=$(sed -E 's/^postgresql-([0-9]+)-timescaledb$/\1/' <<<"$pkg")
    HOST_BIN=/usr/lib/postgresql/$major/bin
    # The cluster runs as the postgres user, who cannot reach a home directory under /root.
    HOST_PGDATA=/var/lib/semon/pg$major
}

host_run() { $SUDO runuser -u postgres -- "$@"; }

host_start() {
    local pkg=$1
    host_paths "$pkg"
    ensure_debs "$pkg"
    if [ ! -f "$HOST_PGDATA/PG_VERSION" ]; then
        step "creating the database cluster in $HOST_PGDATA"
        $SUDO mkdir -p "$HOST_PGDATA" && $SUDO chown postgres:postgres "$HOST_PGDATA"
        printf '%s\n' "$DB_PASSWORD" | $SUDO tee /tmp/semon-pwfile >/dev/null
        $SUDO chown postgres /tmp/semon-pwfile
        host_run "$HOST_BIN/initdb" -D "$HOST_PGDATA" -U "$DB_USER" --pwfile=/tmp/semon-pwfile --auth-local=trust \
            --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null || fail "initdb failed"
        $SUDO rm -f /tmp/semon-pwfile
        printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = '/tmp'\nshared_preload_libraries = 'timescaledb'\ntimescaledb.telemetry_level = off\nmax_connections = 200\n" \
            | $SUDO tee -a "$HOST_PGDATA/postgresql.conf" >/dev/null
    fi
    if host_run "$HOST_BIN/pg_ctl" -D "$HOST_PGDATA" status >/dev/null 2>&1; then echo running; return 0; fi
    step "starting TimescaleDB on 127.0.0.1:$DB_PORT"
    host_run "$HOST_BIN/pg_ctl" -D "$HOST_PGDATA" -l "$HOST_PGDATA/server.log" -o "-p $DB_PORT" -w -t 60 start >/dev/null \
        || fail "PostgreSQL did not start (log: $HOST_PGDATA/server.log)"
    ensure_database
    echo started
}

host_stop() {
    host_paths "$1"
    [ -f "$HOST_PGDATA/PG_VERSION" ] || return 0
    host_run "$HOST_BIN/pg_ctl" -D "$HOST_PGDATA" status >/dev/null 2>&1 || return 0
    step "stopping TimescaleDB"
    host_run "$HOST_BIN/pg_ctl" -D "$HOST_PGDATA" -m fast -w stop >/dev/null
}

# --- common ------------------------------------------------------------------------------------------

# The database named in the URL, created on first start.
ensure_database() {
    "$VENV/bin/semon" create-database >/dev/null || fail "creating the semon database failed"
}

mode() {
    if [ -n "${SEMON_DATABASE_URL:-}" ]; then echo external; return; fi
    local pkg; pkg=$(host_timescaledb_package)
    if [ -n "$pkg" ]; then echo "host:$pkg"; else echo chroot; fi
}

main() {
    local action=${1:-}; local m; m=$(mode)
    case "$action:$m" in
        start:external|stop:external|status:external)
            step "using the TimescaleDB at SEMON_DATABASE_URL; nothing to provision"
            [ "$action" = start ] && echo running; return 0 ;;
        start:chroot) chroot_start ;;
        stop:chroot) [ -d "$CHROOT_DIR" ] && chroot_stop; return 0 ;;
        status:chroot) chroot_status && echo running || { echo stopped; return 3; } ;;
        start:host:*) host_start "${m#host:}" ;;
        stop:host:*) host_stop "${m#host:}" ;;
        status:host:*) host_paths "${m#host:}"; host_run "$HOST_BIN/pg_ctl" -D "$HOST_PGDATA" status >/dev/null 2>&1 \
            && echo running || { echo stopped; return 3; } ;;
        *) echo "usage: $0 start|stop|status" >&2; return 2 ;;
    esac
}

main "$@"
