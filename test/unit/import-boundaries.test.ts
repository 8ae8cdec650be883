import { describe, expect, it } from 'vitest';
import { areaOf, checkImports, resolveSpecifier } from '../../scripts/importBoundaries.ts';

const file = (path: string, ...specifiers: string[]) => ({
  path,
  imports: specifiers.map((specifier, i) => ({ specifier, line: i + 1 })),
});

describe('import boundaries', () => {
  it('puts a file in its most specific area', () => {
    expect(areaOf('controller/arbitration/lease.ts')).toBe('controller/arbitration');
    expect(areaOf('controller/controller.ts')).toBe('controller');
    expect(areaOf('test/helpers/waitFor.ts')).toBe('test/helpers');
    expect(areaOf('README.md')).toBeUndefined();
  });

  it('resolves relative specifiers from the importing file', () => {
    expect(resolveSpecifier('devcluster/kubelet/node.ts', '../../api/types.ts')).toBe('api/types.ts');
    expect(resolveSpecifier('controller/controller.ts', './arbitration/kinds.ts')).toBe(
      'controller/arbitration/kinds.ts',
    );
  });

  it('accepts what the layers allow', () => {
    expect(
      checkImports([
        file('controller/controller.ts', '../api/types.ts', './arbitration/kinds.ts', 'pino'),
        file('plugin/views.ts', '../controller/arbitration/stages.ts'),
        file('devcluster/pki.ts', '../certs/certificateBuilder.ts', 'node:fs'),
        file('bench/agent.ts', '../test/helpers/fakeManager.ts'),
        file('cmd/konductor.ts', '../webhook/server.ts', '../plugin/main.ts'),
      ]),
    ).toEqual([]);
  });

  it('names every import that crosses a boundary', () => {
    const v = checkImports([
      file('api/types.ts', '../controller/controller.ts'),
      file('devcluster/konductor.ts', '../webhook/server.ts', '../controller/controller.ts'),
      file('bench/agent.ts', '../test/unit/agent-process.test.ts'),
      file('plugin/views.ts', '../controller/metrics.ts'),
      file('sidecar/wait.ts', '../certs/generate.ts'),
      file('controller/arbitration/lease.ts', 'node:fs', '../../api/types.ts'),
    ]);
    expect(v.map((x) => `${x.path}:${x.line} ${x.specifier}`)).toEqual([
      'api/types.ts:1 ../controller/controller.ts',
      'devcluster/konductor.ts:1 ../webhook/server.ts',
      'devcluster/konductor.ts:2 ../controller/controller.ts',
      'bench/agent.ts:1 ../test/unit/agent-process.test.ts',
      'plugin/views.ts:1 ../controller/metrics.ts',
      'sidecar/wait.ts:1 ../certs/generate.ts',
      'controller/arbitration/lease.ts:1 node:fs',
    ]);
    expect(v[1]?.message).toContain('devcluster/ may import api/, certs/, devcluster/, not webhook/');
  });
});
