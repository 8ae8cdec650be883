/**
 * cert-manager for the devcluster's real node (issue 9), built from its Go modules (v1.11.5: the newest
 * release whose module still holds cmd/; docs/decisions.md):
 *
 *   const images = await ensureCertManagerImages();   // controller, cainjector, webhook
 *   await importImages({ ctr, address, namespace: 'k8s.io', archives: Object.values(images) });
 *   await installCertManager({ kubeconfig });         // helm chart of the module; waits for the webhook
 */
export {
  CERT_MANAGER_MODULE,
  CERT_MANAGER_VERSION,
  certManagerModuleDir,
  crdsTemplate,
  ensureCertManagerChart,
} from './chart.ts';
export {
  CERT_MANAGER_COMPONENTS,
  type CertManagerComponent,
  type CertManagerImages,
  certManagerImageRef,
  ensureCertManagerBinaries,
  ensureCertManagerImages,
} from './images.ts';
export {
  type CertManagerInstall,
  certManagerHelmArgs,
  type InstallCertManagerOptions,
  installCertManager,
  type WaitForCertManagerOptions,
  waitForCertManagerWebhook,
  withHelmHome,
} from './install.ts';
