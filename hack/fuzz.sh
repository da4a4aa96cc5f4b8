#!/usr/bin/env bash
# Fuzzes the admission webhook's review decoding and the plan rules (webhook/fuzz):
#
#   hack/fuzz.sh [seconds-per-target]          # default 60
#   hack/fuzz.sh 300 app_rules                 # only the named targets
#
# Targets: review_decode (arbitrary bytes -> slipway_webhook::decode), app_rules (arbitrary
# Apps, overrides, other Apps and host claims -> check_app/review_app/default_app with
# invariants), object_rules (arbitrary Databases and Workspaces next to others ->
# review_database/review_workspace/defaults with invariants), amount (quantity parsing and
# arithmetic). Installs cargo-fuzz when missing.
# cargo-fuzz needs nightly; without a nightly toolchain the stable one is used with
# RUSTC_BOOTSTRAP=1. Corpora: webhook/fuzz/corpus/<target> (seeds in webhook/fuzz/seeds);
# crashes: webhook/fuzz/artifacts/<target>. SLIPWAY_FUZZ_KEEP_GOING=1 continues past
# crashes (libFuzzer -fork=1 -ignore_crashes=1) to collect more of them.
set -euo pipefail
cd "$(dirname "$0")/../webhook/fuzz"

seconds=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(review_decode app_rules object_rules amount)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
extra=()
[[ "${SLIPWAY_FUZZ_KEEP_GOING:-0}" == 1 ]] && extra=(-fork=1 -ignore_crashes=1)

status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  seeds=()
  [[ -d "seeds/$target" ]] && seeds=("seeds/$target")
  dict=()
  [[ "$target" == review_decode ]] && dict=(-dict=review.dict)
  printf '==> fuzzing %s for %ss\n' "$target" "$seconds" >&2
  "${fuzz[@]}" run -O "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" "${extra[@]}" || status=$?
done
exit "$status"
