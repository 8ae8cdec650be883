//go:build tools

// Package tools pins cert-manager's own commands (controller, cainjector, webhook) at v1.11.5, the
// newest release whose root module still contains cmd/ (see docs/decisions.md). devcluster/certmanager
// builds them into local images.
package tools

import (
	_ "github.com/cert-manager/cert-manager/cmd/cainjector"
	_ "github.com/cert-manager/cert-manager/cmd/controller"
	_ "github.com/cert-manager/cert-manager/cmd/webhook"
)
