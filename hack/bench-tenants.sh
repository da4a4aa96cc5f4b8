#!/usr/bin/env bash
# Tenant creation against its floor, on a real control plane (issue 13):
#
#   hack/bench-tenants.sh
#
# Starts (or reuses) the stack named `bench-tenants`, runs
#   cargo bench -p slipway-controller --bench tenants
# (release build; source and what it measures: controller/benches/tenants.rs) and tears the
# stack down again. SLIPWAY_BENCH_TENANTS sets the tenants per batch (40); set
# SLIPWAY_BENCH_KEEP=1 to leave the stack running.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

name=bench-tenants
cleanup() {
  local rc=$?
  if [[ "${SLIPWAY_BENCH_KEEP:-0}" != 1 ]]; then
    hack/stack.sh down "$name" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

hack/tools.sh
eval "$(hack/stack.sh up "$name")"
log "stack '$name' is up; running the tenants bench (release build)"
cargo bench -p slipway-controller --bench tenants -- "$@"
