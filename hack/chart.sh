#!/usr/bin/env bash
# Checks of the Helm chart charts/slipway, as the test-suite runs them (tests/chart.rs):
#
#   hack/chart.sh check     (KUBECONFIG of a running cluster, e.g. from hack/cluster.sh)
#
# For the default values and for a highly available set (2 API replicas on PostgreSQL, a
# node port, a plan catalogue): `helm lint --strict`, `helm template` validated by
# kubeconform -strict against the cluster's own OpenAPI schemas (hack/kube-schemas.py, no
# download), and a server-side dry-run apply of the CRDs and every rendered object against
# the cluster's API server (admission included); the optional ServiceMonitor is linted and
# rendered only (the cluster has no Prometheus Operator CRD), and so are cert-manager's
# Certificate and Issuer (certManager.enabled), whose other objects kubeconform validates. helm and kubeconform come from
# hack/tools.sh. Exits non-zero at the first failure.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHART="$(cd "$HACK_DIR/.." && pwd)/charts/slipway"

# The value sets every check runs with: defaults, and high availability.
VALUE_SETS=(
  ""
  "api.replicas=2,api.database.existingSecret=slipway-database,api.service.type=NodePort,api.service.nodePort=30088,webhook.replicas=3,controller.replicas=3,controller.nodeAddress=198.19.128.1,plans=plans: {}"
)

cmd_check() {
  [[ -n "${KUBECONFIG:-}" ]] || die "KUBECONFIG is not set: run against a cluster (hack/cluster.sh up NAME)"
  local helm kubeconform kubectl tmp
  helm="$(tool_path helm)" kubeconform="$(tool_path kubeconform)" kubectl="$(tool_path kubectl)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  local i=0 values
  for values in "${VALUE_SETS[@]}"; do
    local -a set=()
    [[ -z "$values" ]] || set=(--set "$values")
    log "values #$i: ${values:-defaults}"
    "$helm" lint --strict "$CHART" "${set[@]}" >&2
    "$helm" template slipway "$CHART" --namespace default --include-crds "${set[@]}" >"$tmp/rendered-$i.yaml"
    PATH="$(dirname "$kubectl"):$PATH" python3 "$HACK_DIR/kube-schemas.py" "$tmp/schemas" <"$tmp/rendered-$i.yaml"
    "$kubeconform" -strict -summary \
      -schema-location "$tmp/schemas/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json" \
      "$tmp/rendered-$i.yaml" >&2
    # Everything but the webhook configurations by server-side apply. Those are replaced, not
    # merged: on a cluster where an in-process Slipway registered `slipway` with a URL, a
    # merge would keep its url next to the chart's service, which no API server accepts.
    "$kubectl" apply --server-side --dry-run=server --force-conflicts --field-manager=slipway-chart-check \
      -l 'app.kubernetes.io/component!=admission' -f "$tmp/rendered-$i.yaml" >&2
    "$helm" template slipway "$CHART" --namespace default "${set[@]}" \
      --show-only templates/webhook-configurations.yaml >"$tmp/admission-$i.yaml"
    local verb=create
    "$kubectl" get mutatingwebhookconfiguration slipway >/dev/null 2>&1 && verb=replace
    "$kubectl" "$verb" --dry-run=server -f "$tmp/admission-$i.yaml" >&2
    i=$((i + 1))
  done
  # The ServiceMonitor needs the Prometheus Operator's CRD, which this cluster lacks: lint and
  # render only.
  log "values: metrics.serviceMonitor.enabled=true (lint and render)"
  "$helm" lint --strict "$CHART" --set metrics.serviceMonitor.enabled=true >&2
  "$helm" template slipway "$CHART" --set metrics.serviceMonitor.enabled=true \
    --show-only templates/metrics.yaml | grep -q '^kind: ServiceMonitor$' || die "no ServiceMonitor rendered"
  # cert-manager's kinds need its CRDs, which this cluster lacks either: the rest of that
  # rendering is validated, the Certificate and Issuer rendered only.
  log "values: certManager.enabled=true (lint, kubeconform but cert-manager's kinds)"
  "$helm" lint --strict "$CHART" --set certManager.enabled=true >&2
  "$helm" template slipway "$CHART" --namespace default --set certManager.enabled=true >"$tmp/cert-manager.yaml"
  "$kubeconform" -strict -summary -skip Certificate,Issuer \
    -schema-location "$tmp/schemas/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json" \
    "$tmp/cert-manager.yaml" >&2
  grep -q '^kind: Certificate$' "$tmp/cert-manager.yaml" || die "no Certificate rendered"
  [[ "$(grep -c "cert-manager.io/inject-ca-from: 'default/slipway-webhook-tls'" "$tmp/cert-manager.yaml")" == 2 ]] \
    || die "the webhook configurations do not ask cert-manager for their caBundle"
  log "chart checks passed"
}

case "${1:-}" in
  check) cmd_check ;;
  -h|--help|help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '${1:-}' (use: check)" ;;
esac
