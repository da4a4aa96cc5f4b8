//go:build tools

// Package tools pins local-path-provisioner, the PVC provisioner of the real node
// (hack/node.sh applies hack/node/local-path-storage.yaml).
package tools

import (
	_ "github.com/rancher/local-path-provisioner"
)
