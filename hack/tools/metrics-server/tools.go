//go:build tools

// Package tools pins the metrics-server command built by hack/tools.sh, which serves the real
// node's pod metrics to HorizontalPodAutoscalers (hack/node.sh).
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
