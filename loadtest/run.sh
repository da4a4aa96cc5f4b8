#!/usr/bin/env bash
# Slipway's load tests (loadtest/README.md):
#
#   loadtest/run.sh [KIND...] [-- goose options]
#
# KIND is signup, logins, tenants, apps, dashboard, reads or mixed (default: all seven, in that order).
# Without SLIPWAY_LOADTEST_HOST it starts its own local stack: a control plane with kwok
# nodes and a mail catcher named `loadtest` (hack/cluster.sh, hack/mail.sh) and a release
# build of `slipway all` on a fresh SQLite file, and tears them down afterwards. With
# SLIPWAY_LOADTEST_HOST=http://... (and SLIPWAY_MAIL_API, the mail catcher that Slipway
# mails to) it loads that Slipway instead, e.g. one installed by the Helm chart.
#
# Goose options default to `--users 16 --increase-rate 8 --run-time 60s`. Results: goose's
# Markdown and HTML report of each load test and a SUMMARY.md (the machine, the command,
# each test's thresholds and verdict) in $SLIPWAY_LOADTEST_RESULTS (default loadtest/results/).
# Exit status: non-zero when any load test failed a threshold. SLIPWAY_LOADTEST_STACK names
# the local stack (default `loadtest`; hack/test.sh runs its smoke on its own).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

kinds=()
while (($#)) && [[ "$1" != -- ]]; do kinds+=("$1"); shift; done
(($#)) && shift
goose=("$@")
((${#kinds[@]})) || kinds=(signup logins tenants apps dashboard reads mixed)
((${#goose[@]})) || goose=(--users 16 --increase-rate 8 --run-time 60s)
results="${SLIPWAY_LOADTEST_RESULTS:-loadtest/results}"
mkdir -p "$results"

log "building slipway-loadtest and slipway (release)"
cargo build --release --locked --manifest-path loadtest/Cargo.toml
cargo build --release --locked --bin slipway

host="${SLIPWAY_LOADTEST_HOST:-}"
if [[ -z "$host" ]]; then
  name="${SLIPWAY_LOADTEST_STACK:-loadtest}"
  state="$SLIPWAY_STATE/loadtest/$name"
  slipway_pid=
  stop_stack() {
    local rc=$?
    if [[ -n "$slipway_pid" ]]; then
      kill "$slipway_pid" 2>/dev/null || true
      slipway_stopped() { ! kill -0 "$slipway_pid" 2>/dev/null; }
      wait_for "slipway all to stop" 30 slipway_stopped || kill -9 "$slipway_pid" 2>/dev/null || true
    fi
    hack/cluster.sh down "$name" >/dev/null 2>&1 || true
    hack/mail.sh down "$name" >/dev/null 2>&1 || true
    exit "$rc"
  }
  trap stop_stack EXIT
  hack/tools.sh
  eval "$(hack/cluster.sh up "$name")"
  eval "$(hack/mail.sh up "$name")"
  rm -rf "$state" && mkdir -p "$state"
  port="$(free_port)"
  host="http://127.0.0.1:$port"
  # A load generator is many clients: each virtual user connects from its own loopback
  # address (slipway-loadtest --spread-sources), and the per-client limits are raised so a
  # storm measures the API rather than the limits (which tests/accounts.rs covers).
  SLIPWAY_LISTEN="127.0.0.1:$port" SLIPWAY_PUBLIC_URL="$host" \
    SLIPWAY_HEALTH_LISTEN="127.0.0.1:$(free_port)" SLIPWAY_WEBHOOK_LISTEN="127.0.0.1:$(free_port)" \
    DATABASE_URL="sqlite://$state/slipway.db?mode=rwc" SLIPWAY_JWT_SECRET="$(openssl rand -hex 32)" \
    SLIPWAY_AUTH_REQUESTS_PER_MINUTE=100000 SLIPWAY_LOGIN_ATTEMPTS_PER_MINUTE=100000 \
    SLIPWAY_LEADER_ELECT=false RUST_LOG="${RUST_LOG:-warn}" \
    target/release/slipway all >"$state/slipway.log" 2>&1 &
  slipway_pid=$!
  api_ready() { curl -fs "$host/readyz" >/dev/null; }
  wait_for "slipway all on $host" 120 api_ready || { tail -n 40 "$state/slipway.log" >&2; die "Slipway did not start"; }
fi
[[ -n "${SLIPWAY_MAIL_API:-}" ]] || die "set SLIPWAY_MAIL_API to the mail catcher Slipway at $host mails to"

summary="$results/SUMMARY.md"
{
  echo "# Slipway load tests, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "- Machine: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/^Mem/ {print $2}') GiB, $(uname -sr)"
  echo "- Slipway: $host ($(git rev-parse --short HEAD 2>/dev/null || echo unknown)), command: loadtest/run.sh ${kinds[*]} -- ${goose[*]}"
  echo
} >"$summary"
failed=0
for kind in "${kinds[@]}"; do
  log "load test '$kind' against $host"
  if loadtest/target/release/slipway-loadtest "$kind" -- --host "$host" "${goose[@]}" \
    --report-file "$results/$kind.md" --report-file "$results/$kind.html" --no-print-metrics; then
    verdict=passed
  else
    verdict=FAILED failed=1
  fi
  {
    echo "## $kind: $verdict"
    echo
    # The local Slipway's memory once the test is over (issue 13: logins must give it back).
    if [[ -n "${slipway_pid:-}" && -r "/proc/$slipway_pid/status" ]]; then
      echo "Slipway's memory after it: $(awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {printf "resident %d MB, peak %d MB", r / 1024, h / 1024}' "/proc/$slipway_pid/status")"
      echo
    fi
    sed -n '/Thresholds/,/^## /p' "$results/$kind.md" | sed '$d'
    echo
  } >>"$summary"
done
cat "$summary"
exit "$failed"
