#!/usr/bin/env bash
# What a controller restart costs the API server when nothing has changed (issue 13):
#
#   hack/bench-controller.sh [TENANTS] [APPS_PER_TENANT]      (default 100 × 10)
#
# On a private kwok cluster and mail catcher `bench-controller` it runs the release build of
# `slipway controller` (CRDs installed, no leader election), applies TENANTS Tenants and
# APPS_PER_TENANT Apps in each (every fourth App exposed through an Ingress) with kubectl,
# and waits until every App is Ready. Then it stops the controller, reads kube-apiserver's
# apiserver_request_total, starts the controller again, waits until it has reconciled every
# Tenant and App once more (its slipway_reconciles_total), and prints the requests the
# restart cost by verb and resource, and the number per App. Then it annotates every App (a
# change that asks for nothing new) and prints what those reconciles cost. Last it creates
# the same Deployments directly and prints how long the Apps took against that floor, then
# once more in namespaces with copies of the tenants' ResourceQuotas and LimitRanges (the
# "guarded floor"), once more with the Services, Ingresses and NetworkPolicies as well (the
# "like-for-like floor"), and the controller's resident memory. Each phase prints the CPU
# seconds of the cluster's processes and the API requests it took. The watches' own LIST and WATCH
# requests are included, and so are the requests kube-controller-manager and kwok make
# meanwhile (leases, nodes, events: compare the resources). With SLIPWAY_BENCH_PROFILE=1 each
# phase also prints a CPU profile of kube-apiserver (see `phase_begin`). The cluster is torn
# down at the end (SLIPWAY_BENCH_KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

tenants="${1:-100}" per_tenant="${2:-10}"
apps=$((tenants * per_tenant))
name="${SLIPWAY_BENCH_NAME:-bench-controller}"
state="$SLIPWAY_STATE/$name"
controller_pid=
cleanup() {
  local rc=$?
  [[ -n "$controller_pid" ]] && kill -9 "$controller_pid" 2>/dev/null
  [[ -n "$profiler_pid" ]] && kill "$profiler_pid" 2>/dev/null
  [[ "${SLIPWAY_BENCH_KEEP:-0}" == 1 ]] || { hack/cluster.sh down "$name"; hack/mail.sh down "$name"; } >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT

hack/tools.sh build kubernetes etcd kwok mailhog >/dev/null
# SLIPWAY_BIN: another build to measure (an older commit's, to compare).
slipway="${SLIPWAY_BIN:-target/release/slipway}"
[[ -n "${SLIPWAY_BIN:-}" ]] || cargo build --release --bin slipway
[[ "${SLIPWAY_BENCH_PROFILE:-0}" != 1 ]] || export SLIPWAY_APISERVER_PROFILING=true
eval "$(hack/cluster.sh up "$name")"
# The "ready" emails need an SMTP server: a failing one would keep every Ready App retrying.
eval "$(hack/mail.sh up "$name")"
rm -rf "$state" && mkdir -p "$state"
k() { "$SLIPWAY_KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }
# Room for every App's pod and the floors': the dev cluster's two kwok nodes hold 110 pods each.
room='{"pods":"1000","cpu":"256","memory":"1Ti"}'
for node in $(k get nodes -o name); do
  k patch "$node" --subresource=status --type=merge -p "{\"status\":{\"allocatable\":$room,\"capacity\":$room}}" >/dev/null
done
metrics_port="$(free_port)"

start_controller() {
  SLIPWAY_LEADER_ELECT=false SLIPWAY_HEALTH_LISTEN="127.0.0.1:$(free_port)" \
    SLIPWAY_METRICS_LISTEN="127.0.0.1:$metrics_port" \
    RUST_LOG="${RUST_LOG:-error}" "$slipway" controller --install-crds >>"$state/controller.log" 2>&1 &
  controller_pid=$!
}
stop_controller() {
  kill "$controller_pid"
  stopped() { ! kill -0 "$controller_pid" 2>/dev/null; }
  wait_for "the controller to stop" 30 stopped || kill -9 "$controller_pid"
  controller_pid=
}
# Reconciles of KIND (tenant, app) the running controller has finished.
reconciles() {
  curl -fs "http://127.0.0.1:$metrics_port/metrics" |
    awk -v kind="$1" '$1 ~ "^slipway_reconciles_total\\{" && $1 ~ "kind=\"" kind "\"" {n += $2} END {print n + 0}'
}
# apiserver_request_total summed by verb and resource, as "verb resource count" lines.
requests() {
  k get --raw /metrics | awk '
    function label(name,   m) {
      if (match($0, "[{,]" name "=\"[^\"]*\"")) { m = substr($0, RSTART + length(name) + 3, RLENGTH - length(name) - 4); return m }
      return ""
    }
    /^apiserver_request_total\{/ {
      key = label("verb") " " label("resource") (label("subresource") == "" ? "" : "/" label("subresource"))
      n[key] += $NF
    }
    END { for (key in n) print key, n[key] }' | sort
}

# The requests by verb and resource between two `requests` snapshots, and their number per App.
cost() {
  join -a2 -e 0 -o 0,1.2,2.2 <(awk '{print $1 "/" $2, $3}' "$1" | sort) <(awk '{print $1 "/" $2, $3}' "$2" | sort) |
    awk -v apps="$apps" '{d = $3 - $2; if (d > 0) {printf "%-40s %8d\n", $1, d; total += d}} END {printf "%-40s %8d  (%.2f per App)\n", "total", total, total / apps}'
}
# CPU seconds (user and system) each process of the cluster, and the controller, has used, as
# "process seconds" lines.
cluster_pids="$SLIPWAY_STATE/clusters/$name/pids"
ticks="$(getconf CLK_TCK)"
cpu_seconds() {
  local c pid
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    pid="$(cat "$cluster_pids/$c.pid")"
    awk -v c="$c" -v t="$ticks" '{printf "%s %.1f\n", c, ($14 + $15) / t}' "/proc/$pid/stat"
  done
  [[ -z "$controller_pid" ]] || awk -v t="$ticks" '{printf "slipway-controller %.1f\n", ($14 + $15) / t}' "/proc/$controller_pid/stat"
}
# The CPU seconds each process used between two `cpu_seconds` snapshots, on one line.
cpu_cost() {
  join "$1" "$2" 2>/dev/null | awk '{printf "%s%s %.1f s", (NR > 1 ? ", " : ""), $1, $3 - $2} END {print ""}'
}
# Snapshots of requests and CPU before a phase (`phase_begin NAME`), and what it cost after it
# (`phase_end NAME`), logged.
# With SLIPWAY_BENCH_PROFILE=1 kube-apiserver serves /debug/pprof, and each phase also takes
# a CPU profile of it over the phase's first SLIPWAY_BENCH_PROFILE_SECONDS (default 30; the
# next phase waits for it) and prints where its CPU went: by category (hack/pprof-categories.awk)
# and the functions with the most samples of their own (`go tool pprof -top`).
profile_seconds="${SLIPWAY_BENCH_PROFILE_SECONDS:-30}"
profiler_pid=
phase_begin() {
  requests >"$state/requests-$1"
  cpu_seconds | sort >"$state/cpu-$1"
  reconciles app >"$state/reconciles-$1"
  if [[ "${SLIPWAY_BENCH_PROFILE:-0}" == 1 ]]; then
    k get --raw "/debug/pprof/profile?seconds=$profile_seconds" >"$state/profile-$1.pb.gz" &
    profiler_pid=$!
  fi
}
profile_end() {
  [[ -n "$profiler_pid" ]] || return 0
  wait "$profiler_pid" || die "kube-apiserver's CPU profile of $1 failed"
  profiler_pid=
  log "$1: where kube-apiserver's CPU went in the phase's first ${profile_seconds}s (go tool pprof):"
  go tool pprof -traces "$state/profile-$1.pb.gz" 2>/dev/null | awk -f hack/pprof-categories.awk
  go tool pprof -top -nodecount=12 "$state/profile-$1.pb.gz" 2>/dev/null | sed -n '/flat%/,$p'
}
phase_end() {
  profile_end "$1"
  requests >"$state/requests-$1-end"
  cpu_seconds | sort >"$state/cpu-$1-end"
  log "$1: CPU used: $(cpu_cost "$state/cpu-$1" "$state/cpu-$1-end")"
  log "$1: App reconciles: $(($(reconciles app) - $(cat "$state/reconciles-$1")))"
  log "$1: API requests:"
  cost "$state/requests-$1" "$state/requests-$1-end"
}

start_controller
crds_installed() { k get crd apps.slipway.dev; }
wait_for "the CRDs" 120 crds_installed || die "the controller installed no CRDs: $(tail -n 20 "$state/controller.log")"
log "applying $tenants Tenants and $apps Apps"
{
  for t in $(seq 1 "$tenants"); do
    printf -- '---\napiVersion: slipway.dev/v1alpha1\nkind: Tenant\nmetadata: {name: b%s}\nspec: {plan: standard, owners: [{email: b%s@example.com}]}\n' "$t" "$t"
  done
} | k create -f - >/dev/null
tenants_ready() { [[ "$(k get tenants.slipway.dev -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)" == "$tenants" ]]; }
wait_for "$tenants Tenants Ready" 600 tenants_ready || die "Tenants not Ready"
phase_begin apps
started=$SECONDS
{
  for t in $(seq 1 "$tenants"); do
    for a in $(seq 1 "$per_tenant"); do
      expose=''
      ((a % 4 == 1)) && expose=", expose: {type: Ingress, host: a$a.b$t.apps.slipway.localhost}"
      printf -- '---\napiVersion: slipway.dev/v1alpha1\nkind: App\nmetadata: {name: a%s, namespace: tenant-b%s, labels: {slipway.dev/tenant: b%s}}\nspec: {image: docker.io/library/nginx:1.27, port: 8080, replicas: 1%s}\n' "$a" "$t" "$t" "$expose"
    done
  done
} | k create -f - >/dev/null
apps_ready() { [[ "$(k get apps.slipway.dev -A -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Ready$')" == "$apps" ]]; }
wait_for "$apps Apps Ready" 1200 apps_ready || die "Apps not Ready: $(tail -n 20 "$state/controller.log")"
apps_took=$((SECONDS - started))
phase_end apps
# The controller's memory (issue 13's goal: at most 150 MB with 1,000 Apps).
memory() { awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {printf "resident %d MB, peak %d MB", r / 1024, h / 1024}' "/proc/$controller_pid/status"; }
log "$apps Apps Ready in ${apps_took}s (from the first create); the controller: $(memory)"
# Where those seconds went, from the objects' own timestamps (1 s resolution).
# timeline: "event RFC3339" lines on stdin → the last of each event, in seconds after the first.
timeline() {
  jq -Rrn '[inputs | split(" ") | {event: .[0], at: (.[1] | fromdateiso8601)}] as $all
    | ($all | map(.at) | min) as $t0
    | reduce $all[] as $e ({}; .[$e.event] = ([.[$e.event] // 0, $e.at - $t0] | max))
    | to_entries | map("last \(.key) \(.value)s") | join(", ")'
}
# Created and Available times of the Deployments labelled $1 in namespaces starting with $2.
deployment_events() {
  k get deployments -A -l "$1" -o json | jq -r --arg prefix "$2" '.items[] | select(.metadata.namespace | startswith($prefix))
    | "deployment-created \(.metadata.creationTimestamp)",
      "deployment-available \(.status.conditions[] | select(.type == "Available") | .lastTransitionTime)"'
}
app_timeline="$({
  k get apps.slipway.dev -A -o json | jq -r '.items[] | "app-created \(.metadata.creationTimestamp)",
    "app-ready \(.status.conditions[] | select(.type == "Ready") | .lastTransitionTime)"'
  deployment_events slipway.dev/app tenant-
} | timeline)"
log "Apps' timeline, after the first App's creation: $app_timeline"

stop_controller
requests >"$state/before"
start_controller
restarted=$SECONDS
caught_up() { (($(reconciles tenant) >= tenants && $(reconciles app) >= apps)); }
wait_for "the restarted controller to reconcile everything once" 600 caught_up || die "the controller did not catch up"
# Writes of the last reconciles come back as watch events that may trigger one more round:
# let it land before counting (a benchmark's settling time, not a test's wait).
sleep 5
requests >"$state/after"
log "restart: every Tenant and App reconciled in $((SECONDS - restarted))s; API requests it cost:"
cost "$state/before" "$state/after"

# A change of every App that asks for nothing new (an annotation): each App is reconciled
# once more, and its reconcile should find every owned object as it left it and write nothing.
# What remains is kubectl's own PATCH of each App and the watches' traffic.
done_before=$(reconciles app)
requests >"$state/before-touch"
k annotate apps.slipway.dev --all -A --overwrite "bench.slipway.dev/touched=$(date +%s)" >/dev/null
touched() { (($(reconciles app) >= done_before + apps)); }
wait_for "every App to be reconciled after the annotation" 600 touched || die "the controller did not reconcile the Apps"
sleep 5
requests >"$state/after-touch"
log "an annotation on every App: $(($(reconciles app) - done_before)) reconciles; API requests (kubectl's PATCHes included):"
cost "$state/before-touch" "$state/after-touch"
log "the controller after it all: $(memory)"

# The floors: what the controller made for the Apps, created directly with kubectl (copies
# with labels of their own), from the first create until every Deployment is Available. Both
# these and the Apps above wait on kube-controller-manager's ReplicaSets and pods.
floor_label=bench.slipway.dev/floor
tenant_namespaces() { k get namespaces -l slipway.dev/tenant -o jsonpath='{.items[*].metadata.name}'; }
# namespaces PREFIX [guarded]: a namespace PREFIX<tenant namespace> for each tenant's; with
# "guarded", holding copies of its ResourceQuotas and LimitRanges.
namespaces() {
  local ns
  for ns in $(tenant_namespaces); do
    k create namespace "$1$ns" >/dev/null
    [[ "${2:-}" == guarded ]] || continue
    k get resourcequotas,limitranges -n "$ns" -o json | jq --arg ns "$1$ns" '{apiVersion: "v1", kind: "List", items: [
      .items[] | {apiVersion, kind, metadata: {name: .metadata.name, namespace: $ns}, spec}]}' | k create -f - >/dev/null
  done
}
# The kwok nodes hold the Apps' pods and one floor's: each floor removes the previous one's.
remove_floor() {
  k delete deployments -A -l "$floor_label" >/dev/null
  floor_gone() { [[ -z "$(k get pods -A -l "$floor_label" -o name)" ]]; }
  wait_for "the previous floor's pods to go" 600 floor_gone || die "the previous floor's pods did not go"
}
# measure_floor NAME PREFIX FILE: creates FILE's objects, waits until the Deployments in
# namespaces PREFIX* are all Available, and logs what it cost and the Apps' ratio to it.
measure_floor() {
  local name="$1" prefix="$2" file="$3" started took
  phase_begin "$name"
  started=$SECONDS
  k create -f "$file" >/dev/null
  floor_ready() {
    [[ "$(k get deployments -A -l "$floor_label" -o jsonpath='{range .items[*]}{.metadata.namespace} {.status.availableReplicas}{"\n"}{end}' |
      grep -c "^$prefix.* 1\$")" == "$apps" ]]
  }
  wait_for "$apps Deployments of the $name Available" 1200 floor_ready || die "the $name's Deployments did not become Available"
  took=$((SECONDS - started))
  phase_end "$name"
  log "$name's timeline: $(deployment_events "$floor_label" "$prefix" | timeline)"
  log "$name: $apps Deployments Available in ${took}s; $apps Apps Ready in ${apps_took}s: $(awk -v a="$apps_took" -v f="$took" 'BEGIN {printf "%.2f", a / (f > 0 ? f : 1)}') times the $name"
}

# The floor: the same Deployments, in namespaces floor-tenant-* without the tenants' quotas.
log "the floor: $apps Deployments like the controller's, created directly"
k get deployments -A -l slipway.dev/app -o json | jq --arg l "$floor_label" '{apiVersion: "v1", kind: "List", items: [
  .items[] | . as $d | {apiVersion: "apps/v1", kind: "Deployment",
    metadata: {name: $d.metadata.name, namespace: ("floor-" + $d.metadata.namespace), labels: {($l): $d.metadata.name}},
    spec: ($d.spec | .selector = {matchLabels: {($l): $d.metadata.name}}
                   | .template.metadata = {labels: {($l): $d.metadata.name}})}]}' >"$state/floor.json"
namespaces floor-
measure_floor floor floor- "$state/floor.json"

# The guarded floor: the same in namespaces guarded like the tenants'. kube-apiserver's quota
# admission charges every pod, ReplicaSet and Deployment to its namespace's quota, one
# compare-and-swap of the quota's status at a time per namespace: what the Apps pay for their
# tenants' guard rails, read apart from what they pay for the controller.
log "the guarded floor: the same with the tenants' ResourceQuotas and LimitRanges"
remove_floor
namespaces guarded- guarded
jq '.items[].metadata.namespace |= ("guarded-" + ltrimstr("floor-"))' "$state/floor.json" >"$state/guarded.json"
measure_floor "guarded floor" guarded- "$state/guarded.json"

# The like-for-like floor: everything the controller made for the Apps (Deployments, Services,
# Ingresses, NetworkPolicies), App by App, in guarded namespaces. What is left between this and
# the Apps is the controller's own cost: the App objects, their status, revisions, Events and
# emails.
log "the like-for-like floor: the controller's Deployments, Services, Ingresses and NetworkPolicies, created directly"
remove_floor
namespaces full- guarded
{
  jq '.items[] | .metadata.namespace |= ("full-" + ltrimstr("floor-"))' "$state/floor.json"
  k get services,ingresses,networkpolicies -A -l slipway.dev/app -o json | jq --arg l "$floor_label" '.items[]
    | {apiVersion, kind, metadata: {name: .metadata.name, namespace: ("full-" + .metadata.namespace)},
       spec: (if .kind == "Service"
              then {type: .spec.type, ports: [.spec.ports[] | del(.nodePort)], selector: {($l): .metadata.labels["slipway.dev/app"]}}
              else .spec end)}'
} | jq -s '{apiVersion: "v1", kind: "List",
  items: sort_by([.metadata.namespace, .metadata.name, ({Deployment: 0, Service: 1, Ingress: 2, NetworkPolicy: 3}[.kind])])}' >"$state/full.json"
measure_floor "like-for-like floor" full- "$state/full.json"
