#!/usr/bin/env bash
# The whole test-suite, as the README gives it and CI runs it:
#
#   hack/test.sh [cargo test args...]
#
# Builds what is missing (Kubernetes, etcd, kwok, MailHog: hack/tools.sh), starts a
# private control plane, mail catcher and PostgreSQL on free loopback ports (named
# test-<pid>, so it never collides with `hack/up.sh`'s dev instances or a parallel
# run), runs `cargo test --workspace`, and tears them down again. The tests read the
# components from the environment; a missing one fails the suite, it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

name="test-$$"
started=$SECONDS
cleanup() {
  local rc=$?
  hack/stack.sh down "$name" >/dev/null 2>&1 || true
  log "test-suite finished in $((SECONDS - started))s (exit $rc)"
}
trap cleanup EXIT

hack/tools.sh
eval "$(hack/stack.sh up "$name")"
log "components of '$name' are up after $((SECONDS - started))s; running cargo test"
cargo test --workspace --all-targets "$@"
