# postgresql-1.0.profile — sourced (under set -a, so every assignment is
# exported) when servicectl evaluates any service's configuration, and by
# share/load-config in a developer's shell.  It points libpq (psql, pg_dump,
# drivers) at the playpen's server: PGHOST, PGPORT, PGUSER, so that a
# migration step or the project's own daemons need no settings of their own.
# PGPORT follows POSTGRESQL_PORT, or PORT_PREFIX + POSTGRESQL_PORT_OFFSET, as
# the server's typed variable does: set those in the role config (not in the
# service's own fragment) so that clients see them too.
# POSIX sh only; must not print anything or fail.
POSTGRESQL_PORT_OFFSET=${POSTGRESQL_PORT_OFFSET:-32}
PGHOST=127.0.0.1
PGUSER=postgres
if [ -n "${POSTGRESQL_PORT:-}" ]; then
    PGPORT=$POSTGRESQL_PORT
else
    # Only plain decimal numbers (sh arithmetic must not fail here).
    case "${PORT_PREFIX:-x}:$POSTGRESQL_PORT_OFFSET" in
        *[!0-9:]* | 0* | *:0?*) ;;
        *) PGPORT=$((PORT_PREFIX + POSTGRESQL_PORT_OFFSET)) ;;
    esac
fi
