#!/usr/bin/env bash
# Build the pinned third-party binaries used by the hack/ scripts from upstream
# Go modules, and cache them outside the repo.
#
#   hack/tools.sh                  build every tool that is not cached yet, and install
#                                  schemathesis (PyPI) with hack/schemathesis.sh
#   hack/tools.sh build TOOL...    build only these tools (kubernetes etcd kwok mailhog coredns
#                                  local-path-provisioner traefik helm kubeconform metrics-server)
#   hack/tools.sh path BINARY      print the cached path of BINARY (building it if needed)
#   hack/tools.sh list             print "tool version binary path" for every binary
#
# Binaries live in $SLIPWAY_CACHE/bin/<tool>-<version>/<binary>
# (SLIPWAY_CACHE defaults to ${XDG_CACHE_HOME:-~/.cache}/slipway).
#
# Every tool has a tracked module in hack/tools/<tool>/ (go.mod, go.sum,
# tools.go) so the dependency graph is pinned and reproducible. To bump a
# version: edit the version below AND hack/tools/<tool>/go.mod, then run
# `go mod tidy` in that directory.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.8      # the etcd line k8s.io/kubernetes v1.36.3 itself depends on
KWOK_VERSION=v0.8.0
MAILHOG_VERSION=v1.0.1   # Mailpit is not served by the Go module proxy
COREDNS_VERSION=v1.14.7  # cluster DNS of the real node (hack/node.sh)
# PVC provisioner of the real node; the newest release sum.golang.org verifies (see its go.mod)
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30
# Ingress controller of the real node. The module proxy serves v3.6.12 and v3.7.11+; v3.7
# needs a nested module its zip leaves out and modules the proxy refuses (see go.mod).
TRAEFIK_VERSION=v3.6.12
# Lints, renders and installs charts/slipway (a Helm v3 chart, apiVersion v2, which Helm 4
# reads unchanged); v4 is the line the module proxy recommends over v3.
HELM_VERSION=v4.3.2
# Validates the rendered chart against Kubernetes' and Slipway's schemas (hack/chart.sh).
KUBECONFORM_VERSION=v0.8.0
# Resource metrics (CPU, memory) of the real node's pods for HorizontalPodAutoscalers
# (hack/node.sh); v0.8.0 is the newest approved release the module proxy serves.
METRICS_SERVER_VERSION=v0.8.0

ALL_TOOLS=(kubernetes etcd kwok mailhog coredns local-path-provisioner traefik helm kubeconform metrics-server)

tool_version() {
  case "$1" in
    kubernetes) echo "$KUBE_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
    mailhog) echo "$MAILHOG_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    local-path-provisioner) echo "$LOCAL_PATH_PROVISIONER_VERSION" ;;
    traefik) echo "$TRAEFIK_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    kubeconform) echo "$KUBECONFORM_VERSION" ;;
    metrics-server) echo "$METRICS_SERVER_VERSION" ;;
    *) die "unknown tool '$1' (known: ${ALL_TOOLS[*]})" ;;
  esac
}

tool_binaries() {
  case "$1" in
    kubernetes) echo "kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy" ;;
    etcd) echo "etcd" ;;
    kwok) echo "kwok" ;;
    mailhog) echo "mailhog" ;;
    coredns) echo "coredns" ;;
    local-path-provisioner) echo "local-path-provisioner" ;;
    traefik) echo "traefik" ;;
    helm) echo "helm" ;;
    kubeconform) echo "kubeconform" ;;
    metrics-server) echo "metrics-server" ;;
  esac
}

tool_of_binary() {
  local t b
  for t in "${ALL_TOOLS[@]}"; do
    for b in $(tool_binaries "$t"); do
      [[ "$b" == "$1" ]] && { echo "$t"; return 0; }
    done
  done
  die "unknown binary '$1' (known: $(for t in "${ALL_TOOLS[@]}"; do tool_binaries "$t"; done | tr '\n' ' '))"
}

tool_dir() { echo "$SLIPWAY_CACHE/bin/$1-$(tool_version "$1")"; }

tool_cached() {
  local b
  for b in $(tool_binaries "$1"); do
    [[ -x "$(tool_dir "$1")/$b" ]] || return 1
  done
}

check_go() {
  command -v go >/dev/null 2>&1 || die "go is not installed (need go >= 1.26)"
  local v
  v="$(GOTOOLCHAIN=local go env GOVERSION)"   # e.g. go1.26.8
  v="${v#go}"
  local major="${v%%.*}" rest="${v#*.}"
  local minor="${rest%%.*}"
  if ((major < 1 || (major == 1 && minor < 26))); then
    die "go $v is too old: k8s.io/kubernetes $KUBE_VERSION needs go >= 1.26"
  fi
}

# go_build TOOL OUTDIR: compile the tool's packages into OUTDIR.
go_build() {
  local tool="$1" out="$2" version
  version="$(tool_version "$tool")"
  local moddir="$HACK_DIR/tools/$tool"
  # The version in go.mod must be the one this script names the cache dir after.
  grep -q "$version" "$moddir/go.mod" || die "$moddir/go.mod does not pin $version"

  local ldflags="-s -w"
  local -a flags=(-p "$(nproc)" -trimpath)
  (
    cd "$moddir" || exit 1
    export GOTOOLCHAIN=local CGO_ENABLED=0
    # -mod=readonly: build exactly what go.mod/go.sum pin, never rewrite them.
    export GOFLAGS="-mod=readonly -buildvcs=false"
    case "$tool" in
      kubernetes)
        # Same version stamping as upstream's hack/lib/version.sh, so
        # `kubectl version` and /version report the real release.
        local p
        for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
          ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=36"
          ldflags+=" -X $p.gitTreeState=clean"
        done
        # One invocation for all six commands: they share most packages. kubelet and
        # kube-proxy run the real node (hack/node.sh).
        go build "${flags[@]}" -ldflags "$ldflags" -o "$out/" \
          k8s.io/kubernetes/cmd/kube-apiserver \
          k8s.io/kubernetes/cmd/kube-controller-manager \
          k8s.io/kubernetes/cmd/kube-scheduler \
          k8s.io/kubernetes/cmd/kubectl \
          k8s.io/kubernetes/cmd/kubelet \
          k8s.io/kubernetes/cmd/kube-proxy
        ;;
      etcd)
        # The etcd main package is the server/v3 module root (server/main.go).
        go build "${flags[@]}" -ldflags "$ldflags" -o "$out/etcd" go.etcd.io/etcd/server/v3
        ;;
      kwok)
        go build "${flags[@]}" -ldflags "$ldflags" -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok
        ;;
      mailhog)
        go build "${flags[@]}" -ldflags "$ldflags" -o "$out/mailhog" github.com/mailhog/MailHog
        ;;
      coredns)
        # Static (CGO off): it runs in an image with nothing else in it.
        go build "${flags[@]}" -ldflags "$ldflags" -o "$out/coredns" github.com/coredns/coredns
        ;;
      local-path-provisioner)
        # Static (CGO off): it runs in an image with nothing else in it. VERSION stamped as
        # upstream's scripts/build does, so `--version` names the release.
        go build "${flags[@]}" -ldflags "$ldflags -X main.VERSION=$version" \
          -o "$out/local-path-provisioner" github.com/rancher/local-path-provisioner
        ;;
      traefik)
        # Traefik's go.mod replaces modules with its own forks, and Go ignores a dependency's
        # replace directives: it builds only as the main module. So build it in the source
        # tree `go mod download` fetched and checked against hack/tools/traefik/go.sum (the
        # zip carries traefik's own go.sum, which pins everything else). Static, for an image
        # with nothing else in it; Version stamped as upstream's Makefile does.
        local src
        src="$(go mod download -json "github.com/traefik/traefik/v3@$version" \
          | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
        [[ -f "$src/cmd/traefik/traefik.go" ]] || { echo "no traefik source in '$src'" >&2; exit 1; }
        cd "$src" || exit 1
        go build "${flags[@]}" -ldflags "$ldflags -X github.com/traefik/traefik/v3/pkg/version.Version=$version" \
          -o "$out/traefik" ./cmd/traefik
        ;;
      helm)
        # Version stamped as upstream's Makefile does, so `helm version` names the release.
        go build "${flags[@]}" -ldflags "$ldflags -X helm.sh/helm/v4/internal/version.version=$version" \
          -o "$out/helm" helm.sh/helm/v4/cmd/helm
        ;;
      kubeconform)
        go build "${flags[@]}" -ldflags "$ldflags" -o "$out/kubeconform" \
          github.com/yannh/kubeconform/cmd/kubeconform
        ;;
      metrics-server)
        # Static, for an image with nothing else in it. Upstream's Makefile stamps client-go's
        # version package, so `--version` names the release.
        go build "${flags[@]}" -ldflags "$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version" \
          -o "$out/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server
        ;;
    esac
  )
}

build_tool() {
  local tool="$1" version dir
  version="$(tool_version "$tool")"
  dir="$(tool_dir "$tool")"
  tool_cached "$tool" && return 0

  mkdir -p "$SLIPWAY_CACHE/bin"
  # Serialize concurrent builds of the same tool (e.g. two `cluster.sh up` at once).
  exec {lockfd}>"$SLIPWAY_CACHE/bin/.$tool.lock"
  flock "$lockfd"
  if tool_cached "$tool"; then
    exec {lockfd}>&-
    return 0
  fi
  check_go

  local hint=""
  [[ "$tool" == kubernetes ]] && hint=" (first build takes many minutes)"
  log "building $tool $version$hint"
  local start=$SECONDS tmp="$dir.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! go_build "$tool" "$tmp"; then
    rm -rf "$tmp"
    exec {lockfd}>&-
    die "building $tool $version failed"
  fi
  # Publish atomically so an interrupted build never looks cached.
  rm -rf "$dir"
  mv "$tmp" "$dir"
  exec {lockfd}>&-
  log "built $tool $version in $((SECONDS - start))s -> $dir"
}

cmd_build() {
  local start=$SECONDS t all=false
  (($# > 0)) || { all=true; set -- "${ALL_TOOLS[@]}"; }
  for t in "$@"; do
    tool_version "$t" >/dev/null
    if tool_cached "$t"; then
      log "$t $(tool_version "$t") is cached in $(tool_dir "$t")"
    else
      build_tool "$t"
    fi
  done
  # The one tool from PyPI rather than a Go module: a venv of its own (hack/schemathesis.sh).
  if $all; then
    "$HACK_DIR/schemathesis.sh" install
  fi
  log "tools ready in $((SECONDS - start))s"
}

cmd_path() {
  (($# == 1)) || die "usage: $0 path BINARY"
  local tool
  tool="$(tool_of_binary "$1")"
  tool_cached "$tool" || build_tool "$tool"
  echo "$(tool_dir "$tool")/$1"
}

cmd_list() {
  local t b
  for t in "${ALL_TOOLS[@]}"; do
    for b in $(tool_binaries "$t"); do
      local p
      p="$(tool_dir "$t")/$b"
      [[ -x "$p" ]] || p="$p (not built)"
      echo "$t $(tool_version "$t") $b $p"
    done
  done
}

case "${1:-build}" in
  build) shift || true; cmd_build "$@" ;;
  path) shift; cmd_path "$@" ;;
  list) cmd_list ;;
  -h|--help|help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (use: build [TOOL...] | path BINARY | list)" ;;
esac
