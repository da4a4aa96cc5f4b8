#!/usr/bin/env bash
# The real node: kubelet + containerd on this machine, joined to a local cluster, so what
# Slipway provisions actually runs (kwok's nodes run no containers).
#
#   hack/node.sh up CLUSTER       start real-0 in cluster CLUSTER (hack/cluster.sh calls it
#                                 for `up CLUSTER --real-node`), or reuse it
#   hack/node.sh down [CLUSTER]   stop the node (only if it belongs to CLUSTER, when given),
#                                 remove everything it created, restore kernel settings
#   hack/node.sh address          create the node's interface (before the API server binds)
#   hack/node.sh healthy CLUSTER  exit 0 if the node runs for CLUSTER
#   hack/node.sh status           show the node's processes and owner
#   hack/node.sh import NAME...   build and import more of hack/images.sh's images into the
#                                 running node's containerd (e.g. slipway, for the chart)
#
# One real node per machine: kube-proxy's nftables tables, the kubelet's device-plugin
# socket, /var/log/containers and containerd's shim sockets (/run/containerd/s) have fixed
# names, so two nodes would break each other. A second cluster asking for one is refused.
#
# What runs (state in $SLIPWAY_STATE/node/, logs in its logs/):
#   - an interface $NODE_INTERFACE with $NODE_ADDRESS (lib.sh), the node's InternalIP: node
#     ports, the kubelet and the API server answer there (a bridge without ports: these
#     kernels have no `dummy` module);
#   - containerd (Debian's, own root, state and socket; sandbox image and every image Slipway
#     needs imported offline by hack/images.sh) with runc;
#   - the bridge CNI plugin (bridge slipway-cni0, pods in $NODE_POD_CIDR, routes only to
#     198.18.0.0/15) and an nftables table that drops anything pods send off the machine;
#   - kubelet and kube-proxy (nftables mode) built by hack/tools.sh;
#   - CoreDNS (hack/tools.sh, image from hack/images.sh) as a pod behind kube-dns
#     ($CLUSTER_DNS_IP), answering cluster.local only: it forwards nothing;
#   - local-path-provisioner (hack/node/local-path-storage.yaml) behind the default
#     StorageClass `standard`, volumes in $SLIPWAY_STATE/node/volumes;
#   - Traefik (hack/node/traefik.yaml), serving IngressClass $INGRESS_CLASS on node port
#     $INGRESS_NODE_PORT;
#   - metrics-server (hack/node/metrics-server.yaml): pod metrics for HorizontalPodAutoscalers.
#
# Kernel settings: kubelet sets vm.overcommit_memory, kernel.panic, kernel.panic_on_oops and
# kernel.keys.* at start; the bridge needs net.ipv4.ip_forward while pods run. The first `up`
# records the settings as found; `up` puts back all but ip_forward once the node is Ready,
# `down` puts back everything and checks nothing is left changed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$HACK_DIR/pki.sh"

NODE_DIR="$SLIPWAY_STATE/node"
# The record of the machine as found; kept until a `down` has put it back.
BASELINE="$SLIPWAY_STATE/node-baseline"
BRIDGE=slipway-cni0
CNI_NETWORK=slipway
NFT_TABLE=slipway-node
# Paths outside $NODE_DIR that the node's components write whatever their root directories
# say; `down` removes those that did not exist before the first `up`.
FIXED_PATHS=(/run/containerd /var/lib/cni /var/lib/kubelet /var/log/containers /var/log/pods
  /var/run/netns /run/netns /opt/containerd /etc/containerd /etc/cni)
# Kernel settings the node (kubelet, kube-proxy, CNI) may change, as `sysctl -a` regexes.
SYSCTL_WATCH='^(vm\.|kernel\.panic|kernel\.keys\.|net\.ipv4\.ip_forward|net\.ipv4\.conf\.(all|default|lo|eth0)\.|net\.ipv6\.conf\.(all|default|lo|eth0)\.|net\.bridge\.|net\.netfilter\.nf_conntrack_(max|tcp_|udp_|generic_)|net\.core\.|fs\.inotify\.|fs\.file-max|fs\.nr_open|kernel\.pid_max|user\.max_)'
# Write-only or volatile keys that match the regex but cannot (or must not) be written back.
SYSCTL_SKIP='^(vm\.drop_caches|vm\.compact_memory|vm\.stat_refresh|vm\.compaction_proactiveness_trigger|net\.core\.netdev_rss_key) '

sock() { echo "$NODE_DIR/containerd/containerd.sock"; }

# image_ref NAME: the reference hack/images.sh gives image NAME (its tag follows the pinned
# version of what it packs).
image_ref() {
  local ref
  ref="$("$HACK_DIR/images.sh" list | awk -v name="$1" '$1 ~ ("/" name ":") { print $1 }')"
  [[ -n "$ref" ]] || die "hack/images.sh has no $1 image"
  echo "$ref"
}
ctr_() { ctr -a "$(sock)" -n k8s.io "$@"; }

# ---------------------------------------------------------------- the machine as found

sysctl_snapshot() {
  sysctl -a 2>/dev/null | grep -E "$SYSCTL_WATCH" | grep -Ev "$SYSCTL_SKIP" | LC_ALL=C sort
}

nft_tables() { nft list tables 2>/dev/null | LC_ALL=C sort; }

netns_list() { ip netns list 2>/dev/null | awk '{print $1}' | LC_ALL=C sort; }

# take_baseline: record kernel settings, nftables tables, network namespaces and fixed
# paths before the node changes anything. Never overwritten: after a crash, the record of
# the untouched machine is the one to go back to.
take_baseline() {
  [[ -s "$BASELINE/sysctl" ]] && return 0
  need_cmd nft nftables
  mkdir -p "$BASELINE.tmp"
  sysctl_snapshot >"$BASELINE.tmp/sysctl"
  nft_tables >"$BASELINE.tmp/nft-tables"
  netns_list >"$BASELINE.tmp/netns"
  local p
  for p in "${FIXED_PATHS[@]}"; do [[ -e "$p" ]] && echo "$p"; done >"$BASELINE.tmp/paths"
  rm -rf "$BASELINE"
  mv "$BASELINE.tmp" "$BASELINE"
}

# restore_sysctls [KEEP_REGEX]: write back every recorded setting that changed, except those
# matching KEEP_REGEX (settings the running node needs). Prints what it put back.
restore_sysctls() {
  local keep="${1:-^$}" key value now
  [[ -s "$BASELINE/sysctl" ]] || return 0
  while IFS= read -r line; do
    key="${line%% = *}"
    value="${line#* = }"
    [[ "$key" =~ $keep ]] && continue
    now="$(sysctl -n "$key" 2>/dev/null | tr '\t' ' ')" || continue
    value="$(tr '\t' ' ' <<<"$value")"
    [[ "$now" == "$value" ]] && continue
    if sysctl -qw "$key=$value" 2>/dev/null; then
      log "kernel setting $key put back to '$value' (was '$now')"
    else
      warn "could not put kernel setting $key back to '$value' (it is '$now')"
    fi
  done <"$BASELINE/sysctl"
}

# changed_sysctls: settings that differ from the record (nothing when the machine is as found).
changed_sysctls() {
  diff <(cat "$BASELINE/sysctl") <(sysctl_snapshot) | grep '^[<>]' || true
}

# ---------------------------------------------------------------- network

cmd_address() {
  [[ "$(id -u)" == 0 ]] || die "the real node needs root (network interfaces, mounts, cgroups)"
  take_baseline
  if ! ip link show "$NODE_INTERFACE" >/dev/null 2>&1; then
    log "creating interface $NODE_INTERFACE with $NODE_ADDRESS/32"
    ip link add "$NODE_INTERFACE" type bridge
  fi
  ip addr replace "$NODE_ADDRESS/32" dev "$NODE_INTERFACE"
  ip link set "$NODE_INTERFACE" up
}

# Pods route only to 198.18.0.0/15 (see the CNI config); this table also drops anything
# forwarded from the bridge to another interface, so no pod traffic leaves the machine.
write_guard() {
  nft -f - <<EOF
table inet $NFT_TABLE
delete table inet $NFT_TABLE
table inet $NFT_TABLE {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "$BRIDGE" oifname != "$BRIDGE" ip daddr != $NODE_ADDRESS counter drop
  }
}
EOF
}

write_cni_config() {
  mkdir -p "$NODE_DIR/cni/net.d" "$NODE_DIR/cni/ipam"
  # hairpinMode: a pod reaching its own Service comes back through the same port.
  cat >"$NODE_DIR/cni/net.d/10-$CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
        "routes": [{"dst": "198.18.0.0/15"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# ---------------------------------------------------------------- components

write_containerd_config() {
  local d="$NODE_DIR/containerd"
  mkdir -p "$d/root" "$d/state" "$d/opt" "$d/runc"
  # restrict_oom_score_adj: without CAP_SYS_RESOURCE runc cannot lower oom_score_adj below
  # its own, and every sandbox failed with "nsexec: failed to update oom_score_adj".
  cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$(sock)"

[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(image_ref pause)"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$d/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
}

write_kubelet_config() {
  local d="$NODE_DIR/kubelet"
  mkdir -p "$d/root" "$d/pod-logs" "$d/volume-plugins"
  # failCgroupV1: kubelet 1.36 refuses cgroup v1 (this machine's) otherwise.
  # resolvConf "": pods with dnsPolicy Default get no upstream resolver, so nothing resolves
  # names off the machine. Eviction and image GC thresholds are low: the disk may be fuller
  # than kubelet's defaults like, and a garbage-collected image cannot be pulled again here.
  cat >"$d/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$(sock)
address: $NODE_ADDRESS
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $d/pki/kubelet.crt
tlsPrivateKeyFile: $d/pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $d/pki/ca.crt}
authorization: {mode: Webhook}
clusterDNS: [$CLUSTER_DNS_IP]
clusterDomain: cluster.local
resolvConf: ""
podLogsDir: $d/pod-logs
volumePluginDir: $d/volume-plugins
failSwapOn: false
shutdownGracePeriod: 0s
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 110
# Pods see changed Secrets (rotated Workspace keys) within ~10 s instead of ~1 min.
syncFrequency: 10s
EOF
}

node_pki() {
  local cluster_dir="$1" pki="$NODE_DIR/kubelet/pki"
  mkdir -p "$pki"
  chmod 700 "$pki"
  cp "$cluster_dir/pki/ca.crt" "$cluster_dir/pki/ca.key" "$pki/"
  write_openssl_conf "$pki/openssl.cnf"
  # The Node authorizer and NodeRestriction know a kubelet by this name and group.
  sign "$pki" kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" v3_client
  sign "$pki" kubelet "/CN=$NODE_NAME" v3_server
  sign "$pki" kube-proxy "/CN=system:kube-proxy" v3_client
  rm -f "$pki/ca.key" "$pki/ca.srl"
  local server
  # shellcheck disable=SC1091 # written by hack/cluster.sh
  server="$(source "$cluster_dir/ports.env" && echo "https://$APISERVER_HOST:$APISERVER_PORT")"
  write_kubeconfig "$NODE_DIR/kubelet/kubeconfig" "$server" "$pki" kubelet-client "slipway"
  write_kubeconfig "$NODE_DIR/kube-proxy.kubeconfig" "$server" "$pki" kube-proxy "slipway"
}

coredns_manifest() {
  cat <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: system:coredns}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: system:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:coredns}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
# No forward plugin: names outside cluster.local get no answer, never a query off the machine.
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        cache 30
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      nodeSelector: {kubernetes.io/hostname: $NODE_NAME}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: coredns
        image: $(image_ref coredns)
        imagePullPolicy: IfNotPresent
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        resources:
          requests: {cpu: 50m, memory: 64Mi}
          limits: {memory: 128Mi}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $CLUSTER_DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
}

# ---------------------------------------------------------------- health

owner() { cat "$NODE_DIR/cluster" 2>/dev/null || true; }

processes_alive() {
  local c
  for c in containerd kubelet kube-proxy; do
    pid_alive "$NODE_DIR/pids/$c.pid" || return 1
  done
}

# kubectl_ ARGS...: kubectl against the owning cluster (its path looked up once: the
# readiness waits call this twice a second).
kubectl_() {
  [[ -n "${KUBECTL:-}" ]] || KUBECTL="$(tool_path kubectl)"
  "$KUBECTL" --kubeconfig="$SLIPWAY_STATE/clusters/$(owner)/kubeconfig" "$@"
}

node_ready() {
  [[ "$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

# available NAMESPACE DEPLOYMENT: its one replica is available.
available() {
  [[ "$(kubectl_ -n "$1" get deployment "$2" -o jsonpath='{.status.availableReplicas}')" == 1 ]]
}

# node_metrics: metrics.k8s.io serves the node's usage (metrics-server scraped its kubelet).
node_metrics() {
  kubectl_ get --raw "/apis/metrics.k8s.io/v1beta1/nodes/$NODE_NAME" >/dev/null 2>&1
}

cmd_healthy() {
  [[ "$(owner)" == "$1" ]] && processes_alive && node_ready
}

# apply_manifest FILE SED_ARGS...: apply hack/node/FILE with its placeholders filled in by
# `sed SED_ARGS`; on failure show kubectl's answer and take the node down.
apply_manifest() {
  local file="$1"
  shift
  sed "$@" "$HACK_DIR/node/$file" | kubectl_ apply -f - >"$NODE_DIR/logs/${file%.yaml}-apply.log" 2>&1 \
    || { cat "$NODE_DIR/logs/${file%.yaml}-apply.log" >&2; fail_node kubelet "applying hack/node/$file failed"; }
}

# fail_node COMPONENT MESSAGE: show the log, take the half-started node down, exit.
fail_node() {
  show_log "$1" "$NODE_DIR"
  warn "taking the half-started node down (logs copied to $SLIPWAY_STATE/node-failed-logs)"
  rm -rf "$SLIPWAY_STATE/node-failed-logs"
  cp -r "$NODE_DIR/logs" "$SLIPWAY_STATE/node-failed-logs" 2>/dev/null || true
  cmd_down ""
  die "$2"
}

wait_node() {
  local comp="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    pid_alive "$NODE_DIR/pids/$comp.pid" || fail_node "$comp" "$comp exited during startup"
    ((SECONDS < deadline)) || fail_node "$comp" "$* did not succeed within ${timeout}s"
    sleep 0.5
  done
}

# ---------------------------------------------------------------- up

cmd_up() {
  local cluster="$1" cluster_dir
  validate_name "$cluster"
  [[ "$(id -u)" == 0 ]] || die "the real node needs root (network interfaces, mounts, cgroups)"
  lock_instance node machine
  cluster_dir="$SLIPWAY_STATE/clusters/$cluster"
  local current
  current="$(owner)"
  if [[ -n "$current" && "$current" != "$cluster" ]]; then
    if processes_alive; then
      die "the real node of this machine belongs to cluster '$current' (one per machine): run 'hack/cluster.sh down $current' first"
    fi
    log "the real node of cluster '$current' is gone: cleaning up after it"
    cmd_down ""
  fi
  if [[ "$(owner)" == "$cluster" ]] && processes_alive \
     && wait_for "node $NODE_NAME to be Ready" 30 node_ready; then
    log "real node $NODE_NAME of cluster '$cluster' is already up"
    return 0
  fi
  [[ -d "$NODE_DIR" ]] && cmd_down ""

  local start=$SECONDS
  need_cmd containerd containerd
  need_cmd runc runc
  need_cmd nft nftables
  need_cmd conntrack conntrack
  [[ -x /usr/lib/cni/bridge ]] || need_cmd /usr/lib/cni/bridge containernetworking-plugins
  "$HACK_DIR/tools.sh" build kubernetes coredns local-path-provisioner traefik metrics-server >&2
  "$HACK_DIR/images.sh" build >&2
  local kubelet kube_proxy
  kubelet="$(tool_path kubelet)"
  kube_proxy="$(tool_path kube-proxy)"

  cmd_address
  mkdir -p "$NODE_DIR"/{logs,pids}
  echo "$cluster" >"$NODE_DIR/cluster"
  write_guard
  write_cni_config
  write_containerd_config
  write_kubelet_config
  node_pki "$cluster_dir"

  log "starting containerd (socket $(sock))"
  start_daemon containerd "$NODE_DIR" containerd --config "$NODE_DIR/containerd/config.toml" --log-level warn
  wait_node containerd 60 ctr_ version
  log "importing images"
  "$HACK_DIR/images.sh" import "$(sock)" >&2 || fail_node containerd "importing images failed"

  log "starting kubelet as node $NODE_NAME ($NODE_ADDRESS)"
  start_daemon kubelet "$NODE_DIR" "$kubelet" \
    --config="$NODE_DIR/kubelet/config.yaml" \
    --kubeconfig="$NODE_DIR/kubelet/kubeconfig" \
    --root-dir="$NODE_DIR/kubelet/root" \
    --cert-dir="$NODE_DIR/kubelet/pki" \
    --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_ADDRESS" \
    --node-labels="slipway.dev/node=real" \
    --v=1

  # conntrack flags 0: leave the machine's conntrack settings alone. --masquerade-all: the
  # bridge has no br_netfilter, so a pod calling a Service backed by a pod on the same
  # bridge must see replies come back through the host; masquerading makes them.
  log "starting kube-proxy (nftables)"
  start_daemon kube-proxy "$NODE_DIR" "$kube_proxy" \
    --kubeconfig="$NODE_DIR/kube-proxy.kubeconfig" \
    --proxy-mode=nftables \
    --hostname-override="$NODE_NAME" \
    --cluster-cidr="$POD_CIDR" \
    --nodeport-addresses="$NODE_ADDRESS/32" \
    --masquerade-all=true \
    --healthz-bind-address=127.0.0.1:10256 \
    --metrics-bind-address=127.0.0.1:10249 \
    --conntrack-max-per-core=0 \
    --conntrack-min=0 \
    --conntrack-tcp-timeout-established=0 \
    --conntrack-tcp-timeout-close-wait=0 \
    --oom-score-adj=0 \
    --v=1

  wait_node kubelet 120 node_ready
  # ip_forward stays on while pods run (routed Service traffic); the rest goes back now.
  restore_sysctls '^net\.ipv4\.(ip_forward|conf\.(all|default|lo|eth0)\.forwarding)$'
  wait_node kube-proxy 60 curl -sf --max-time 2 http://127.0.0.1:10256/healthz

  log "starting CoreDNS ($CLUSTER_DNS_IP)"
  coredns_manifest | kubectl_ apply -f - >"$NODE_DIR/logs/coredns-apply.log" 2>&1 \
    || { cat "$NODE_DIR/logs/coredns-apply.log" >&2; fail_node kubelet "applying CoreDNS failed"; }
  wait_node kubelet 120 available kube-system coredns

  # PVCs: local-path-provisioner (hack/node/local-path-storage.yaml says why not hostPath).
  mkdir -p "$NODE_DIR/volumes"
  log "starting local-path-provisioner (volumes in $NODE_DIR/volumes)"
  apply_manifest local-path-storage.yaml -e "s|__IMAGE__|$(image_ref local-path-provisioner)|g" \
    -e "s|__VOLUME_DIR__|$NODE_DIR/volumes|g"
  wait_node kubelet 120 available local-path-storage local-path-provisioner

  log "starting Traefik (Ingresses on $NODE_ADDRESS:$INGRESS_NODE_PORT)"
  apply_manifest traefik.yaml -e "s|__IMAGE__|$(image_ref traefik)|g" -e "s|__NODE_NAME__|$NODE_NAME|g" \
    -e "s|__NODE_ADDRESS__|$NODE_ADDRESS|g" -e "s|__INGRESS_CLASS__|$INGRESS_CLASS|g" \
    -e "s|__INGRESS_NODE_PORT__|$INGRESS_NODE_PORT|g"
  wait_node kubelet 120 available traefik traefik

  log "starting metrics-server (pod metrics for HorizontalPodAutoscalers)"
  apply_manifest metrics-server.yaml -e "s|__IMAGE__|$(image_ref metrics-server)|g" \
    -e "s|__NODE_NAME__|$NODE_NAME|g"
  wait_node kubelet 120 available kube-system metrics-server
  # Served once it has scraped the node twice: until then an HPA reads no metrics, and an
  # unavailable aggregated API fails discovery (namespace deletion waits on it).
  wait_node kubelet 120 node_metrics
  log "real node $NODE_NAME is up in $((SECONDS - start))s"
}

# ---------------------------------------------------------------- down

# kill_pods: SIGKILL every process in the kubelet's pod cgroups, then remove the cgroups
# (deepest first). Containers outlive containerd and their shims otherwise.
kill_pods() {
  local round f pid any
  for round in 1 2 3 4 5 6 7 8 9 10; do
    any=0
    while read -r f; do
      # A cgroup may go away between find and here: its processes are gone then.
      for pid in $(cat "$f" 2>/dev/null || true); do
        kill -KILL "$pid" 2>/dev/null || true
        any=1
      done
    done < <(find /sys/fs/cgroup/*/kubepods -name cgroup.procs 2>/dev/null)
    ((any)) || break
    ((round < 10)) || warn "processes left in the kubepods cgroups"
    sleep 0.5
  done
  find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
}

# unmount_under DIR...: lazily unmount every mount point below the given directories.
unmount_under() {
  local prefix target
  for prefix in "$@"; do
    { awk '{print $5}' /proc/self/mountinfo | grep -E "^${prefix}(/|$)" || true; } | LC_ALL=C sort -r \
      | while read -r target; do umount -l "$target" 2>/dev/null || true; done
  done
}

cmd_down() {
  local cluster="${1:-}"
  if [[ -n "$cluster" ]]; then
    validate_name "$cluster"
    lock_instance node machine
    [[ "$(owner)" == "$cluster" ]] || return 0
  fi
  [[ -d "$NODE_DIR" || -d "$BASELINE" ]] || return 0
  log "stopping real node $NODE_NAME"
  # Delete the Node object when its cluster outlives it, so nothing is scheduled there, and
  # the metrics API, whose server goes with the node (an unavailable aggregated API fails
  # discovery, and namespace deletion with it).
  if [[ -n "$(owner)" && -f "$SLIPWAY_STATE/clusters/$(owner)/kubeconfig" ]]; then
    kubectl_ --request-timeout=5s delete node "$NODE_NAME" --wait=false >/dev/null 2>&1 || true
    kubectl_ --request-timeout=5s delete apiservice v1beta1.metrics.k8s.io --wait=false >/dev/null 2>&1 || true
  fi
  stop_pidfiles "$NODE_DIR/pids/kube-proxy.pid" "$NODE_DIR/pids/kubelet.pid"
  kill_pods
  stop_pidfiles "$NODE_DIR/pids/containerd.pid"
  # Shims whose containers are gone exit by themselves; any left belong to this node.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $(sock)" 2>/dev/null || true

  unmount_under "$NODE_DIR" /var/lib/kubelet /run/containerd /var/run/netns /run/netns
  local ns
  for ns in $(comm -13 "$BASELINE/netns" <(netns_list) 2>/dev/null); do
    ip netns delete "$ns" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  ip link delete "$NODE_INTERFACE" 2>/dev/null || true
  local table
  while read -r table; do
    [[ -z "$table" ]] || nft "delete $table" 2>/dev/null || warn "could not delete nftables $table"
  done < <(comm -13 "$BASELINE/nft-tables" <(nft_tables) 2>/dev/null)
  local p
  for p in "${FIXED_PATHS[@]}"; do
    [[ -e "$p" ]] && ! grep -qxF "$p" "$BASELINE/paths" 2>/dev/null && rm -rf "$p"
  done
  rm -rf "$NODE_DIR"

  restore_sysctls
  local left
  left="$(changed_sysctls)"
  if [[ -n "$left" ]]; then
    warn "kernel settings still differ from before the node started:"
    printf '%s\n' "$left" >&2
    warn "record kept in $BASELINE"
    return 1
  fi
  rm -rf "$BASELINE"
  log "real node removed; kernel settings are as found"
}

cmd_status() {
  local c
  echo "cluster: $(owner)"
  for c in containerd kubelet kube-proxy; do
    if pid_alive "$NODE_DIR/pids/$c.pid"; then
      printf '%-12s running (pid %s)\n' "$c" "$(cat "$NODE_DIR/pids/$c.pid")"
    else
      printf '%-12s NOT running (log: %s)\n' "$c" "$NODE_DIR/logs/$c.log"
    fi
  done
}

usage() { sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; }

case "${1:-}" in
  up) [[ $# -eq 2 ]] || { usage >&2; exit 2; }; cmd_up "$2" ;;
  down) (($# <= 2)) || { usage >&2; exit 2; }; cmd_down "${2:-}" ;;
  address) cmd_address ;;
  healthy) [[ $# -eq 2 ]] || { usage >&2; exit 2; }; cmd_healthy "$2" ;;
  status) cmd_status ;;
  import)
    shift
    (($# > 0)) || { usage >&2; exit 2; }
    "$HACK_DIR/images.sh" import "$(sock)" "$@"
    ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
