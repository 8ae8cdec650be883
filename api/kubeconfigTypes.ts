/** Plain data of a resolved kubeconfig (api/kubeconfig.ts), passed between threads and to the transport. */

/** Which kubeconfig and context: kubectl's --kubeconfig and --context. */
export interface KubeconfigSelection {
  /** A kubeconfig file; default: $KUBECONFIG (files merged), then ~/.kube/config, then in-cluster. */
  kubeconfig?: string | undefined;
  /** A context of that configuration; default: its current-context. */
  context?: string | undefined;
  /**
   * In a pod, use the service account before ~/.kube/config (controller-runtime's order, for the manager);
   * kubectl's order (the default) tries ~/.kube/config first.
   */
  preferInCluster?: boolean | undefined;
  /** A directory prefixed to the in-cluster service account's paths (tests). */
  inClusterRoot?: string | undefined;
}

export interface ResolvedKubeconfig {
  /** The context used. */
  context: string;
  server: string;
  /** The context's namespace. */
  namespace?: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
  proxyUrl?: string;
  /** Authorization (Bearer or Basic) and Impersonate-User, as of now. */
  headers: Record<string, string>;
  /** A token file to re-read (rotating service-account tokens): its content is the bearer token. */
  tokenFile?: string;
  /**
   * Credentials that change: an exec plugin's or an auth provider's. Resolve again at expiresAt (when the
   * plugin says one) and after a 401.
   */
  refresh?: { kind: 'exec' | 'provider'; expiresAt?: number };
}
