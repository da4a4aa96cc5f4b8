//go:build tools

// Package tools pins the helm command built by hack/tools.sh, which lints, renders and
// installs charts/slipway.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
