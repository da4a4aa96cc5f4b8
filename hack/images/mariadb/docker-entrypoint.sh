#!/usr/bin/env bash
# Entrypoint of localhost/slipway-dev/mariadb:10.11, with the contract of the official
# image's (https://github.com/MariaDB/mariadb-docker, docker-entrypoint.sh) that Slipway
# relies on. On the first start with an empty datadir (/var/lib/mysql) it runs
# mariadb-install-db and, through a temporary socket-only server:
#
#   root password    MARIADB_ROOT_PASSWORD, or a generated one (MARIADB_RANDOM_ROOT_PASSWORD,
#                    printed once), or none (MARIADB_ALLOW_EMPTY_ROOT_PASSWORD); one is required
#   root@MARIADB_ROOT_HOST (default %) with the same password
#   MARIADB_DATABASE created; MARIADB_USER@% with MARIADB_PASSWORD, granted all on it
#   time zone tables (unless MARIADB_INITDB_SKIP_TZINFO)
#   /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz
#
# Each MARIADB_* falls back to its MYSQL_* twin. Later starts keep the data. mariadbd ends
# up exec'ed as PID 1, listening on every interface, port 3306.
# Not implemented: *_FILE and *_HASH variables, replication, healthcheck users, restoring
# backups, automatic mariadb-upgrade.
set -Eeuo pipefail
shopt -s nullglob

note() { printf '%s [Note] [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$*"; }
error() { printf '%s [ERROR] [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$*" >&2; exit 1; }

# `image --foo` means `mariadbd --foo`.
if [ "${1:0:1}" = - ]; then
  set -- mariadbd "$@"
fi
if [ "$1" != mariadbd ] && [ "$1" != mysqld ]; then
  exec "$@"
fi
for arg; do
  case "$arg" in -'?' | --help | --print-defaults | -V | --version) exec "$@" ;; esac
done

# The server's own view of its configuration (files plus arguments), as official.
config() {
  "${@:2}" --verbose --help 2>/dev/null |
    awk -v conf="$1" '$1 == conf && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; exit }'
}
DATADIR=$(config datadir "$@")
SOCKET=$(config socket "$@")
if [ -z "$DATADIR" ] || [ -z "$SOCKET" ]; then
  error "mariadbd could not read its configuration: $("$@" --verbose --help 2>&1 >/dev/null)"
fi

if [ "$(id -u)" = 0 ]; then
  # Started as root (the image's USER overridden): hand the data to mysql and drop to it,
  # as the official image does with gosu.
  mkdir -p "$DATADIR"
  find "$DATADIR" \! -user mysql -exec chown mysql:mysql '{}' +
  exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ -d "$DATADIR/mysql" ]; then
  exec "$@"
fi

for var in DATABASE USER PASSWORD ROOT_PASSWORD ROOT_HOST RANDOM_ROOT_PASSWORD INITDB_SKIP_TZINFO; do
  maria=MARIADB_$var mysql=MYSQL_$var
  export "$maria=${!maria:-${!mysql:-}}"
done
: "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:=${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
: "${MARIADB_ROOT_HOST:=%}"
if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] && [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
  error "Database is uninitialized and password option is not specified. You need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD"
fi

note "Initializing database files"
mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal "${@:2}" \
  --skip-test-db --old-mode=UTF8_IS_UTF8MB3 --default-time-zone=SYSTEM --enforce-storage-engine= \
  --skip-log-bin --expire-logs-days=0 \
  --loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0

note "Starting temporary server"
"$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" --wsrep_on=OFF \
  --expire-logs-days=0 --loose-innodb_buffer_pool_load_at_startup=0 &
pid=$!
sql() { MYSQL_PWD=${ROOT_PWD:-} mariadb --protocol=socket -uroot -hlocalhost --socket="$SOCKET" "$@"; }
for i in {30..0}; do
  if sql --database=mysql <<<'SELECT 1' &>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || error "the temporary server died"
  sleep 1
done
[ "$i" != 0 ] || error "Unable to start server."

if [ -z "$MARIADB_INITDB_SKIP_TZINFO" ]; then
  mariadb-tzinfo-to-sql --skip-write-binlog /usr/share/zoneinfo | sql --database=mysql
fi
if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
  MARIADB_ROOT_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  note "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
fi
export MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD=$MARIADB_ROOT_PASSWORD

# A string literal's content: backslashes and quotes escaped.
literal() {
  local s=${1//\\/\\\\}
  printf '%s' "${s//\'/\\\'}"
}
rootpw=$(literal "$MARIADB_ROOT_PASSWORD")
create_root=
if [ "$MARIADB_ROOT_HOST" != localhost ]; then
  create_root="CREATE USER 'root'@'$MARIADB_ROOT_HOST' IDENTIFIED BY '$rootpw';
GRANT ALL ON *.* TO 'root'@'$MARIADB_ROOT_HOST' WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@'$MARIADB_ROOT_HOST' WITH GRANT OPTION;"
fi
create_db='' create_user='' grant=
if [ -n "$MARIADB_DATABASE" ]; then
  note "Creating database $MARIADB_DATABASE"
  create_db="CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE//\`/\`\`}\`;"
fi
if [ -n "$MARIADB_USER" ] && [ -n "$MARIADB_PASSWORD" ]; then
  note "Creating user $MARIADB_USER"
  create_user="CREATE USER '$(literal "$MARIADB_USER")'@'%' IDENTIFIED BY '$(literal "$MARIADB_PASSWORD")';"
  if [ -n "$MARIADB_DATABASE" ]; then
    # `_` is a wildcard in a grant's database name.
    db=${MARIADB_DATABASE//\`/\`\`}
    grant="GRANT ALL ON \`${db//_/\\_}\`.* TO '$(literal "$MARIADB_USER")'@'%';"
  fi
fi
sql --database=mysql --binary-mode <<EOSQL
SET @@SESSION.SQL_LOG_BIN=0;
SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');
DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname,'\'');
SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$rootpw');
$create_root
$create_db
$create_user
$grant
EOSQL
ROOT_PWD=$MARIADB_ROOT_PASSWORD

for f in /docker-entrypoint-initdb.d/*; do
  case "$f" in
    *.sh)
      note "$0: running $f"
      # shellcheck disable=SC1090 # the user's init script
      if [ -x "$f" ]; then "$f"; else . "$f"; fi
      ;;
    *.sql) note "$0: running $f"; sql ${MARIADB_DATABASE:+--database="$MARIADB_DATABASE"} <"$f" ;;
    *.sql.gz) note "$0: running $f"; gunzip -c "$f" | sql ${MARIADB_DATABASE:+--database="$MARIADB_DATABASE"} ;;
    *) note "$0: ignoring $f" ;;
  esac
done

note "Stopping temporary server"
kill "$pid"
wait "$pid"
note "MariaDB init process done. Ready for start up."
exec "$@"
