#!/usr/bin/env bash
# The whole test-suite, as the README gives it and CI runs it:
#
#   hack/test.sh [cargo test args...]
#
# Builds what is missing (Kubernetes, etcd, kwok, MailHog, CoreDNS: hack/tools.sh; the
# node's images: hack/images.sh; schemathesis: hack/schemathesis.sh), starts a private
# control plane with kwok nodes, mail catcher and PostgreSQL on free loopback ports (named
# test-<pid>, so it never collides with `hack/up.sh`'s dev instances or a parallel run), and
# a second control plane real-<pid> with the machine's real node (tests/workloads.rs; the env
# file SLIPWAY_REAL_ENV names) into which it imports Slipway's own image (hack/images.sh
# slipway: the release build) for the chart's tests (tests/chart.rs, with helm from
# hack/tools.sh, and a second mail catcher and a PostgreSQL server, both chart-<pid>, that
# pods reach on the node's address),
# runs `cargo test --workspace`, then a short smoke of the load tests (loadtest/run.sh mixed, on
# a stack of its own), then the real node's end-to-end tests (tests/workloads.rs) a
# second time against Slipway installed by its chart, and tears them down again.
# The tests read the components from the environment; a missing one fails the suite, it is
# never skipped.
#
# The real node is one per machine (hack/node.sh): stop a dev cluster that holds it
# (`hack/cluster.sh down dev`) before running the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

name="test-$$"
real="real-$$"
started=$SECONDS
# On failure, what the real node looked like (CI keeps only the output): its pods, their
# containers' states, the cluster's recent events, and the tail of the node's logs.
real_node_report() {
  local dir="$SLIPWAY_STATE/clusters/$real"
  [[ -f "$dir/kubeconfig" ]] || return 0
  log "the suite failed: the real node as it is now"
  local kubectl
  kubectl="$(tool_path kubectl)" || return 0
  "$kubectl" --kubeconfig "$dir/kubeconfig" get nodes,pods -A -o wide 2>&1 | head -80 || true
  "$kubectl" --kubeconfig "$dir/kubeconfig" get events -A --sort-by=.lastTimestamp 2>&1 | tail -60 || true
  # The kubelet evicts pods when the disk runs low (DiskPressure): say how full it is.
  df -h "$SLIPWAY_STATE" 2>&1 || true
  local f
  for f in "$SLIPWAY_STATE"/node/logs/{kubelet,kube-proxy,containerd}.log; do
    [[ -f "$f" ]] && { log "tail of $f"; tail -n 40 "$f"; }
  done
  # Slipway as the chart installed it: what its pods last warned about (the chart pass's API
  # answers only "the Kubernetes API failed"; its log says which error).
  local pod
  for pod in $("$kubectl" --kubeconfig "$dir/kubeconfig" -n slipway-chart get pods -o name 2>/dev/null); do
    log "the last warnings of $pod"
    "$kubectl" --kubeconfig "$dir/kubeconfig" -n slipway-chart logs "$pod" --tail=400 2>&1 |
      grep -E 'WARN|ERROR' | tail -n 20 | cut -c1-600 || true
  done
  return 0
}
# What the in-process Slipway of each test binary warned about (tests/support/mod.rs).
export SLIPWAY_TEST_LOGS="$SLIPWAY_STATE/test-logs/$$"
rm -rf "$SLIPWAY_TEST_LOGS" && mkdir -p "$SLIPWAY_TEST_LOGS"
slipway_log_report() {
  local f
  for f in "$SLIPWAY_TEST_LOGS"/*.log; do
    [[ -s "$f" ]] || continue
    log "the last warnings of Slipway in $(basename "$f" .log)"
    # Each event's first line (a timestamp), not the backtraces under errors.
    grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$f" | tail -n 40 | cut -c1-600
  done
  return 0
}
# Printed last, so that a log shortened to its end still says why: each failed test's panic
# (its first lines; libtest prints them in the middle of its output, and CI may keep only the
# head and the tail), and the real node's pressure conditions and free disk.
failure_summary() {
  log "why the suite failed, in short"
  [[ -s "$SLIPWAY_TEST_LOGS/cargo-test.out" ]] &&
    awk '/ panicked at /{n=4} n>0{print substr($0,1,240); n--}' "$SLIPWAY_TEST_LOGS/cargo-test.out" | tail -n 12
  local dir="$SLIPWAY_STATE/clusters/$real" kubectl
  if [[ -f "$dir/kubeconfig" ]] && kubectl="$(tool_path kubectl)"; then
    echo "real node: $("$kubectl" --kubeconfig "$dir/kubeconfig" get nodes -l slipway.dev/node=real -o \
      jsonpath='{range .items[*].status.conditions[*]}{.type}={.status} {end}' 2>&1 | cut -c1-200)"
  fi
  echo "free disk in $SLIPWAY_STATE: $(df -h --output=avail "$SLIPWAY_STATE" 2>/dev/null | tail -n 1 | tr -d ' ')"
  return 0
}
cleanup() {
  local rc=$?
  ((rc == 0)) || { slipway_log_report; real_node_report; failure_summary; }
  rm -rf "$SLIPWAY_TEST_LOGS"
  hack/cluster.sh down "$real" >/dev/null 2>&1 || true
  hack/stack.sh down "$name" >/dev/null 2>&1 || true
  hack/mail.sh down "chart-$$" >/dev/null 2>&1 || true
  hack/postgres.sh down "chart-$$" >/dev/null 2>&1 || true
  log "test-suite finished in $((SECONDS - started))s (exit $rc)"
}
trap cleanup EXIT

# Builds and images need room (CI once ran out of it while linking): say how much there is.
log "free disk: $(df -h --output=avail . | tail -n 1 | tr -d ' ') in $(pwd), $(df -h --output=avail "$SLIPWAY_STATE" 2>/dev/null | tail -n 1 | tr -d ' ') in $SLIPWAY_STATE"
hack/tools.sh
# tests/openapi.rs runs schemathesis against the API's document.
SLIPWAY_SCHEMATHESIS="$(hack/schemathesis.sh path)"
export SLIPWAY_SCHEMATHESIS
eval "$(hack/stack.sh up "$name")"
hack/cluster.sh up "$real" --real-node >/dev/null
export SLIPWAY_REAL_ENV="$SLIPWAY_STATE/clusters/$real/env"
# tests/chart.rs: Slipway's image in the node, helm, and a mail catcher the pods can reach.
hack/node.sh import slipway
SLIPWAY_HELM="$(tool_path helm)"
export SLIPWAY_HELM
chart_mail="$(SLIPWAY_MAIL_SMTP_HOST="$NODE_ADDRESS" hack/mail.sh up "chart-$$")"
SLIPWAY_CHART_SMTP_URL="$(sed -n "s/^export SLIPWAY_SMTP_URL='\(.*\)'$/\1/p" <<<"$chart_mail")"
SLIPWAY_CHART_MAIL_API="$(sed -n "s/^export SLIPWAY_MAIL_API='\(.*\)'$/\1/p" <<<"$chart_mail")"
[[ -n "$SLIPWAY_CHART_SMTP_URL" && -n "$SLIPWAY_CHART_MAIL_API" ]] || die "no env from hack/mail.sh up chart-$$"
export SLIPWAY_CHART_SMTP_URL SLIPWAY_CHART_MAIL_API
# ... and a PostgreSQL server they reach there, for the releases with two API replicas.
chart_postgres="$(SLIPWAY_POSTGRES_HOST="$NODE_ADDRESS" hack/postgres.sh up "chart-$$")"
SLIPWAY_CHART_POSTGRES_URL="$(sed -n "s/^export SLIPWAY_TEST_POSTGRES_URL='\(.*\)'$/\1/p" <<<"$chart_postgres")"
[[ -n "$SLIPWAY_CHART_POSTGRES_URL" ]] || die "no env from hack/postgres.sh up chart-$$"
export SLIPWAY_CHART_POSTGRES_URL
log "components of '$name' are up after $((SECONDS - started))s; running cargo test"
# libtest's report (stdout) is kept for failure_summary too.
cargo test --workspace --all-targets "$@" | tee -a "$SLIPWAY_TEST_LOGS/cargo-test.out"
# The real node's end-to-end tests again, against Slipway installed by its chart (two replicas
# of everything, the API on PostgreSQL, reached through its node port): tests/support/mod.rs.
# Only for the whole suite: arguments select a part of it.
if (($# == 0)); then
  # The load tests' smoke (loadtest/README.md): the mixed scenario, briefly, on a stack of its
  # own, so the scenarios and their thresholds never rot.
  log "loadtest/run.sh mixed (smoke)"
  SLIPWAY_LOADTEST_STACK="loadtest-$$" SLIPWAY_LOADTEST_RESULTS="$SLIPWAY_STATE/loadtest/results-$$" \
    loadtest/run.sh mixed -- --users 4 --increase-rate 4 --run-time 20s
  rm -rf "$SLIPWAY_STATE/loadtest/results-$$"
  # The first pass's tenants still hold the real node's CPU (the scheduler counts requests,
  # and the tests leave their tenants behind): delete them before Slipway's own pods and the
  # second pass's join. Their namespaces go now (the namespace controller); the Tenants once
  # the chart's controller takes their finalizer off.
  real_kubectl() { "$(tool_path kubectl)" --kubeconfig "$SLIPWAY_STATE/clusters/$real/kubeconfig" "$@"; }
  real_kubectl delete tenants.slipway.dev --all --wait=false >/dev/null
  real_kubectl delete namespaces -l slipway.dev/tenant --wait=false >/dev/null
  tenant_namespaces_gone() { [[ -z "$(real_kubectl get namespaces -l slipway.dev/tenant -o name)" ]]; }
  wait_for "the first pass's tenant namespaces to go" 300 tenant_namespaces_gone \
    || die "tenant namespaces are left: $(real_kubectl get namespaces -l slipway.dev/tenant -o name | tr '\n' ' ')"
  log "tests/workloads.rs again, against Slipway installed by its chart"
  SLIPWAY_UNDER_TEST=chart cargo test --test workloads | tee -a "$SLIPWAY_TEST_LOGS/cargo-test.out"
fi
