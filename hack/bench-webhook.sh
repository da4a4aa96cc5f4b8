#!/usr/bin/env bash
# Load benchmark of the admission webhook against a real control plane:
#
#   hack/bench-webhook.sh [extra args for the bench binary]
#
# Starts (or reuses) the stack named `bench`, runs
#   cargo bench -p slipway-webhook --bench admission
# (release build; source: webhook/benches/admission.rs) and tears the stack down again.
# Phase 1 drives the webhook directly over HTTPS (UPDATE, CREATE dryRun, CREATE with the
# ledger write) at fixed concurrency; phase 2 creates Apps through kube-apiserver with and
# without the webhook registered. Tuning: SLIPWAY_BENCH_REQUESTS, SLIPWAY_BENCH_CREATES,
# SLIPWAY_BENCH_CONCURRENCY, SLIPWAY_BENCH_SEED_APPS, SLIPWAY_BENCH_APPS, SLIPWAY_BENCH_ROUNDS, SLIPWAY_BENCH_PHASES
# (see the bench's docs). Set SLIPWAY_BENCH_KEEP=1 to leave the stack running.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

name=bench
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
log "stack '$name' is up; running the admission bench (release build)"
cargo bench -p slipway-webhook --bench admission -- "$@"
