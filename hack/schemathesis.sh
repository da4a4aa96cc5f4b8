#!/usr/bin/env bash
# schemathesis (from PyPI) at a pinned version, in its own Python venv in the tool cache,
# for the API's property-based tests (tests/openapi.rs).
#
#   hack/schemathesis.sh           install it unless it is cached
#   hack/schemathesis.sh path      print the path of its `schemathesis` command (installing it if needed)
#
# The venv is $SLIPWAY_CACHE/venv/schemathesis-<version>; it counts as installed once it holds
# the marker file `.installed`, so an interrupted install is redone. To bump the version, edit
# SCHEMATHESIS_VERSION: the new version gets a venv of its own.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCHEMATHESIS_VERSION=4.32.5

venv_dir() { echo "$SLIPWAY_CACHE/venv/schemathesis-$SCHEMATHESIS_VERSION"; }

installed() { [[ -f "$(venv_dir)/.installed" && -x "$(venv_dir)/bin/schemathesis" ]]; }

install() {
  installed && return 0
  mkdir -p "$SLIPWAY_CACHE/venv"
  # Serialize concurrent installs (parallel test runs).
  exec {lockfd}>"$SLIPWAY_CACHE/venv/.schemathesis.lock"
  flock "$lockfd"
  if installed; then
    exec {lockfd}>&-
    return 0
  fi
  need_cmd python3 python3
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "python3 has no venv/ensurepip and apt-get is missing: install python3-venv"
    log "installing python3-venv (for python3 -m venv)"
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
      python3-venv >&2
  fi
  local dir start=$SECONDS
  dir="$(venv_dir)"
  log "installing schemathesis $SCHEMATHESIS_VERSION into $dir"
  # A venv cannot be moved (its scripts name its path): build it in place, mark it when done.
  rm -rf "$dir"
  if ! python3 -m venv "$dir" >&2 \
    || ! "$dir/bin/pip" install --disable-pip-version-check --no-input -q "schemathesis==$SCHEMATHESIS_VERSION" >&2; then
    rm -rf "$dir"
    exec {lockfd}>&-
    die "installing schemathesis $SCHEMATHESIS_VERSION failed"
  fi
  "$dir/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION" \
    || die "$dir/bin/schemathesis is not version $SCHEMATHESIS_VERSION"
  touch "$dir/.installed"
  exec {lockfd}>&-
  log "installed schemathesis $SCHEMATHESIS_VERSION in $((SECONDS - start))s"
}

case "${1:-install}" in
  install) install ;;
  path) install; echo "$(venv_dir)/bin/schemathesis" ;;
  -h|--help|help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (use: install | path)" ;;
esac
