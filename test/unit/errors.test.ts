/**
 * The error catalogue (api/errors.ts) is the one place codes, statuses and messages live: docs/errors.md lists
 * exactly its codes (with the same statuses), every code a product module spells is in it, and only the
 * catalogue renders messages (no `new KonductorError(...)` with a message made up at the call site).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERRORS, type ErrorCode, isErrorCode, KonductorError, konductorError } from '../../api/errors.ts';
import { ROOT } from '../../scripts/build.ts';

const PRODUCT = ['api', 'controller', 'webhook', 'sidecar', 'certs', 'cmd', 'plugin', 'devcluster'];
const CODES = Object.keys(ERRORS) as ErrorCode[];

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) yield* sources(path);
    else if (e.name.endsWith('.ts')) yield path;
  }
}
const product = PRODUCT.flatMap((d) => [...sources(d)]).map((path) => ({
  path,
  text: readFileSync(join(ROOT, path), 'utf8'),
}));

describe('error catalogue', () => {
  it('docs/errors.md lists every code of the catalogue, and no other, with its status', () => {
    const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| `(KDR_[A-Z_]+)`\s*\|\s*([^|]+)\|/gm)].map((m) => ({
      code: m[1]!,
      status: m[2]!.trim(),
    }));
    expect(rows.map((r) => r.code).sort()).toEqual([...CODES].sort());
    for (const { code, status } of rows) {
      if (/^\d+$/.test(status)) expect(Number(status), code).toBe(ERRORS[code as ErrorCode].statusCode);
    }
  });

  it('every code spelled in a product module is in the catalogue', () => {
    for (const { path, text } of product) {
      for (const [code] of text.matchAll(/KDR_[A-Z_]*[A-Z]/g))
        expect(isErrorCode(code), `${path}: ${code}`).toBe(true);
    }
  });

  it('messages are rendered only by the catalogue', () => {
    // The two exceptions render nothing themselves: the Kubernetes API's own answer (KubeApiError) and an
    // error the kubeconfig resolver process rendered from the catalogue.
    const allowed = new Set(['api/errors.ts', 'api/kubeClient.ts', 'api/kubeconfigSource.ts']);
    const offenders = product.filter((f) => !allowed.has(f.path) && /new KonductorError\(/.test(f.text));
    expect(offenders.map((f) => f.path)).toEqual([]);
  });

  it('renders a template with its arguments, the status from the catalogue, and a cause', () => {
    const cause = new Error('EACCES');
    const err = konductorError('KDR_KUBELET_CA', '/x/ca.crt', 'EACCES').causedBy(cause);
    expect(err).toBeInstanceOf(KonductorError);
    expect(err).toMatchObject({
      code: 'KDR_KUBELET_CA',
      statusCode: 500,
      message: 'process kubelet: cannot read the cluster CA /x/ca.crt: EACCES',
      cause,
    });
    expect(konductorError('KDR_AGENT_NO_TOKEN')).toMatchObject({
      statusCode: 401,
      message: 'missing bearer token',
    });
  });
});
