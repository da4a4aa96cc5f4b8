#!/usr/bin/env bash
# A throw-away PostgreSQL server on a free loopback port, for tests.
#
#   hack/postgres.sh up NAME      start (or reuse) server NAME, print its env
#   hack/postgres.sh down NAME    stop it and delete its data
#   hack/postgres.sh env NAME     print the env file
#
# Uses Debian's PostgreSQL (installed with apt-get if initdb is missing).
# State: $SLIPWAY_STATE/postgres/NAME/ (env, port). Listens on 127.0.0.1, trust auth,
# durability switched off (fsync=off): test data only.
# SLIPWAY_POSTGRES_HOST (an address of this machine, e.g. the real node's 198.19.128.1) makes
# it listen there instead, so pods reach it (the chart's tests); it then also trusts clients
# from 198.18.0.0/15, the clusters' pod and node addresses, and from nowhere else.
# The env file exports:
#   SLIPWAY_TEST_POSTGRES_URL=postgres://postgres@HOST:PORT/postgres
#   SLIPWAY_POSTGRES_PORT
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pg_state_dir() { echo "$SLIPWAY_STATE/postgres/$1"; }

# PostgreSQL refuses to run as root. As root we run it as the "postgres" OS
# user; its data directory then cannot live under root's home (mode 700), so
# it goes to /var/tmp/slipway-postgres/NAME instead. As a normal user it runs
# as that user with the data inside the state dir.
if [[ "$(id -u)" == 0 ]]; then
  PG_USER=postgres
  PG_RUN_BASE="${SLIPWAY_PG_RUN_BASE:-/var/tmp/slipway-postgres}"
else
  PG_USER="$(id -un)"
  PG_RUN_BASE=""
fi

pg_run_dir() {
  if [[ -n "$PG_RUN_BASE" ]]; then echo "$PG_RUN_BASE/$1"; else echo "$(pg_state_dir "$1")/run"; fi
}

as_pg() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

ensure_postgres() {
  if [[ -z "$(pg_bindir 2>/dev/null)" ]]; then
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available"
    [[ "$(id -u)" == 0 ]] || die "PostgreSQL is not installed; run as root or: sudo apt-get install postgresql"
    log "installing PostgreSQL with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-common >&2
    # Do not let the package create and start a system-wide cluster on :5432.
    if [[ -f /etc/postgresql-common/createcluster.conf ]]; then
      sed -i 's/^#\?\s*create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
  fi
  [[ -n "$(pg_bindir)" ]] || die "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin"
  id "$PG_USER" >/dev/null 2>&1 || die "OS user '$PG_USER' does not exist (the postgresql package creates it)"
}

# pg_bindir: directory of the newest installed server (initdb, pg_ctl, postgres).
pg_bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [[ -n "$d" && -x "$d/initdb" ]]; then
    echo "$d"
  elif command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
  fi
}

PG_HOST="${SLIPWAY_POSTGRES_HOST:-127.0.0.1}"

pg_ready() { # PORT
  "$(pg_bindir)/pg_isready" -q -h "$PG_HOST" -p "$1" -U postgres
}

print_env() {
  local dir
  dir="$(pg_state_dir "$1")"
  [[ -f "$dir/env" ]] || die "postgres '$1' is not up (no $dir/env); run: $0 up $1"
  echo "# env file: $dir/env   (use: source $dir/env)"
  cat "$dir/env"
}

cmd_up() {
  local name="$1" dir run bin port
  validate_name "$name"
  lock_instance postgres "$name"
  ensure_postgres
  dir="$(pg_state_dir "$name")"
  run="$(pg_run_dir "$name")"
  bin="$(pg_bindir)"

  if [[ -f "$dir/port" ]] && as_pg "$bin/pg_ctl" status -D "$run/data" >/dev/null 2>&1 \
     && pg_ready "$(cat "$dir/port")"; then
    log "postgres '$name' is already up"
    print_env "$name"
    return 0
  fi

  mkdir -p "$dir"
  if [[ -n "$PG_RUN_BASE" ]]; then
    mkdir -p "$PG_RUN_BASE"
    chmod 755 "$PG_RUN_BASE"
  fi
  mkdir -p "$run"
  chown "$PG_USER" "$run"
  chmod 700 "$run"

  if [[ ! -f "$run/data/PG_VERSION" ]]; then
    log "initializing postgres '$name' in $run/data"
    rm -rf "$run/data"
    as_pg "$bin/initdb" -D "$run/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      --no-instructions >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    # Test-only tuning: no durability, loopback only, sockets inside the run dir
    # (not /var/run/postgresql), enough connections for parallel tests.
    as_pg tee -a "$run/data/postgresql.conf" >/dev/null <<EOF

# --- hack/postgres.sh ---
listen_addresses = '$PG_HOST'
unix_socket_directories = '$run'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    if [[ "$PG_HOST" != 127.0.0.1 ]]; then
      echo "host all all 198.18.0.0/15 trust" | as_pg tee -a "$run/data/pg_hba.conf" >/dev/null
    fi
  else
    # Stale (e.g. after a reboot): keep the data, clear a crashed server's pid.
    as_pg "$bin/pg_ctl" stop -D "$run/data" -m immediate >/dev/null 2>&1 || true
  fi

  port="$(free_port)"
  log "starting postgres '$name' on $PG_HOST:$port"
  if ! (close_lock_fd; as_pg "$bin/pg_ctl" start -D "$run/data" -l "$run/postgres.log" -o "-p $port" -w -t 60 >/dev/null); then
    tail -n 40 "$run/postgres.log" >&2 || true
    die "postgres '$name' did not start (log: $run/postgres.log)"
  fi
  wait_for "postgres '$name'" 30 pg_ready "$port" || die "postgres '$name' is not accepting connections"
  echo "$port" >"$dir/port"
  ln -sfn "$run/postgres.log" "$dir/postgres.log"
  cat >"$dir/env" <<EOF
export SLIPWAY_TEST_POSTGRES_URL='postgres://postgres@$PG_HOST:$port/postgres'
export SLIPWAY_POSTGRES_PORT='$port'
EOF
  log "postgres '$name' is up"
  print_env "$name"
}

cmd_down() {
  local name="$1" dir run bin
  validate_name "$name"
  lock_instance postgres "$name"
  dir="$(pg_state_dir "$name")"
  run="$(pg_run_dir "$name")"
  if [[ ! -d "$dir" && ! -d "$run" ]]; then
    log "postgres '$name' does not exist"
    return 0
  fi
  bin="$(pg_bindir)"
  if [[ -n "$bin" && -f "$run/data/postmaster.pid" ]]; then
    as_pg "$bin/pg_ctl" stop -D "$run/data" -m fast -w -t 30 >/dev/null 2>&1 \
      || as_pg "$bin/pg_ctl" stop -D "$run/data" -m immediate >/dev/null 2>&1 || true
  fi
  rm -rf "$run" "$dir"
  log "postgres '$name' removed"
}

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

[[ $# -eq 2 ]] || { usage >&2; exit 2; }
case "$1" in
  up) cmd_up "$2" ;;
  down) cmd_down "$2" ;;
  env) validate_name "$2"; print_env "$2" ;;
  *) usage >&2; exit 2 ;;
esac
