/**
 * The table of Go tool sets the devcluster builds from Go modules (the Kubernetes binaries, the chart
 * tools, cert-manager, ...): per set, its module directory, the packages and the binaries it yields.
 * devcluster/binaries.ts builds and caches them.
 */

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

/** One Go module of ours that builds a set of commands into one bin directory. */
export interface GoToolset {
  id: string;
  /** Version of the cache directory (the upstream release the module pins). */
  version: string;
  /** Absolute path of the Go module. */
  moduleDir: string;
  /** `go build` targets (package paths or ./relative dirs). */
  packages: string[];
  /** Names of the executables the build must produce. */
  binaries: string[];
  ldflags: string;
  /** Extra environment for `go build` (hashed into the stamp). */
  env?: Record<string, string>;
  /** Go build tags (`-tags`), hashed into the stamp. */
  tags?: string[];
  /** Minimum Go version (major.minor). */
  minGo: string;
}

export const K8S_VERSION = 'v1.37.2';
export const k8sMinor = K8S_VERSION.split('.')[1] ?? '';

/**
 * The table of tool sets. Add an entry per Go module (e.g. `chart-tools`: helm + kubeconform) and
 * call `ensureGoTools(id)`.
 */
export const GO_TOOLSETS: Readonly<Record<string, GoToolset>> = {
  k8s: {
    id: 'k8s',
    version: K8S_VERSION,
    moduleDir: join(HERE, 'k8s-tools'),
    packages: [
      './etcd',
      'k8s.io/kubernetes/cmd/kube-apiserver',
      'k8s.io/kubernetes/cmd/kube-controller-manager',
      'k8s.io/kubernetes/cmd/kubectl',
      // The real node (devcluster/realnode/): built in the same `go build` so they share its work.
      'k8s.io/kubernetes/cmd/kubelet',
      'k8s.io/kubernetes/cmd/kube-proxy',
      'k8s.io/kubernetes/cmd/kube-scheduler',
    ],
    binaries: [
      'etcd',
      'kube-apiserver',
      'kube-controller-manager',
      'kubectl',
      'kubelet',
      'kube-proxy',
      'kube-scheduler',
    ],
    ldflags: [
      '-s -w',
      `-X k8s.io/component-base/version.gitVersion=${K8S_VERSION}`,
      '-X k8s.io/component-base/version.gitMajor=1',
      `-X k8s.io/component-base/version.gitMinor=${k8sMinor}`,
      `-X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION}`,
      '-X k8s.io/client-go/pkg/version.gitMajor=1',
      `-X k8s.io/client-go/pkg/version.gitMinor=${k8sMinor}`,
    ].join(' '),
    env: { CGO_ENABLED: '0' },
    minGo: '1.26',
  },
  /** helm and kubeconform for the chart tests, and models-schema for offline Kubernetes schemas. */
  'chart-tools': {
    id: 'chart-tools',
    version: 'v3.22.0',
    moduleDir: join(HERE, 'chart-tools'),
    packages: [
      'helm.sh/helm/v3/cmd/helm',
      'github.com/yannh/kubeconform/cmd/kubeconform',
      'k8s.io/kubernetes/pkg/generated/openapi/cmd/models-schema',
    ],
    binaries: ['helm', 'kubeconform', 'models-schema'],
    // Without the k8sVersion flags helm assumes Kubernetes 1.20 and rejects the chart's kubeVersion floor.
    ldflags: [
      '-s -w',
      '-X helm.sh/helm/v3/internal/version.version=v3.22.0',
      '-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1',
      `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${k8sMinor}`,
      '-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1',
      `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${k8sMinor}`,
      '-X main.version=v0.8.0',
    ].join(' '),
    env: { CGO_ENABLED: '0' },
    minGo: '1.26',
  },
  /** containerd 2.x, its runc shim and ctr for the real node (REAL-NODE.md: static, no cgo). */
  containerd: {
    id: 'containerd',
    version: 'v2.4.2',
    moduleDir: join(HERE, 'containerd-tools'),
    packages: [
      'github.com/containerd/containerd/v2/cmd/containerd',
      'github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2',
      'github.com/containerd/containerd/v2/cmd/ctr',
    ],
    binaries: ['containerd', 'containerd-shim-runc-v2', 'ctr'],
    ldflags: [
      '-s -w',
      '-X github.com/containerd/containerd/v2/version.Version=v2.4.2',
      '-X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2',
    ].join(' '),
    env: { CGO_ENABLED: '0' },
    tags: ['no_btrfs', 'no_devmapper', 'no_zfs'],
    minGo: '1.26',
  },
  /** CoreDNS with the plugins the kube-dns Service needs (coredns-tools/coredns/main.go). */
  coredns: {
    id: 'coredns',
    version: 'v1.15.0',
    moduleDir: join(HERE, 'coredns-tools'),
    packages: ['./coredns'],
    binaries: ['coredns'],
    ldflags: '-s -w',
    env: { CGO_ENABLED: '0' },
    minGo: '1.26',
  },
  // cert-manager's own commands for the real node's local images (devcluster/certmanager/). v1.11.5 is
  // the newest release whose root module still holds cmd/ (docs/decisions.md).
  'cert-manager': {
    id: 'cert-manager',
    version: 'v1.11.5',
    moduleDir: join(HERE, 'certmanager', 'cert-manager-tools'),
    packages: [
      'github.com/cert-manager/cert-manager/cmd/controller',
      'github.com/cert-manager/cert-manager/cmd/cainjector',
      'github.com/cert-manager/cert-manager/cmd/webhook',
    ],
    binaries: ['controller', 'cainjector', 'webhook'],
    ldflags: '-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=v1.11.5',
    env: { CGO_ENABLED: '0' },
    minGo: '1.26',
  },
};
