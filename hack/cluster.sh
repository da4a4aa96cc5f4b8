#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, for tests and local development.
#
#   hack/cluster.sh up NAME [--real-node]
#                                 start (or reuse) cluster NAME, print its env
#   hack/cluster.sh down NAME     stop cluster NAME and delete its state
#   hack/cluster.sh env NAME      print the env file of a running cluster
#   hack/cluster.sh status NAME   show the cluster's processes and readiness
#   hack/cluster.sh list          list clusters that have state
#
# Components (all bound to 127.0.0.1 on free ports, so clusters run side by
# side): etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
# simulating two nodes (kwok-node-0, kwok-node-1) on which pods become
# Running/Ready. A default StorageClass "standard" uses kube-controller-manager's
# hostPath provisioner, so PVCs bind (--real-node: local-path-provisioner, see hack/node.sh).
#
# --real-node adds real-0, a real kubelet + containerd node with CoreDNS (hack/node.sh, one
# per machine), and taints the kwok nodes NoSchedule so ordinary pods run for real. The API
# server then listens on the node's address ($NODE_ADDRESS, see lib.sh) instead of loopback,
# so pods reach it through the `kubernetes` Service.
#
# State: $SLIPWAY_STATE/clusters/NAME/ (certs, etcd data, logs, pids,
# kubeconfig, env). SLIPWAY_STATE defaults to ${XDG_STATE_HOME:-~/.local/state}/slipway.
# The env file exports KUBECONFIG, SLIPWAY_KUBECONFIG, SLIPWAY_CLUSTER_NAME,
# SLIPWAY_KUBE_APISERVER, SLIPWAY_KUBECTL and puts kubectl on PATH.
# SLIPWAY_APISERVER_PROFILING=true serves kube-apiserver's /debug/pprof (its binaries are
# stripped, so perf cannot name its functions: `kubectl get --raw '/debug/pprof/profile?seconds=20'`).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$HACK_DIR/pki.sh"

NODE_COUNT=2
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

cluster_dir() { echo "$SLIPWAY_STATE/clusters/$1"; }

# ---------------------------------------------------------------- PKI

gen_pki() {
  local name="$1" pki="$2"
  need_cmd openssl openssl
  mkdir -p "$pki"
  chmod 700 "$pki"
  write_openssl_conf "$pki/openssl.cnf"
  local ca
  # ca: the cluster CA (serving + client certs). front-proxy-ca: only for the
  # aggregation layer's request-header authentication, as kubeadm does; without
  # it kube-controller-manager and kube-scheduler log errors about a missing
  # requestheader CA bundle.
  for ca in ca front-proxy-ca; do
    openssl genrsa -out "$pki/$ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$pki/$ca.key" -subj "/CN=slipway-$name-$ca" -days 3650 -sha256 \
      -config "$pki/openssl.cnf" -extensions v3_ca -out "$pki/$ca.crt"
  done
  sign "$pki" front-proxy-client "/CN=front-proxy-client" v3_client front-proxy-ca
  sign "$pki" apiserver "/CN=kube-apiserver" v3_server
  sign "$pki" admin "/O=system:masters/CN=slipway-admin" v3_client
  sign "$pki" kube-controller-manager "/CN=system:kube-controller-manager" v3_client
  sign "$pki" kube-scheduler "/CN=system:kube-scheduler" v3_client
  # kwok acts for the fake kubelets (nodes, leases, pod status): admin is simplest.
  sign "$pki" kwok "/O=system:masters/CN=kwok" v3_client
  # kube-apiserver's identity towards kubelets (logs, exec, port-forward).
  sign "$pki" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" v3_client
  # Service-account token signing key pair.
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

# ---------------------------------------------------------------- helpers

load_ports() { # shellcheck disable=SC1091
  source "$1/ports.env"
}

apiserver_ready() {
  local dir="$1"
  curl -sf --max-time 2 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" \
    --key "$dir/pki/admin.key" "https://${APISERVER_HOST:-127.0.0.1}:$APISERVER_PORT/readyz" >/dev/null
}

healthz_ok() { curl -skf --max-time 2 "https://127.0.0.1:$1/healthz" >/dev/null; }

all_running() {
  local dir="$1" c
  for c in "${COMPONENTS[@]}"; do
    pid_alive "$dir/pids/$c.pid" || return 1
  done
}

cluster_healthy() {
  local dir="$1"
  [[ -f "$dir/env" && -f "$dir/ports.env" ]] || return 1
  all_running "$dir" || return 1
  load_ports "$dir"
  apiserver_ready "$dir" || return 1
  [[ "${REAL_NODE:-no}" == no ]] || "$HACK_DIR/node.sh" healthy "$(basename "$dir")"
}

# fail COMPONENT DIR MESSAGE: show the component's log and stop the half-started cluster.
fail() {
  local comp="$1" dir="$2"; shift 2
  show_log "$comp" "$dir"
  warn "stopping the half-started cluster (state kept in $dir for inspection;"
  warn "'$0 down $(basename "$dir")' removes it)"
  stop_components "$dir"
  die "$*"
}

# Guard each wait with a liveness check so a crashed component fails fast.
wait_component() {
  local comp="$1" dir="$2" timeout="$3"; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    pid_alive "$dir/pids/$comp.pid" || fail "$comp" "$dir" "$comp exited during startup"
    ((SECONDS < deadline)) || fail "$comp" "$dir" "$comp not healthy after ${timeout}s"
    sleep 0.5
  done
}

stop_components() {
  local dir="$1"
  # Two phases: everything talking to etcd first (all at once, for speed), then
  # etcd. kube-apiserver hangs in its shutdown if etcd disappears under it.
  # The real node first: its kubelet must not outlive the API server it reports to.
  if [[ -f "$dir/ports.env" ]] && grep -q '^REAL_NODE=yes' "$dir/ports.env"; then
    "$HACK_DIR/node.sh" down "$(basename "$dir")" || warn "stopping the real node failed"
  fi
  stop_pidfiles "$dir"/pids/{kwok,kube-scheduler,kube-controller-manager,kube-apiserver}.pid
  stop_pidfiles "$dir/pids/etcd.pid"
  stop_all_pidfiles "$dir"   # anything else that left a pidfile
}

node_manifest() {
  local i="$1" real="$2"
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    # kwok manages nodes carrying this annotation (--manage-nodes-with-annotation-selector).
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    beta.kubernetes.io/arch: amd64
    beta.kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    topology.kubernetes.io/zone: zone-$i
    type: kwok
$(if [[ "$real" == yes ]]; then cat <<'TAINT'
# A real node runs the cluster's workloads; kwok nodes only what tolerates them (scale tests).
spec:
  taints:
  - {key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}
TAINT
else cat <<'TAINT'
# No taint: ordinary workloads (which know nothing about kwok) must schedule here.
spec: {}
TAINT
fi)
status:
  allocatable: &res
    cpu: "32"
    memory: 64Gi
    pods: "110"
    ephemeral-storage: 500Gi
  capacity: *res
  nodeInfo:
    architecture: amd64
    bootID: ""
    containerRuntimeVersion: kwok
    kernelVersion: ""
    kubeProxyVersion: fake
    kubeletVersion: fake
    machineID: ""
    operatingSystem: linux
    osImage: ""
    systemUUID: ""
  phase: Running
EOF
}

bootstrap_manifests() {
  local i
  for ((i = 0; i < NODE_COUNT; i++)); do node_manifest "$i" "$1"; done
  # With a real node, hack/node.sh makes `standard` local-path-provisioner's: pods there run
  # as non-root, and kube-controller-manager's hostPath directories are root's 0750.
  [[ "$1" == no ]] || return 0
  cat <<'EOF'
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
# Served by kube-controller-manager --enable-hostpath-provisioner. Upstream
# hard-codes the directories to /tmp/hostpath_pv/<uuid>.
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local name="$1" real="$2" dir
  validate_name "$name"
  lock_instance clusters "$name"
  dir="$(cluster_dir "$name")"

  # If every process is alive, give a busy apiserver up to 30s to answer
  # /readyz before treating the cluster as broken (recreating loses its data).
  if [[ -f "$dir/env" && -f "$dir/ports.env" ]] && all_running "$dir" \
     && grep -q "^REAL_NODE=$real\$" "$dir/ports.env" \
     && wait_for "cluster '$name' to be ready" 30 cluster_healthy "$dir"; then
    log "cluster '$name' is already up"
    print_env "$name"
    return 0
  fi
  if [[ -d "$dir" ]]; then
    log "cluster '$name' has stale state (not running/healthy, or without the node asked for): recreating it"
    stop_components "$dir"
    rm -rf "$dir"
  fi

  local start=$SECONDS
  local etcd apiserver kcm scheduler kubectl kwok
  # Building (first run only) may take long; do it before taking ports.
  "$HACK_DIR/tools.sh" build kubernetes etcd kwok >&2
  etcd="$(tool_path etcd)"
  apiserver="$(tool_path kube-apiserver)"
  kcm="$(tool_path kube-controller-manager)"
  scheduler="$(tool_path kube-scheduler)"
  kubectl="$(tool_path kubectl)"
  kwok="$(tool_path kwok)"
  need_cmd curl curl

  log "creating cluster '$name' in $dir"
  mkdir -p "$dir"/{logs,pids,etcd}
  chmod 700 "$dir"
  gen_pki "$name" "$dir/pki"

  # With a real node, pods reach the API server through the `kubernetes` Service, whose
  # endpoint must be an address they can route to: the node's, not loopback.
  local host=127.0.0.1
  if [[ "$real" == yes ]]; then
    "$HACK_DIR/node.sh" address
    host="$NODE_ADDRESS"
  fi
  local ports
  mapfile -t ports < <(free_ports 6)
  cat >"$dir/ports.env" <<EOF
ETCD_CLIENT_PORT=${ports[0]}
ETCD_PEER_PORT=${ports[1]}
APISERVER_PORT=${ports[2]}
KCM_PORT=${ports[3]}
SCHEDULER_PORT=${ports[4]}
KWOK_PORT=${ports[5]}
APISERVER_HOST=$host
REAL_NODE=$real
EOF
  load_ports "$dir"
  local server="https://$host:$APISERVER_PORT" pki="$dir/pki"
  write_kubeconfig "$dir/kubeconfig" "$server" "$pki" admin "slipway-$name"
  write_kubeconfig "$dir/kube-controller-manager.kubeconfig" "$server" "$pki" kube-controller-manager "slipway-$name"
  write_kubeconfig "$dir/kube-scheduler.kubeconfig" "$server" "$pki" kube-scheduler "slipway-$name"
  write_kubeconfig "$dir/kwok.kubeconfig" "$server" "$pki" kwok "slipway-$name"

  # etcd over plain http: it listens on loopback only. fsync off: test data.
  log "starting etcd on 127.0.0.1:$ETCD_CLIENT_PORT"
  start_daemon etcd "$dir" "$etcd" \
    --name=default \
    --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="default=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --unsafe-no-fsync=true \
    --log-level=warn
  wait_component etcd "$dir" 30 curl -sf --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

  # On loopback, --endpoint-reconciler-type=none: the reconciler would publish 127.0.0.1 as
  # the endpoint of default/kubernetes, which Endpoints validation rejects (loopback),
  # logging an error every 10s. The Service itself still exists. On the node's address the
  # default reconciler (lease) publishes it, as pods of the real node need.
  local reconciler=none
  [[ "$real" == yes ]] && reconciler=lease
  log "starting kube-apiserver on $server"
  start_daemon kube-apiserver "$dir" "$apiserver" \
    --bind-address="$host" \
    --advertise-address="$host" \
    --secure-port="$APISERVER_PORT" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,PodSecurity,DefaultStorageClass,DefaultTolerationSeconds,NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" \
    --proxy-client-key-file="$pki/front-proxy-client.key" \
    --endpoint-reconciler-type="$reconciler" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --allow-privileged=true \
    --profiling="${SLIPWAY_APISERVER_PROFILING:-false}" \
    --v=1
  wait_component kube-apiserver "$dir" 120 apiserver_ready "$dir"

  log "starting kube-controller-manager, kube-scheduler and kwok"
  # HPAs are evaluated every 5 s (default 15 s): with metrics-server's 10 s resolution on the
  # real node, an autoscaled App answers load within a test's patience.
  # Client rate limits of 200 requests/s, burst 400 (defaults 20 and 30, for each controller
  # with --use-service-account-credentials): at the defaults the quota controller observes at
  # most 20 new ResourceQuotas a second and the ReplicaSet controller creates 20 pods a second,
  # so they, not this machine, set the pace of the tenant and scale benchmarks (issue 13).
  start_daemon kube-controller-manager "$dir" "$kcm" \
    --kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --leader-elect=false \
    --cluster-name="$name" \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" \
    --cluster-signing-key-file="$pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --enable-hostpath-provisioner=true \
    --horizontal-pod-autoscaler-sync-period=5s \
    --kube-api-qps=200 \
    --kube-api-burst=400 \
    --profiling=false \
    --v=1
  start_daemon kube-scheduler "$dir" "$scheduler" \
    --kubeconfig="$dir/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$dir/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$dir/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$SCHEDULER_PORT" \
    --leader-elect=false \
    --profiling=false \
    --v=1
  start_daemon kwok "$dir" "$kwok" \
    --kubeconfig="$dir/kwok.kubeconfig" \
    --config="$HACK_DIR/kwok/stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 \
    --cidr="$KWOK_POD_CIDR" \
    --node-ip=127.0.0.1 \
    --server-address="127.0.0.1:$KWOK_PORT"

  # Nodes and the default StorageClass.
  local k=("$kubectl" --kubeconfig="$dir/kubeconfig")
  bootstrap_manifests "$real" | "${k[@]}" apply -f - >"$dir/logs/bootstrap.log" 2>&1 \
    || { cat "$dir/logs/bootstrap.log" >&2; fail kube-apiserver "$dir" "applying nodes/StorageClass failed"; }

  wait_component kube-controller-manager "$dir" 60 healthz_ok "$KCM_PORT"
  wait_component kube-scheduler "$dir" 60 healthz_ok "$SCHEDULER_PORT"
  nodes_ready() {
    local n
    n="$("${k[@]}" get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')"
    ((n == NODE_COUNT))
  }
  wait_component kwok "$dir" 60 nodes_ready
  wait_component kube-controller-manager "$dir" 60 "${k[@]}" -n default get serviceaccount default
  [[ "$real" == yes ]] || wait_component kube-apiserver "$dir" 10 "${k[@]}" get storageclass standard

  if [[ "$real" == yes ]]; then
    # Without the cluster's lock fd: the node's daemons must not hold it for their lifetime.
    "$HACK_DIR/node.sh" up "$name" {SLIPWAY_LOCK_FD}>&- \
      || fail kube-apiserver "$dir" "the real node did not come up"
  fi
  write_env "$name" "$dir" "$kubectl" "$real"
  log "cluster '$name' is up in $((SECONDS - start))s"
  print_env "$name"
}

write_env() {
  local name="$1" dir="$2" kubectl="$3" real="$4"
  cat >"$dir/env" <<EOF
export KUBECONFIG='$dir/kubeconfig'
export SLIPWAY_KUBECONFIG='$dir/kubeconfig'
export SLIPWAY_CLUSTER_NAME='$name'
export SLIPWAY_KUBE_APISERVER='https://$APISERVER_HOST:$APISERVER_PORT'
export SLIPWAY_KUBECTL='$kubectl'
export PATH='$(dirname "$kubectl")':"\$PATH"
EOF
  [[ "$real" == yes ]] || return 0
  # Slipway's settings for this cluster (read by `slipway` through its flags' variables):
  # where node ports answer, the node's IngressClass, the images hack/images.sh imported
  # into the node, and the plan catalogue that offers exactly the engine versions those
  # images hold. SLIPWAY_CLUSTER_INGRESS is for people and tests: where Ingresses answer.
  cat >>"$dir/env" <<EOF
export SLIPWAY_CLUSTER_INGRESS='$NODE_ADDRESS:$INGRESS_NODE_PORT'
export SLIPWAY_NODE_ADDRESS='$NODE_ADDRESS'
export SLIPWAY_INGRESS_CLASS='$INGRESS_CLASS'
export SLIPWAY_PLANS='$HACK_DIR/dev/plans.yaml'
export SLIPWAY_WORKSPACE_IMAGE='$("$HACK_DIR/images.sh" list | awk '$1 ~ /\/workspace:/ { print $1 }')'
export SLIPWAY_DATABASE_IMAGES='postgres=localhost/slipway-dev/postgres,mariadb=localhost/slipway-dev/mariadb,redis=localhost/slipway-dev/redis'
EOF
}

print_env() {
  local dir
  dir="$(cluster_dir "$1")"
  [[ -f "$dir/env" ]] || die "cluster '$1' is not up (no $dir/env); run: $0 up $1"
  echo "# env file: $dir/env   (use: source $dir/env)"
  cat "$dir/env"
}

cmd_down() {
  local name="$1" dir
  validate_name "$name"
  lock_instance clusters "$name"
  dir="$(cluster_dir "$name")"
  if [[ ! -d "$dir" ]]; then
    log "cluster '$name' does not exist"
    return 0
  fi
  # Remember the hostPath PV directories (outside the state dir, see the
  # StorageClass above) so they can be removed together with the cluster.
  local pv_dirs="" p
  if [[ -f "$dir/kubeconfig" ]] && pid_alive "$dir/pids/kube-apiserver.pid"; then
    pv_dirs="$("$(tool_path kubectl)" --kubeconfig="$dir/kubeconfig" --request-timeout=5s get pv \
      -o jsonpath='{range .items[*]}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null || true)"
  fi
  log "stopping cluster '$name'"
  stop_components "$dir"
  for p in $pv_dirs; do
    [[ "$p" == /tmp/hostpath_pv/* ]] && rm -rf "$p"
  done
  rm -rf "$dir"
  log "cluster '$name' removed"
}

cmd_status() {
  local name="$1" dir c
  validate_name "$name"
  dir="$(cluster_dir "$name")"
  [[ -d "$dir" ]] || die "cluster '$name' does not exist"
  for c in "${COMPONENTS[@]}"; do
    if pid_alive "$dir/pids/$c.pid"; then
      printf '%-24s running (pid %s)\n' "$c" "$(cat "$dir/pids/$c.pid")"
    else
      printf '%-24s NOT running (log: %s)\n' "$c" "$dir/logs/$c.log"
    fi
  done
  if cluster_healthy "$dir"; then echo "healthy: yes"; else echo "healthy: no"; return 1; fi
}

cmd_list() {
  local d
  for d in "$SLIPWAY_STATE"/clusters/*/; do
    [[ -d "$d" ]] || continue
    if cluster_healthy "${d%/}"; then
      echo "$(basename "$d") up"
    else
      echo "$(basename "$d") down"
    fi
  done
}

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

case "${1:-}" in
  up)
    case "$#:${3:-}" in
      2:) cmd_up "$2" no ;;
      3:--real-node) cmd_up "$2" yes ;;
      *) usage >&2; exit 2 ;;
    esac
    ;;
  down|env|status)
    [[ $# -eq 2 ]] || { usage >&2; exit 2; }
    case "$1" in
      down) cmd_down "$2" ;;
      env) validate_name "$2"; print_env "$2" ;;
      status) cmd_status "$2" ;;
    esac
    ;;
  list) cmd_list ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
