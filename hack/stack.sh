#!/usr/bin/env bash
# The whole local test stack in one go: cluster + mail catcher + PostgreSQL,
# all named NAME, with one combined env file.
#
#   hack/stack.sh up NAME      hack/{cluster,mail,postgres}.sh up NAME, print combined env
#   hack/stack.sh down NAME    stop all three
#   hack/stack.sh env NAME     print the combined env file
#
# Combined env file: $SLIPWAY_STATE/stack/NAME.env
#   eval "$(hack/stack.sh up dev)"      or      source ~/.local/state/slipway/stack/dev.env
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

env_file() { echo "$SLIPWAY_STATE/stack/$1.env"; }

print_env() {
  local f
  f="$(env_file "$1")"
  [[ -f "$f" ]] || die "stack '$1' is not up (no $f); run: $0 up $1"
  echo "# env file: $f   (use: source $f)"
  cat "$f"
}

cmd_up() {
  local name="$1" f
  validate_name "$name"
  # Postgres and mail are quick; start them while the cluster comes up.
  "$HACK_DIR/postgres.sh" up "$name" >/dev/null
  "$HACK_DIR/mail.sh" up "$name" >/dev/null
  "$HACK_DIR/cluster.sh" up "$name" >/dev/null
  f="$(env_file "$name")"
  mkdir -p "$(dirname "$f")"
  cat "$SLIPWAY_STATE/clusters/$name/env" "$SLIPWAY_STATE/mail/$name/env" \
    "$SLIPWAY_STATE/postgres/$name/env" >"$f"
  print_env "$name"
}

cmd_down() {
  local name="$1"
  validate_name "$name"
  "$HACK_DIR/cluster.sh" down "$name"
  "$HACK_DIR/mail.sh" down "$name"
  "$HACK_DIR/postgres.sh" down "$name"
  rm -f "$(env_file "$name")"
}

[[ $# -eq 2 ]] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
case "$1" in
  up) cmd_up "$2" ;;
  down) cmd_down "$2" ;;
  env) validate_name "$2"; print_env "$2" ;;
  *) die "unknown command '$1' (use: up|down|env NAME)" ;;
esac
