//go:build tools

// Package tools pins containerd 2.x (daemon, runc shim, ctr) for the devcluster's real node.
// Not part of the product: see devcluster/README.md.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
