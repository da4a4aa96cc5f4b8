//go:build tools

// Package tools pins the kubeconform command built by hack/tools.sh, which validates the
// rendered chart against Kubernetes' and Slipway's schemas.
package tools

import _ "github.com/yannh/kubeconform/cmd/kubeconform"
