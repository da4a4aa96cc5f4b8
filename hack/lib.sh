# shellcheck shell=bash disable=SC2034  # (constants used by the scripts that source it)
# Shared helpers for the hack/ scripts. Source it; do not execute it.
#
#   HACK_DIR        absolute path of hack/
#   SLIPWAY_CACHE   build cache (binaries), outside the repo
#   SLIPWAY_STATE   runtime state (clusters, mail, postgres), outside the repo

set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SLIPWAY_CACHE="${SLIPWAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/slipway}"
SLIPWAY_STATE="${SLIPWAY_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/slipway}"

# Addresses of the local clusters, all in the benchmark range 198.18.0.0/15 (RFC 2544), which
# is never routed off the machine (192.0.2.0/24 is not used: on the CI machines it is the
# real network of eth0).
SERVICE_CIDR=198.18.0.0/16      # ClusterIPs
SERVICE_FIRST_IP=198.18.0.1     # the `kubernetes` Service
CLUSTER_DNS_IP=198.18.0.10      # the `kube-dns` Service (CoreDNS, real node only)
POD_CIDR=198.19.0.0/17          # every pod IP of a cluster
KWOK_POD_CIDR=198.19.0.0/18     # pods on kwok's simulated nodes
NODE_POD_CIDR=198.19.64.0/24    # pods on the real node (bridge CNI, host-local IPAM)
NODE_ADDRESS=198.19.128.1       # the real node's address, on the interface below
NODE_INTERFACE=slipway0
NODE_NAME=real-0
INGRESS_CLASS=traefik           # the real node's IngressClass (hack/node/traefik.yaml)...
INGRESS_NODE_PORT=30080         # ...served on this node port of $NODE_ADDRESS

log()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARN: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# validate_name NAME: instance names become directory names and object names.
validate_name() {
  [[ "${1:-}" =~ ^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$ ]] \
    || die "invalid name '${1:-}': use lowercase letters, digits and '-' (max 40 chars)"
}

# free_port: print a TCP port on 127.0.0.1 that is free right now. The kernel
# picks it (bind to port 0), so parallel instances do not collide in practice.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# free_ports N: print N distinct free ports, one per line. All sockets are held
# open until every port is chosen so the kernel cannot hand out the same one twice.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
EOF
}

# wait_for DESCRIPTION TIMEOUT_SECONDS CMD...: retry CMD every 0.5s until it succeeds.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      warn "timed out after ${timeout}s waiting for ${what}"
      return 1
    fi
    sleep 0.5
  done
}

# pid_alive PIDFILE: true if the pidfile names a running process.
pid_alive() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1")"
  kill -0 "$pid" 2>/dev/null
}

# start_daemon NAME DIR CMD...: run CMD detached (own session, no terminal),
# stdout+stderr to DIR/logs/NAME.log, pid in DIR/pids/NAME.pid.
start_daemon() {
  local name="$1" dir="$2"; shift 2
  mkdir -p "$dir/logs" "$dir/pids"
  (
    close_lock_fd
    exec setsid nohup "$@" >"$dir/logs/$name.log" 2>&1 </dev/null
  ) &
  echo $! >"$dir/pids/$name.pid"
}

# close_lock_fd: daemons must not inherit the instance lock (see lock_instance),
# or it would stay held as long as they run.
close_lock_fd() {
  if [[ -n "${SLIPWAY_LOCK_FD:-}" ]]; then
    exec {SLIPWAY_LOCK_FD}>&-
  fi
}

# stop_pidfiles PIDFILE...: TERM the processes (in the given order), wait up
# to 20s for all of them to exit, then KILL what is left. Signalling them all
# before waiting keeps `down` fast (kube-apiserver alone takes seconds to drain).
stop_pidfiles() {
  local f pid
  local -a pids=()
  for f in "$@"; do
    [[ -s "$f" ]] || continue
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + 20)) alive
  while true; do
    alive=()
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive+=("$pid")
    done
    ((${#alive[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      warn "pids ${alive[*]} did not stop after TERM, sending KILL"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$@"
}

stop_pidfile() { stop_pidfiles "$1"; }

# stop_all_pidfiles DIR: stop every DIR/pids/*.pid.
stop_all_pidfiles() {
  local -a files=()
  local f
  for f in "$1"/pids/*.pid; do
    [[ -e "$f" ]] && files+=("$f")
  done
  ((${#files[@]} == 0)) || stop_pidfiles "${files[@]}"
}

# show_log NAME DIR: print the tail of a component's log (for failures).
show_log() {
  local f="$2/logs/$1.log"
  if [[ -f "$f" ]]; then
    printf -- '----- last 40 lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
    printf -- '-----\n' >&2
  fi
}

# need_cmd CMD APT_PACKAGE: install APT_PACKAGE with apt-get if CMD is missing.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || die "'$1' is missing and apt-get is not available; install $2"
  log "installing $2 (for $1)"
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$2" >&2
  command -v "$1" >/dev/null 2>&1 || die "installed $2 but '$1' is still missing"
}

# tool_path BINARY: cached path of a binary built by hack/tools.sh (builds if missing).
tool_path() {
  "$HACK_DIR/tools.sh" path "$1"
}

# lock_instance KIND NAME: hold an exclusive lock for the rest of the script, so
# concurrent `up`/`down` calls for the same instance (e.g. from parallel test
# binaries) run one after the other; the second `up` then finds it healthy.
# The lock files ($SLIPWAY_STATE/.locks/KIND-NAME.lock) are never deleted:
# deleting a lock file others may be waiting on would break the mutual exclusion.
lock_instance() {
  mkdir -p "$SLIPWAY_STATE/.locks"
  exec {SLIPWAY_LOCK_FD}>"$SLIPWAY_STATE/.locks/$1-$2.lock"
  flock "$SLIPWAY_LOCK_FD"
}
