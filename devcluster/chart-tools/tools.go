//go:build tools

// Package tools pins the upstream commands built for the chart tests (see docs/helm.md):
// helm renders and lints charts/konductor; kubeconform validates the rendered manifests;
// models-schema prints the OpenAPI definitions compiled into Kubernetes, from which the tests
// generate kubeconform's JSON schemas offline.
package tools

import (
	_ "github.com/yannh/kubeconform/cmd/kubeconform"
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/pkg/generated/openapi/cmd/models-schema"
)
