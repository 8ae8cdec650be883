/** The process kubelet's PURE env resolution and `$(VAR)` expansion (kubelet semantics). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  expandCommand,
  expandVars,
  formatMap,
  hostBaseEnv,
  resolveEnv,
} from '../../devcluster/kubelet/env.ts';
import type { KContainer, KPod } from '../../devcluster/kubelet/podTypes.ts';

const pod: KPod = {
  metadata: {
    name: 'web-1',
    namespace: 'prod',
    uid: 'uid-1',
    labels: { app: 'web', tier: 'front' },
    annotations: { 'konductor.io/semaphore': 'slots' },
  },
  spec: { nodeName: 'konductor-dev-node', serviceAccountName: 'runner', containers: [] },
};
const ctx = {
  pod,
  nodeName: 'konductor-dev-node',
  podIP: '127.0.0.1',
  hostIP: '127.0.0.1',
  baseEnv: { PATH: '/bin', HOME: '/root' },
};
const none = { configMaps: new Map(), secrets: new Map() };
const env = (c: Partial<KContainer>, sources = none) => resolveEnv({ name: 'c', ...c }, ctx, sources);

describe('expandVars (kubelet $(VAR) expansion)', () => {
  const lookup = (n: string) => ({ A: 'a', B: 'b$(A)' })[n];
  it.each([
    ['$(A)', 'a'],
    ['x$(A)y$(A)', 'xaya'],
    ['$(B)', 'b$(A)'], // no recursive expansion
    ['$(MISSING)', '$(MISSING)'],
    ['$$(A)', '$(A)'],
    ['$$', '$'],
    ['$A', '$A'],
    ['$(A', '$(A'],
    ['a$', 'a$'],
    ['$()', '$()'],
  ])('%s -> %s', (input, out) => expect(expandVars(input, lookup)).toBe(out));

  it('leaves strings without $ unchanged', () => {
    fc.assert(
      fc.property(
        fc.string().filter((s) => !s.includes('$')),
        (s) => expandVars(s, lookup) === s,
      ),
    );
  });
});

describe('resolveEnv', () => {
  it('resolves fieldRefs of the downward API', () => {
    const fr = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
    const r = env({
      env: [
        fr('NAME', 'metadata.name'),
        fr('NS', 'metadata.namespace'),
        fr('UID', 'metadata.uid'),
        fr('APP', "metadata.labels['app']"),
        fr('SEM', "metadata.annotations['konductor.io/semaphore']"),
        fr('NODE', 'spec.nodeName'),
        fr('SA', 'spec.serviceAccountName'),
        fr('IP', 'status.podIP'),
        fr('HOST', 'status.hostIP'),
        fr('NOPE', "metadata.labels['nope']"),
      ],
    });
    expect(r).toEqual({
      ok: true,
      env: {
        PATH: '/bin',
        HOME: '/root',
        NAME: 'web-1',
        NS: 'prod',
        UID: 'uid-1',
        APP: 'web',
        SEM: 'slots',
        NODE: 'konductor-dev-node',
        SA: 'runner',
        IP: '127.0.0.1',
        HOST: '127.0.0.1',
        NOPE: '',
      },
    });
  });

  it('expands $(VAR) over variables defined earlier only, and command/args over the result', () => {
    const r = env({
      env: [
        { name: 'LATER', value: '$(FIRST)-x' },
        { name: 'FIRST', value: 'one' },
        { name: 'SECOND', value: '$(FIRST)-two' },
        { name: 'ESC', value: '$$(FIRST)' },
      ],
    });
    if (!r.ok) throw new Error(r.message);
    expect(r.env.LATER).toBe('$(FIRST)-x');
    expect(r.env.SECOND).toBe('one-two');
    expect(r.env.ESC).toBe('$(FIRST)');
    expect(
      expandCommand({ name: 'c', command: ['echo', '$(SECOND)'], args: ['$(NOPE)', '$$(SECOND)'] }, r.env),
    ).toEqual({ command: ['echo', 'one-two'], args: ['$(NOPE)', '$(SECOND)'] });
  });

  it('applies envFrom (with prefix) before env, env wins', () => {
    const sources = {
      configMaps: new Map([['cfg', { A: '1', B: '2' }]]),
      secrets: new Map([['sec', { TOKEN: 's3cret' }]]),
    };
    const r = env(
      {
        envFrom: [{ configMapRef: { name: 'cfg' } }, { secretRef: { name: 'sec' }, prefix: 'S_' }],
        env: [
          { name: 'B', value: 'override' },
          { name: 'K', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'A' } } },
          { name: 'T', valueFrom: { secretKeyRef: { name: 'sec', key: 'TOKEN' } } },
          { name: 'REF', value: '$(S_TOKEN)' },
        ],
      },
      sources,
    );
    expect(r.ok && r.env).toMatchObject({
      A: '1',
      B: 'override',
      S_TOKEN: 's3cret',
      K: '1',
      T: 's3cret',
      REF: 's3cret',
    });
  });

  it('reports missing ConfigMaps, Secrets and keys as CreateContainerConfigError unless optional', () => {
    const sources = {
      configMaps: new Map([
        ['cfg', { A: '1' }],
        ['gone', undefined],
      ]),
      secrets: new Map(),
    };
    expect(env({ envFrom: [{ configMapRef: { name: 'gone' } }] }, sources)).toEqual({
      ok: false,
      reason: 'CreateContainerConfigError',
      message: 'configmap "gone" not found',
    });
    expect(
      env({ env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'Z' } } }] }, sources),
    ).toEqual({
      ok: false,
      reason: 'CreateContainerConfigError',
      message: "couldn't find key Z in ConfigMap prod/cfg",
    });
    const opt = env(
      {
        envFrom: [{ configMapRef: { name: 'gone', optional: true } }],
        env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'Z', optional: true } } }],
      },
      sources,
    );
    expect(opt.ok && 'X' in opt.env).toBe(false);
  });

  it('rejects unsupported fieldPaths with a message', () => {
    expect(env({ env: [{ name: 'X', valueFrom: { fieldRef: { fieldPath: 'spec.bogus' } } }] })).toMatchObject(
      {
        ok: false,
        message: 'unsupported fieldPath: spec.bogus',
      },
    );
  });

  it("never passes the kubelet's own environment: only the base variables", () => {
    const base = hostBaseEnv({
      PATH: '/usr/bin',
      KUBECONFIG: '/secret/kubeconfig',
      HOME: '/root',
      AWS_SECRET: 'x',
    });
    expect(base).toEqual({ PATH: '/usr/bin', HOME: '/root' });
    expect(hostBaseEnv({}).PATH).toContain('/bin');
  });

  it('formats label maps as the downward API volume does', () => {
    expect(formatMap({ b: '2', a: 'x"y' })).toBe('a="x\\"y"\nb="2"');
  });
});
