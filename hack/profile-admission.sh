#!/usr/bin/env bash
# Where the machine's CPU goes while Apps are created through kube-apiserver, with and without
# Slipway's webhooks (issue 13):
#
#   hack/profile-admission.sh [APPS]
#
# Runs phase 2 of the admission bench (hack/bench-webhook.sh, SLIPWAY_BENCH_PHASES=apiserver,
# APPS Apps per batch, default 3000) under a system-wide `perf record` whose samples carry
# wall-clock time, then cuts the profile to each create batch's window (the bench prints it)
# and prints, per batch: CPU-seconds per process (kube-apiserver, etcd, the bench's tokio threads,
# which are both the webhook and the client, ...), per App, and the bench process's hottest symbols.
# kube-apiserver and etcd are stripped Go binaries, so perf names only their processes; for
# kube-apiserver's insides the bench also takes its pprof CPU profile over the first 4 s of each
# batch at 8 in flight, printed by category at the end.
# The perf data and the bench's output stay in $SLIPWAY_PROFILE_DIR (default a fresh temporary
# directory, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

apps="${1:-3000}"
out="${SLIPWAY_PROFILE_DIR:-$(mktemp -d -t slipway-profile-XXXXXX)}"
mkdir -p "$out"
command -v perf >/dev/null || die "perf is not installed (Debian: linux-perf)"

# Build first, so the profile holds the bench and not the compiler.
cargo bench -p slipway-webhook --bench admission --no-run >/dev/null 2>&1
log "recording (perf, 199 Hz, all CPUs) while the bench creates $apps Apps per batch"
# kube-apiserver serves /debug/pprof, and the bench takes its CPU profile over the first
# seconds of each batch at 8 in flight (printed below by category, hack/pprof-categories.awk).
SLIPWAY_APISERVER_PROFILING=true SLIPWAY_BENCH_APISERVER_PROFILE_DIR="$out" \
  SLIPWAY_BENCH_PHASES=apiserver SLIPWAY_BENCH_APPS="$apps" SLIPWAY_BENCH_CONCURRENCY=8 \
  perf record -a -g -F 199 -k CLOCK_REALTIME -o "$out/perf.data" -- hack/bench-webhook.sh \
  >"$out/bench.out" 2>"$out/bench.err"
sed -n '/^Phase 2/,$p' "$out/bench.out"

cores="$(nproc)"
# One line per create batch: "<mode> c=<n>: <apps> Apps in <s> s (window <from>,<to>)".
grep -E 'c=[0-9]+: [0-9]+ Apps in .* \(window ' "$out/bench.err" | while read -r line; do
  batch="${line%%:*}"
  window="${line##*(window }"
  window="${window%)}"
  echo
  echo "== ${batch# *} (window $window)"
  # perf counts samples: at 199 Hz per CPU, a sample stands for 1/199 CPU-second.
  perf report -i "$out/perf.data" --time "$window" --sort comm --stdio -g none -F overhead,sample,comm 2>/dev/null |
    awk -v apps="$apps" -v cores="$cores" -v window="$window" '
      BEGIN { split(window, w, ","); seconds = w[2] - w[1] }
      /^#/ || NF < 3 { next }
      { cpu = $2 / 199; printf "  %-18s %6.2f CPU-s %7.3f ms per App\n", $3, cpu, 1000 * cpu / apps; total += cpu }
      END { printf "  %-18s %6.2f CPU-s of %.2f available (%d cores x %.2f s)\n", "all", total, cores * seconds, cores, seconds }'
  # The bench's runtime threads are the only tokio ones on the stack (no Slipway process runs).
  echo "  hottest symbols of the bench's tokio threads (webhook and client):"
  perf report -i "$out/perf.data" --time "$window" --comm tokio-rt-worker --sort dso,sym --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | sed -n 1,12p | sed 's/^/    /' || true
done
for profile in "$out"/*-c8.pb.gz; do
  [[ -e "$profile" ]] || continue
  echo
  echo "== kube-apiserver during $(basename "$profile" .pb.gz) (go tool pprof, first seconds of the batch)"
  go tool pprof -traces "$profile" 2>/dev/null | awk -f hack/pprof-categories.awk
  go tool pprof -top -nodecount=15 "$profile" 2>/dev/null | sed -n '/flat%/,$p'
done
log "perf data, kube-apiserver's profiles and the bench's output: $out"
