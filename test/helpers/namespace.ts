/** One namespace per test file: created before its tests, deleted after them. */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { isNotFound, type KubeClient } from '../../api/kubeClient.ts';
import { useAdminClient } from './cluster.ts';

export interface TestNamespace {
  /** The namespace's name (valid at once; the namespace exists from beforeAll on). */
  name: string;
  client: KubeClient;
}

/**
 * Call at the top level of a test file: `const ns = testNamespace('jobs')`. The name is
 * `kt-<prefix>-<random>`; the namespace is deleted (without waiting for finalization) after the file.
 * Set KONDUCTOR_KEEP_NAMESPACES=1 to keep it for debugging.
 */
export function testNamespace(prefix = 'test'): TestNamespace {
  const clean = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 40);
  const name = `kt-${clean}-${randomBytes(3).toString('hex')}`;
  const client = useAdminClient();
  beforeAll(async () => {
    await client.create('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels: { 'konductor.io/test-namespace': 'true' } },
    });
  });
  afterAll(async () => {
    if (process.env.KONDUCTOR_KEEP_NAMESPACES === '1') return;
    await client.delete(`/api/v1/namespaces/${name}`).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
  });
  return { name, client };
}
