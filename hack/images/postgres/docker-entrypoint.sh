#!/usr/bin/env bash
# Entrypoint of localhost/slipway-dev/postgres:15, with the contract of the official image's
# (https://github.com/docker-library/postgres, docker-entrypoint.sh) that Slipway relies on:
#
#   POSTGRES_PASSWORD  password of POSTGRES_USER (required on first start, unless
#                      POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER      superuser created by initdb (default postgres)
#   POSTGRES_DB        database created on first start (default $POSTGRES_USER)
#   PGDATA             data directory (default /var/lib/postgresql/data); created by
#                      initdb with mode 0700, so its parent only needs to be writable
#   POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256)
#   /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz  run once after the first initdb
#
# A start with an empty PGDATA initializes it; later starts keep the data. Either way
# postgres ends up exec'ed as PID 1, listening on '*' (port 5432, or PGPORT).
# Not implemented: *_FILE variables, POSTGRES_INITDB_WALDIR, nss_wrapper for uids without
# a passwd entry (the image's user postgres has uid 999, the uid Slipway runs it as).
set -Eeuo pipefail

# `image -c foo=bar` means `postgres -c foo=bar`.
if [ "${1:0:1}" = - ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi
for arg; do
  case "$arg" in -'?' | --help | --describe-config | -V | --version) exec "$@" ;; esac
done

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
  # Started as root (the image's USER overridden): hand the data to postgres and drop to
  # it, as the official image does with gosu.
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ -s "$PGDATA/PG_VERSION" ]; then
  echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
  exec "$@"
fi

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:=}"
: "${POSTGRES_INITDB_ARGS:=}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
  cat >&2 <<'EOE'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser, or POSTGRES_HOST_AUTH_METHOD=trust (not recommended).
EOE
  exit 1
fi

# A directory we own but left half-initialized by a crash is initdb's to judge; only make
# sure its mode is the one postgres demands.
if [ -d "$PGDATA" ]; then
  chmod 0700 "$PGDATA" || :
fi
# Local (unix socket) connections are trusted, as in the official image; TCP connections,
# the loopback included, need the password (official trusts the loopback too).
# --pwfile refuses an empty file, hence the newline.
eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") \
  --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" '"$POSTGRES_INITDB_ARGS"
printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

# A temporary server on the unix socket only, for the setup below.
export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
shift # "postgres": the rest are its options, for the temporary server too
pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@" -c listen_addresses= -p "${PGPORT:-5432}")" -w start
set -- postgres "$@"

# Over the unix socket, whatever PGHOST the environment names.
psql_local() {
  PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}
exists=$(psql_local --dbname postgres --set db="$POSTGRES_DB" --tuples-only \
  <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
if [ -z "$exists" ]; then
  psql_local --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
fi

for f in /docker-entrypoint-initdb.d/*; do
  case "$f" in
    *.sh)
      echo "$0: running $f"
      # shellcheck disable=SC1090 # the user's init script
      if [ -x "$f" ]; then "$f"; else . "$f"; fi
      ;;
    *.sql) echo "$0: running $f"; psql_local --dbname "$POSTGRES_DB" -f "$f" ;;
    *.sql.gz) echo "$0: running $f"; gunzip -c "$f" | psql_local --dbname "$POSTGRES_DB" ;;
    *) [ ! -e "$f" ] || echo "$0: ignoring $f" ;;
  esac
done

pg_ctl -D "$PGDATA" -m fast -w stop
unset PGPASSWORD
echo "PostgreSQL init process complete; ready for start up."
exec "$@"
