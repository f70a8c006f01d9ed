# lib.sh of the postgresql-1.0 service package: what the wrapper
# (ext/bin/postgresql-run) and the hook scripts share.  Sourced by POSIX sh;
# defines functions and these variables, and changes nothing on disk:
#
#   PG_DIR       $LOCAL_VAR/postgresql          (owned by the server's user)
#   PG_DATA      $LOCAL_VAR/postgresql/data     (the cluster, made by initdb)
#   PG_SOCKDIR   $LOCAL_VAR/postgresql/run      (the Unix socket and its lock)
#   PG_CONF      $LOCAL_VAR/etc/postgresql/postgresql.conf (rendered by servicectl)
#
# Expects the service's environment (LOCAL_VAR, POSTGRESQL_PORT, ...) and
# SERVICE_NAME (the prefix of every message).

: "${LOCAL_VAR:?LOCAL_VAR is not set: run this through servicectl}"
PG_DIR="$LOCAL_VAR/postgresql"
PG_DATA="$PG_DIR/data"
PG_SOCKDIR="$PG_DIR/run"
PG_CONF="$LOCAL_VAR/etc/postgresql/postgresql.conf"
pg_me=${SERVICE_NAME:-postgresql}

pg_die() {
    echo "$pg_me: $*" >&2
    exit 1
}

# pg_bindir: print the directory holding postgres, initdb and pg_isready.
# POSTGRESQL_BINDIR when set; else, for an existing cluster, the binaries of its
# major version (a cluster made by PostgreSQL 15 needs PostgreSQL 15, even once
# 16 is installed next to it); else the newest of Debian's
# /usr/lib/postgresql/<major>/bin.
pg_bindir() {
    if [ -n "${POSTGRESQL_BINDIR:-}" ]; then
        [ -x "$POSTGRESQL_BINDIR/postgres" ] ||
            pg_die "POSTGRESQL_BINDIR=$POSTGRESQL_BINDIR holds no executable postgres"
        echo "$POSTGRESQL_BINDIR"
        return 0
    fi
    if [ -f "$PG_DATA/PG_VERSION" ]; then
        pg_major=$(cat "$PG_DATA/PG_VERSION")
        [ -x "/usr/lib/postgresql/$pg_major/bin/postgres" ] ||
            pg_die "$PG_DATA was made by PostgreSQL $pg_major, which is not installed" \
                "(/usr/lib/postgresql/$pg_major/bin/postgres is missing): install" \
                "postgresql-$pg_major, or upgrade the cluster with pg_upgrade, or move" \
                "$PG_DATA away to start with an empty one"
        echo "/usr/lib/postgresql/$pg_major/bin"
        return 0
    fi
    # The newest major version: the numeric directory names, sorted as numbers.
    pg_major=$(ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+(\.[0-9]+)?$' | sort -n | tail -n 1)
    [ -n "$pg_major" ] && [ -x "/usr/lib/postgresql/$pg_major/bin/postgres" ] ||
        pg_die "no PostgreSQL server found in /usr/lib/postgresql/*/bin: install the" \
            "Debian package postgresql (scripts/install-deps does), or set POSTGRESQL_BINDIR"
    echo "/usr/lib/postgresql/$pg_major/bin"
}

# pg_owner_of FILE: the name of its owner (UNKNOWN when the uid has none).
pg_owner_of() {
    stat -c %U "$1" 2>/dev/null
}

# pg_user: the user the server (and initdb) run as; sets PG_USER, and PG_SWITCH
# (1 when servicectl runs as root and programs must be run as PG_USER through
# pg_as / pg_exec_as, else empty).  postgres refuses to run as root, so as root
# the default is the owner of an existing data directory, else the account
# `postgres` that Debian's package creates.  (Once servicectl has
# service_user=postgres, it does this switch itself: see the package's config.)
pg_user() {
    pg_self=$(id -un)
    if [ -n "${POSTGRESQL_USER:-}" ]; then
        PG_USER=$POSTGRESQL_USER
    elif [ "$(id -u)" -ne 0 ]; then
        PG_USER=$pg_self
    elif [ -d "$PG_DATA" ] && pg_owner=$(pg_owner_of "$PG_DATA") &&
        [ "$pg_owner" != root ] && id -u "$pg_owner" >/dev/null 2>&1; then
        PG_USER=$pg_owner
    else
        PG_USER=postgres
    fi
    id -u "$PG_USER" >/dev/null 2>&1 ||
        pg_die "there is no user $PG_USER to run the server as: install the Debian package" \
            "postgresql (it creates the account postgres) or set POSTGRESQL_USER"
    PG_SWITCH=""
    if [ "$PG_USER" = "$pg_self" ]; then
        [ "$(id -u)" -ne 0 ] ||
            pg_die "PostgreSQL refuses to run as root: set POSTGRESQL_USER to another user"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] ||
        pg_die "POSTGRESQL_USER=$PG_USER, but servicectl runs as $pg_self, not as root," \
            "so it cannot switch users: unset POSTGRESQL_USER or set it to $pg_self"
    PG_SWITCH=1
    PG_GROUP=$(id -gn "$PG_USER")
    PG_HOME=$(getent passwd "$PG_USER" | cut -d: -f6)
}

# pg_as CMD ARGS...: run a program as PG_USER (after pg_user).  setpriv execs
# the program (no process stays in between, unlike runuser or su, whose parent
# would outlive a SIGKILL of the server, and SIGKILL it 2 s after a SIGTERM).
pg_as() {
    if [ -z "$PG_SWITCH" ]; then
        "$@"
    else
        setpriv --reuid="$PG_USER" --regid="$PG_GROUP" --init-groups -- \
            env HOME="${PG_HOME:-/}" USER="$PG_USER" LOGNAME="$PG_USER" "$@"
    fi
}

# pg_exec_as CMD ARGS...: the same, replacing this shell (same PID).
pg_exec_as() {
    if [ -z "$PG_SWITCH" ]; then
        exec "$@"
    fi
    exec setpriv --reuid="$PG_USER" --regid="$PG_GROUP" --init-groups -- \
        env HOME="${PG_HOME:-/}" USER="$PG_USER" LOGNAME="$PG_USER" "$@"
}

# pg_reachable: PG_USER can get to $LOCAL_VAR (a playpen inside a 0700 home or
# temporary directory is out of its reach).
pg_reachable() {
    [ -n "$PG_SWITCH" ] || return 0
    pg_path=$LOCAL_VAR
    pg_blocked=""
    while [ -n "$pg_path" ] && [ "$pg_path" != / ]; do
        pg_as test -x "$pg_path" || pg_blocked=$pg_path
        pg_path=$(dirname "$pg_path")
    done
    [ -z "$pg_blocked" ] ||
        pg_die "the server runs as $PG_USER (PostgreSQL refuses root), who cannot reach" \
            "$LOCAL_VAR: no search (x) permission on $pg_blocked. Grant it" \
            "(chmod o+x $pg_blocked, or setfacl -m u:$PG_USER:x $pg_blocked), or set" \
            "POSTGRESQL_USER in the role config to a user who can reach the playpen"
}
