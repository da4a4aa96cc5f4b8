#!/usr/bin/env bash
# End-to-end checks of the local environments started by the other scripts.
#
#   hack/smoke.sh cluster NAME    workloads on cluster NAME (restricted PodSecurity
#                                 Deployment, NodePort, ResourceQuota, PVC, StatefulSet)
#   hack/smoke.sh mail NAME       send a message over SMTP and read it from the API
#   hack/smoke.sh postgres NAME   connect with psql
#
# Each check cleans up after itself; it exits non-zero on the first failure.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ok() { printf 'ok   %s\n' "$*"; }

smoke_cluster() {
  local name="$1" dir ns=slipway-smoke
  dir="$SLIPWAY_STATE/clusters/$name"
  [[ -f "$dir/env" ]] || die "cluster '$name' is not up"
  # shellcheck disable=SC1091
  source "$dir/env"
  local k=("$SLIPWAY_KUBECTL" --kubeconfig="$KUBECONFIG")
  "${k[@]}" delete namespace "$ns" --ignore-not-found --wait=true >/dev/null

  "${k[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels:
    pod-security.kubernetes.io/enforce: restricted
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: quota
  namespace: $ns
spec:
  hard:
    pods: "4"
    requests.cpu: "1"
    requests.memory: 1Gi
    persistentvolumeclaims: "3"
EOF
  ok "namespace $ns (enforce=restricted) with ResourceQuota"

  # A privileged pod must be rejected by PodSecurity admission.
  local out
  if out="$("${k[@]}" -n "$ns" run bad --image=busybox --restart=Never \
      --overrides='{"spec":{"containers":[{"name":"bad","image":"busybox","securityContext":{"privileged":true}}]}}' 2>&1)"; then
    die "privileged pod was admitted into a restricted namespace"
  fi
  [[ "$out" == *"violates PodSecurity"* ]] || die "privileged pod rejected for an unexpected reason: $out"
  ok "PodSecurity rejected a privileged pod"

  local podspec
  podspec=$(cat <<'EOF'
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
      - name: app
        image: registry.k8s.io/pause:3.10
        ports:
        - containerPort: 8080
        securityContext:
          allowPrivilegeEscalation: false
          capabilities:
            drop: ["ALL"]
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: 200m, memory: 128Mi}
EOF
)
  "${k[@]}" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: $ns
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
$podspec
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: $ns
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
EOF
  "${k[@]}" -n "$ns" rollout status deployment/web --timeout=60s >/dev/null
  "${k[@]}" -n "$ns" wait deployment/web --for=condition=Available --timeout=30s >/dev/null
  local avail
  avail="$("${k[@]}" -n "$ns" get deployment web -o jsonpath='{.status.availableReplicas}')"
  [[ "$avail" == 2 ]] || die "deployment web has $avail available replicas, want 2"
  ok "deployment web: 2/2 available ($("${k[@]}" -n "$ns" get pods -l app=web -o jsonpath='{range .items[*]}{.spec.nodeName}={.status.podIP} {end}'))"
  local np
  np="$("${k[@]}" -n "$ns" get service web -o jsonpath='{.spec.ports[0].nodePort}')"
  [[ -n "$np" ]] || die "service web got no nodePort"
  ok "service web: clusterIP $("${k[@]}" -n "$ns" get service web -o jsonpath='{.spec.clusterIP}'), nodePort $np"
  wait_for "endpoints of web" 30 bash -c "[[ \$('${SLIPWAY_KUBECTL}' --kubeconfig='$KUBECONFIG' -n $ns get endpointslices -l kubernetes.io/service-name=web -o jsonpath='{.items[*].endpoints[*].addresses[0]}' | wc -w) == 2 ]]" \
    || die "service web has no ready endpoints"
  ok "service web has 2 endpoints"

  # Quota: requests.cpu is 1 and 2 x 100m are used, so 10 x 100m must be refused.
  "${k[@]}" -n "$ns" scale deployment web --replicas=10 >/dev/null
  wait_for "quota rejection event" 30 bash -c "'${SLIPWAY_KUBECTL}' --kubeconfig='$KUBECONFIG' -n $ns get events --field-selector reason=FailedCreate -o name | grep -q ." \
    || die "ResourceQuota did not reject pods"
  local pods
  pods="$("${k[@]}" -n "$ns" get pods -o name | wc -l)"
  ((pods <= 4)) || die "quota allows $pods pods, limit is 4"
  ok "ResourceQuota enforced ($pods pods, FailedCreate: $("${k[@]}" -n "$ns" get events --field-selector reason=FailedCreate -o jsonpath='{.items[0].message}' | cut -c1-90)...)"
  "${k[@]}" -n "$ns" scale deployment web --replicas=1 >/dev/null

  "${k[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: $ns
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 1Gi}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: $ns
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
$podspec
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests: {storage: 1Gi}
EOF
  "${k[@]}" -n "$ns" wait pvc/data --for=jsonpath='{.status.phase}'=Bound --timeout=60s >/dev/null
  ok "PVC data bound to $("${k[@]}" -n "$ns" get pvc data -o jsonpath='{.spec.volumeName}') (storageClass $("${k[@]}" -n "$ns" get pvc data -o jsonpath='{.spec.storageClassName}'))"
  "${k[@]}" -n "$ns" rollout status statefulset/db --timeout=60s >/dev/null
  "${k[@]}" -n "$ns" wait pvc/data-db-0 --for=jsonpath='{.status.phase}'=Bound --timeout=30s >/dev/null
  ok "statefulset db ready with bound PVC data-db-0"

  "${k[@]}" delete namespace "$ns" --wait=true --timeout=120s >/dev/null
  ok "namespace $ns deleted"
  echo "cluster '$name': all checks passed"
}

smoke_mail() {
  local name="$1" dir
  dir="$SLIPWAY_STATE/mail/$name"
  [[ -f "$dir/env" ]] || die "mail catcher '$name' is not up"
  # shellcheck disable=SC1091
  source "$dir/env"
  local to="smoke-$RANDOM@example.test"
  python3 - "$SLIPWAY_SMTP_HOST" "$SLIPWAY_SMTP_PORT" "$to" <<'EOF'
import smtplib, sys
from email.message import EmailMessage
host, port, to = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = EmailMessage()
m["From"] = "slipway@example.test"
m["To"] = to
m["Subject"] = "slipway smoke test"
m.set_content("hello from hack/smoke.sh")
with smtplib.SMTP(host, port) as s:
    s.send_message(m)
EOF
  ok "sent a message to $to via $SLIPWAY_SMTP_URL"
  local body
  body="$(curl -sf "$SLIPWAY_MAIL_API/api/v2/search?kind=to&query=$to")"
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["total"]==1, d; print("ok   found it via the API, subject:", d["items"][0]["Content"]["Headers"]["Subject"][0])' "$body"
  curl -sf -X DELETE "$SLIPWAY_MAIL_API/api/v1/messages" >/dev/null
  ok "DELETE /api/v1/messages"
  echo "mail '$name': all checks passed"
}

smoke_postgres() {
  local name="$1" dir
  dir="$SLIPWAY_STATE/postgres/$name"
  [[ -f "$dir/env" ]] || die "postgres '$name' is not up"
  # shellcheck disable=SC1091
  source "$dir/env"
  local psql
  psql="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql"
  [[ -x "$psql" ]] || psql=psql
  "$psql" "$SLIPWAY_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -qtA \
    -c 'create temp table smoke(x int)' -c 'insert into smoke values (1)' \
    -c 'select version()'
  echo "postgres '$name': all checks passed"
}

[[ $# -eq 2 ]] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
case "$1" in
  cluster) smoke_cluster "$2" ;;
  mail) smoke_mail "$2" ;;
  postgres) smoke_postgres "$2" ;;
  *) die "unknown check '$1'" ;;
esac
