#!/usr/bin/env bash
# A local SMTP catcher (MailHog) on free loopback ports, for tests.
#
#   hack/mail.sh up NAME      start (or reuse) catcher NAME, print its env
#   hack/mail.sh down NAME    stop it and delete its state
#   hack/mail.sh env NAME     print the env file
#
# SMTP listens on SLIPWAY_MAIL_SMTP_HOST (default 127.0.0.1); set it to the real node's
# address (198.19.128.1) for a Slipway that runs in pods (the chart's end-to-end test).
#
# State: $SLIPWAY_STATE/mail/NAME/ (env, log, pid). Messages are kept in memory.
# The env file exports:
#   SLIPWAY_SMTP_URL=smtp://127.0.0.1:SMTP_PORT   (plain SMTP, no TLS, any/no auth)
#   SLIPWAY_SMTP_HOST, SLIPWAY_SMTP_PORT
#   SLIPWAY_MAIL_API=http://127.0.0.1:HTTP_PORT   (MailHog API + web UI), e.g.
#     GET    $SLIPWAY_MAIL_API/api/v2/messages
#     GET    $SLIPWAY_MAIL_API/api/v2/search?kind=to&query=user@example.com
#     DELETE $SLIPWAY_MAIL_API/api/v1/messages
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mail_dir() { echo "$SLIPWAY_STATE/mail/$1"; }

api_ok() { curl -sf --max-time 2 "$1/api/v2/messages?limit=1" >/dev/null; }

healthy() {
  local dir="$1"
  [[ -f "$dir/env" ]] && pid_alive "$dir/pids/mailhog.pid" || return 1
  (
    # shellcheck disable=SC1091
    source "$dir/env"
    api_ok "$SLIPWAY_MAIL_API"
  )
}

print_env() {
  local dir
  dir="$(mail_dir "$1")"
  [[ -f "$dir/env" ]] || die "mail catcher '$1' is not up (no $dir/env); run: $0 up $1"
  echo "# env file: $dir/env   (use: source $dir/env)"
  cat "$dir/env"
}

cmd_up() {
  local name="$1" dir
  validate_name "$name"
  lock_instance mail "$name"
  dir="$(mail_dir "$name")"
  if healthy "$dir"; then
    log "mail catcher '$name' is already up"
    print_env "$name"
    return 0
  fi
  if [[ -d "$dir" ]]; then
    stop_all_pidfiles "$dir"
    rm -rf "$dir"
  fi
  need_cmd curl curl
  local mailhog
  mailhog="$(tool_path mailhog)"
  mkdir -p "$dir"

  local ports smtp http host="${SLIPWAY_MAIL_SMTP_HOST:-127.0.0.1}"
  mapfile -t ports < <(free_ports 2)
  smtp="${ports[0]}" http="${ports[1]}"
  log "starting MailHog '$name': SMTP $host:$smtp, HTTP 127.0.0.1:$http"
  # API and UI on the same address: MailHog then serves both from one listener.
  start_daemon mailhog "$dir" "$mailhog" \
    -hostname=mailhog.slipway.test \
    -smtp-bind-addr="$host:$smtp" \
    -api-bind-addr="127.0.0.1:$http" \
    -ui-bind-addr="127.0.0.1:$http" \
    -storage=memory
  local deadline=$((SECONDS + 30))
  until api_ok "http://127.0.0.1:$http"; do
    if ! pid_alive "$dir/pids/mailhog.pid" || ((SECONDS >= deadline)); then
      show_log mailhog "$dir"
      stop_all_pidfiles "$dir"
      die "MailHog '$name' did not come up"
    fi
    sleep 0.2
  done
  cat >"$dir/env" <<EOF
export SLIPWAY_SMTP_URL='smtp://$host:$smtp'
export SLIPWAY_SMTP_HOST='$host'
export SLIPWAY_SMTP_PORT='$smtp'
export SLIPWAY_MAIL_API='http://127.0.0.1:$http'
EOF
  log "mail catcher '$name' is up (web UI: http://127.0.0.1:$http/)"
  print_env "$name"
}

cmd_down() {
  local name="$1" dir
  validate_name "$name"
  lock_instance mail "$name"
  dir="$(mail_dir "$name")"
  [[ -d "$dir" ]] || { log "mail catcher '$name' does not exist"; return 0; }
  stop_all_pidfiles "$dir"
  rm -rf "$dir"
  log "mail catcher '$name' removed"
}

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

[[ $# -eq 2 ]] || { usage >&2; exit 2; }
case "$1" in
  up) cmd_up "$2" ;;
  down) cmd_down "$2" ;;
  env) validate_name "$2"; print_env "$2" ;;
  *) usage >&2; exit 2 ;;
esac
