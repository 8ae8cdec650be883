/**
 * `node api/kubeconfigResolver.ts` (bundled: dist/kubeconfig-resolver.js): resolves the kubeconfig selection
 * given as JSON on stdin with @kubernetes/client-node (api/kubeconfig.ts) and prints the plain result as JSON.
 *
 * The manager resolves in this short-lived process at start and whenever exec-plugin or auth-provider
 * credentials must be refreshed, so the library's code (tens of MiB once loaded) never stays in the
 * manager's memory (its budget is 150 MiB with 10,000 pods). A worker thread was tried first: its memory
 * was not given back to the system after it exited (+45 MiB RSS).
 */
import { isErrorCode } from './errors.ts';
import { resolveKubeconfig } from './kubeconfig.ts';
import type { KubeconfigSelection } from './kubeconfigTypes.ts';

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
try {
  const selection = JSON.parse(Buffer.concat(chunks).toString('utf8')) as KubeconfigSelection;
  process.stdout.write(`${JSON.stringify({ ok: await resolveKubeconfig(selection) })}\n`);
} catch (err) {
  const e = err as { code?: string; message?: string; statusCode?: number };
  const error = {
    code: isErrorCode(e.code) ? e.code : 'KDR_KUBECONFIG_INVALID',
    message: e.message ?? String(err),
    statusCode: e.statusCode,
  };
  process.stdout.write(`${JSON.stringify({ error })}\n`);
}
