import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { API_VERSION, CATEGORY, GROUP, KINDS, type PrimitiveKind, VERSION } from '../../api/constants.ts';
import { crdName, loadCrdManifests } from '../../api/crds.ts';
import {
  DURATION_BOUND_RULE,
  DURATION_PATTERN,
  DURATION_TOO_LONG_MESSAGE,
  durationNanos,
  isDuration,
} from '../../api/duration.ts';
import {
  MAX_ARRIVALS,
  MAX_EXPECTED,
  MAX_GATE_CONDITIONS,
  MAX_HOLDERS,
  MAX_PERMITS,
  MAX_STATUS_MESSAGE,
  MAX_TOKEN,
  PRIORITY_MAX,
  PRIORITY_MIN,
} from '../../api/limits.ts';
import { GATE_CONDITION_STATES } from '../../api/types.ts';
import { QUEUE_STATUS_LIMIT } from '../../controller/arbitration/waitingQueue.ts';

// ------------------------------------------------------------------------------------------------
// A small structural-schema validator (the subset of OpenAPI v3 the CRDs use) and a translator for the
// tiny CEL subset of their x-kubernetes-validations rules. The integration tests check the same
// manifests against a real kube-apiserver; this keeps the fast loop honest.
// ------------------------------------------------------------------------------------------------

interface Schema {
  description?: string;
  type?: string;
  format?: string;
  required?: string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  'x-kubernetes-validations'?: { rule: string; message: string }[];
}

function celToJs(rule: string): (self: unknown) => boolean {
  const js = rule
    .replace(/(!=|==)/g, '$1=')
    .replace(/has\(([\w.]+)\)/g, '($1 !== undefined)')
    .replace(/([\w.]+) in (\[[^\]]*\])/g, '$2.includes($1)')
    .replace(/duration\(/g, 'nanos(');
  // CEL's duration() is Go's time.ParseDuration: durationNanos says the same, exactly.
  const fn = new Function('nanos', 'self', `return (${js});`) as (
    n: typeof durationNanos,
    s: unknown,
  ) => boolean;
  return (self) => fn(durationNanos, self);
}

function validate(schema: Schema, value: unknown, path = ''): string[] {
  const errors: string[] = [];
  const err = (m: string) => errors.push(`${path || '<root>'}: ${m}`);
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        return [`${path}: not an object`];
      const obj = value as Record<string, unknown>;
      for (const r of schema.required ?? []) if (obj[r] === undefined) err(`${r} is required`);
      if (schema.properties) {
        for (const [k, v] of Object.entries(obj)) {
          const sub = schema.properties[k];
          if (sub === undefined) err(`unknown field ${k}`);
          else errors.push(...validate(sub, v, `${path}.${k}`));
        }
      }
      break;
    }
    case 'array': {
      if (!Array.isArray(value)) return [`${path}: not an array`];
      if (schema.minItems !== undefined && value.length < schema.minItems)
        err(`fewer than ${schema.minItems} items`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems)
        err(`more than ${schema.maxItems} items`);
      value.forEach((v, i) => {
        if (schema.items) errors.push(...validate(schema.items, v, `${path}[${i}]`));
      });
      break;
    }
    case 'integer':
      if (!Number.isInteger(value)) return [`${path}: not an integer`];
      break;
    case 'string':
      if (typeof value !== 'string') return [`${path}: not a string`];
      if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value))
        err(`does not match pattern`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) err('too long');
      if (schema.minLength !== undefined && value.length < schema.minLength) err('too short');
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return [`${path}: not a boolean`];
      break;
  }
  if (schema.enum && !schema.enum.includes(value)) err(`not one of ${schema.enum.join(', ')}`);
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) err(`below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) err(`above ${schema.maximum}`);
  }
  if (errors.length === 0) {
    for (const v of schema['x-kubernetes-validations'] ?? []) {
      if (!celToJs(v.rule)(value)) err(v.message);
    }
  }
  return errors;
}

// ------------------------------------------------------------------------------------------------

interface Crd {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: object };
      additionalPrinterColumns?: { name: string; type: string; jsonPath: string; priority?: number }[];
      schema: { openAPIV3Schema: Schema };
    }[];
  };
}

const crds = loadCrdManifests() as unknown as Crd[];
const kinds = Object.keys(KINDS) as PrimitiveKind[];
const crdOf = (kind: PrimitiveKind): Crd => {
  const crd = crds.find((c) => c.spec.names.kind === kind);
  if (!crd) throw new Error(`no CRD for ${kind}`);
  return crd;
};
const schemaOf = (kind: PrimitiveKind): Schema => crdOf(kind).spec.versions[0]!.schema.openAPIV3Schema;
const check = (doc: unknown): string[] => {
  const kind = (doc as { kind: PrimitiveKind }).kind;
  return validate(schemaOf(kind), doc);
};
const walk = (schema: Schema, visit: (s: Schema) => void): void => {
  visit(schema);
  for (const s of Object.values(schema.properties ?? {})) walk(s, visit);
  if (schema.items) walk(schema.items, visit);
};

describe('CRD manifests', () => {
  it('loads the four CRDs', () => {
    expect(crds.map((c) => c.metadata.name)).toEqual(kinds.map(crdName));
  });

  it.each(kinds)('%s: names, scope, category, status subresource, printer columns, keep policy', (kind) => {
    const crd = crdOf(kind);
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.kind).toBe('CustomResourceDefinition');
    expect(crd.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    expect(crd.spec.group).toBe(GROUP);
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names.plural).toBe(KINDS[kind].plural);
    expect(crd.spec.names.singular).toBe(KINDS[kind].singular);
    expect(crd.spec.names.shortNames).toEqual([...KINDS[kind].shortNames]);
    expect(crd.spec.names.categories).toContain(CATEGORY);
    expect(crd.spec.versions).toHaveLength(1);
    const v = crd.spec.versions[0]!;
    expect(v.name).toBe(VERSION);
    expect(v.served && v.storage).toBe(true);
    expect(v.subresources?.status).toEqual({});
    const columns = (v.additionalPrinterColumns ?? [])
      .filter((c) => !c.priority)
      .map((c) => c.name.toUpperCase());
    expect(columns.at(-1)).toBe('AGE');
    expect(columns).toContain('PHASE');
  });

  it('has the printer columns users expect', () => {
    const cols = (kind: PrimitiveKind) =>
      (crdOf(kind).spec.versions[0]!.additionalPrinterColumns ?? [])
        .filter((c) => !c.priority)
        .map((c) => c.name.toUpperCase());
    expect(cols('Semaphore')).toEqual(['PERMITS', 'IN-USE', 'WAITING', 'OLDEST-WAIT', 'PHASE', 'AGE']);
    expect(cols('Lease')).toEqual(['HOLDER', 'PHASE', 'WAITING', 'OLDEST-WAIT', 'EXPIRES', 'AGE']);
    expect(cols('Barrier')).toEqual(['EXPECTED', 'ARRIVED', 'PHASE', 'AGE']);
    expect(cols('Gate')).toEqual(['PHASE', 'OPENED', 'AGE']);
  });

  it('every printer column points at a field of the schema', () => {
    for (const kind of kinds) {
      const v = crdOf(kind).spec.versions[0]!;
      for (const c of v.additionalPrinterColumns ?? []) {
        if (c.jsonPath === '.metadata.creationTimestamp') continue;
        let s: Schema | undefined = v.schema.openAPIV3Schema;
        for (const part of c.jsonPath.slice(1).split('.')) s = s?.properties?.[part];
        expect(s, `${kind} column ${c.name} -> ${c.jsonPath}`).toBeDefined();
      }
    }
  });

  it('every duration field uses DURATION_PATTERN', () => {
    const durations: string[] = [];
    for (const kind of kinds) {
      const spec = schemaOf(kind).properties?.spec?.properties ?? {};
      for (const [name, s] of Object.entries(spec)) {
        if (name === 'ttl' || name === 'timeout') {
          expect(s.pattern).toBe(DURATION_PATTERN);
          durations.push(`${kind}.${name}`);
        }
      }
    }
    expect(durations.sort()).toEqual(['Barrier.timeout', 'Gate.timeout', 'Lease.ttl', 'Semaphore.ttl']);
  });

  it('the schema pattern accepts exactly what parseDuration accepts (samples)', () => {
    const schemaPattern = new RegExp(schemaOf('Semaphore').properties!.spec!.properties!.ttl!.pattern!);
    const samples = [
      '0',
      '0s',
      '300ms',
      '30s',
      '5m',
      '1h30m',
      '1.5h',
      '10m',
      '',
      '5',
      '-5m',
      '1d',
      ' 5m',
      '.5s',
    ];
    for (const s of samples) expect(schemaPattern.test(s), s).toBe(isDuration(s));
    fc.assert(
      fc.property(fc.string(), (s) => {
        expect(schemaPattern.test(s)).toBe(isDuration(s));
      }),
    );
  });

  it('every string that CEL compares has a maxLength and every list a maxItems (CEL cost budget)', () => {
    for (const kind of kinds) {
      walk(schemaOf(kind), (s) => {
        if (!s['x-kubernetes-validations']) return;
        for (const p of Object.values(s.properties ?? {})) {
          if (p.type === 'string' && p.enum === undefined) expect(p.maxLength).toBeDefined();
        }
      });
    }
    expect(schemaOf('Gate').properties?.spec?.properties?.conditions?.maxItems).toBeDefined();
  });

  it('every duration field is bounded by MAX_DURATION with the words the annotation parser uses', () => {
    for (const kind of kinds) {
      const spec = schemaOf(kind).properties?.spec?.properties ?? {};
      for (const [name, s] of Object.entries(spec)) {
        if (name !== 'ttl' && name !== 'timeout') continue;
        expect(s['x-kubernetes-validations'], `${kind}.${name}`).toEqual([
          { rule: DURATION_BOUND_RULE, message: DURATION_TOO_LONG_MESSAGE },
        ]);
      }
    }
  });

  it('every schema property has a description (kubectl explain shows text)', () => {
    const missing: string[] = [];
    for (const kind of kinds) {
      const visit = (s: Schema, path: string) => {
        // The API server forbids anything but the type on metadata (kubectl explain shows ObjectMeta's own).
        if (path === '.metadata') return;
        if (!s.description?.trim()) missing.push(`${kind}${path}`);
        for (const [k, sub] of Object.entries(s.properties ?? {})) visit(sub, `${path}.${k}`);
        if (s.items) visit(s.items, `${path}[]`);
      };
      visit(schemaOf(kind), '');
    }
    expect(missing).toEqual([]);
  });

  it('every integer has a minimum and a maximum, every list a maxItems (status fits in etcd)', () => {
    const unbounded: string[] = [];
    for (const kind of kinds) {
      const visit = (s: Schema, path: string) => {
        if (s.type === 'integer' && (s.minimum === undefined || s.maximum === undefined))
          unbounded.push(`${kind}${path}`);
        if (s.type === 'array' && s.maxItems === undefined) unbounded.push(`${kind}${path}`);
        for (const [k, sub] of Object.entries(s.properties ?? {})) visit(sub, `${path}.${k}`);
        if (s.items) visit(s.items, `${path}[]`);
      };
      visit(schemaOf(kind), '');
    }
    expect(unbounded).toEqual([]);
  });

  it('the bounds are those of api/limits.ts, the same the annotation parser and the arbitration use', () => {
    const at = (kind: PrimitiveKind, path: string): Schema => {
      let s: Schema | undefined = schemaOf(kind);
      for (const part of path.split('.')) s = part === '[]' ? s?.items : s?.properties?.[part];
      if (!s) throw new Error(`${kind} ${path}`);
      return s;
    };
    expect(at('Semaphore', 'spec.permits')).toMatchObject({ minimum: 1, maximum: MAX_PERMITS });
    expect(at('Semaphore', 'status.holders')).toMatchObject({ maxItems: MAX_HOLDERS });
    expect(at('Semaphore', 'status.holders.[].permits')).toMatchObject({ maximum: MAX_PERMITS });
    expect(at('Barrier', 'spec.expected')).toMatchObject({ minimum: 1, maximum: MAX_EXPECTED });
    expect(at('Barrier', 'spec.quorum')).toMatchObject({ minimum: 1, maximum: MAX_EXPECTED });
    expect(at('Barrier', 'status.arrivals')).toMatchObject({ maxItems: MAX_ARRIVALS });
    expect(at('Lease', 'spec.priority')).toMatchObject({ minimum: PRIORITY_MIN, maximum: PRIORITY_MAX });
    expect(at('Gate', 'spec.conditions')).toMatchObject({ maxItems: MAX_GATE_CONDITIONS });
    expect(at('Gate', 'spec.conditions.[].value')).toMatchObject({ minimum: 0, maximum: MAX_PERMITS });
    expect(at('Gate', 'status.conditionStatuses')).toMatchObject({ maxItems: MAX_GATE_CONDITIONS });
    expect(at('Gate', 'status.conditionStatuses.[].message')).toMatchObject({
      maxLength: MAX_STATUS_MESSAGE,
    });
    for (const kind of ['Semaphore', 'Lease'] as const) {
      expect(at(kind, 'status.queue')).toMatchObject({ maxItems: 2 * QUEUE_STATUS_LIMIT });
      expect(at(kind, 'status.queue.[].priority')).toMatchObject({
        minimum: PRIORITY_MIN,
        maximum: PRIORITY_MAX,
      });
      expect(at(kind, 'status.nextToken')).toMatchObject({ minimum: 0, maximum: MAX_TOKEN });
    }
  });

  it("the Gate's CEL state rules list exactly GATE_CONDITION_STATES", () => {
    const rules =
      schemaOf('Gate').properties!.spec!.properties!.conditions!.items!['x-kubernetes-validations']!;
    for (const [type, states] of Object.entries(GATE_CONDITION_STATES)) {
      const rule = rules.find((r) => r.rule.includes(`self.type != '${type}'`));
      expect(rule, type).toBeDefined();
      for (const s of states) {
        expect(rule!.rule).toContain(`'${s}'`);
        expect(rule!.message).toContain(s);
      }
    }
  });
});

describe('custom resources against the schemas', () => {
  // The four examples of the seed chart's README ("Synchronization Primitives"); they must stay valid.
  const readmeExamples = [
    `
apiVersion: sync.konductor.io/v1
kind: Semaphore
metadata:
  name: my-semaphore
spec:
  permits: 3
  ttl: "5m"
`,
    `
apiVersion: sync.konductor.io/v1
kind: Barrier
metadata:
  name: my-barrier
spec:
  expected: 5
  timeout: "10m"
`,
    `
apiVersion: sync.konductor.io/v1
kind: Lease
metadata:
  name: my-lease
spec:
  ttl: "5m"
  priority: 1
`,
    `
apiVersion: sync.konductor.io/v1
kind: Gate
metadata:
  name: my-gate
spec:
  conditions:
  - type: Job
    name: preprocessing-job
    state: Complete
  - type: Semaphore
    name: resource-semaphore
    state: Available
    value: 2
  timeout: "15m"
`,
  ];

  it.each(readmeExamples)('accepts the README example %#', (text) => {
    const doc = parse(text) as { apiVersion: string };
    expect(doc.apiVersion).toBe(API_VERSION);
    expect(check(doc)).toEqual([]);
  });

  const sem = (spec: object) => ({ apiVersion: API_VERSION, kind: 'Semaphore', metadata: {}, spec });
  const bar = (spec: object) => ({ apiVersion: API_VERSION, kind: 'Barrier', metadata: {}, spec });
  const gate = (conditions: object[]) => ({
    apiVersion: API_VERSION,
    kind: 'Gate',
    metadata: {},
    spec: { conditions },
  });

  it.each([
    ['permits 0', sem({ permits: 0 }), 'below 1'],
    ['missing permits', sem({}), 'permits is required'],
    ['bad ttl', sem({ permits: 1, ttl: '5 minutes' }), 'pattern'],
    ['negative ttl', sem({ permits: 1, ttl: '-5m' }), 'pattern'],
    ['ttl above 8760h', sem({ permits: 1, ttl: '8760h1ns' }), 'must be at most 8760h (one year)'],
    ['permits above MAX_PERMITS', sem({ permits: MAX_PERMITS + 1 }), `above ${MAX_PERMITS}`],
    ['expected above MAX_EXPECTED', bar({ expected: MAX_EXPECTED + 1 }), `above ${MAX_EXPECTED}`],
    ['barrier timeout 9000h', bar({ expected: 1, timeout: '9000h' }), 'must be at most 8760h'],
    ['expected 0', bar({ expected: 0 }), 'below 1'],
    ['quorum 0', bar({ expected: 2, quorum: 0 }), 'below 1'],
    ['quorum > expected', bar({ expected: 2, quorum: 3 }), 'must not exceed spec.expected'],
    ['no gate conditions', gate([]), 'fewer than 1'],
    ['unknown gate type', gate([{ type: 'Pod', name: 'x', state: 'Open' }]), 'not one of'],
    ['Job state Open', gate([{ type: 'Job', name: 'x', state: 'Open' }]), 'Complete, Failed'],
    ['Semaphore state Full', gate([{ type: 'Semaphore', name: 'x', state: 'Full' }]), 'Available'],
    ['Barrier state Waiting', gate([{ type: 'Barrier', name: 'x', state: 'Waiting' }]), 'must be: Open'],
    ['Lease state Open', gate([{ type: 'Lease', name: 'x', state: 'Open' }]), 'Available, Held'],
    ['Gate state Closed', gate([{ type: 'Gate', name: 'x', state: 'Closed' }]), 'must be: Open'],
    ['negative value', gate([{ type: 'Semaphore', name: 'x', state: 'Available', value: -1 }]), 'below 0'],
  ])('rejects %s', (_name, doc, message) => {
    const errors = check(doc);
    expect(errors.join('\n')).toContain(message);
  });

  it.each([
    ['quorum == expected', bar({ expected: 3, quorum: 3 })],
    ['ttl of exactly 8760h', sem({ permits: MAX_PERMITS, ttl: '8759h60m' })],
    ['Lease Held', gate([{ type: 'Lease', name: 'l', namespace: 'other', state: 'Held' }])],
    ['Job Failed', gate([{ type: 'Job', name: 'j', state: 'Failed' }])],
    ['Gate Open', gate([{ type: 'Gate', name: 'g', state: 'Open' }])],
  ])('accepts %s', (_name, doc) => {
    expect(check(doc)).toEqual([]);
  });

  it('accepts a full status of every kind', () => {
    const now = '2025-01-01T00:00:00Z';
    const conditions = [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Reconciled',
        message: 'ok',
        lastTransitionTime: now,
        observedGeneration: 1,
      },
    ];
    const docs = [
      {
        ...sem({ permits: 2, ttl: '5m' }),
        status: {
          inUse: 2,
          available: 0,
          phase: 'Full',
          holders: [{ pod: 'a', uid: 'u1', permits: 2, token: 7, grantedAt: now, expiresAt: now }],
          waiting: 1,
          queue: [{ pod: 'b', uid: 'u2', permits: 1, priority: 0 }],
          nextToken: 8,
          conditions,
          observedGeneration: 1,
        },
      },
      {
        apiVersion: API_VERSION,
        kind: 'Lease',
        metadata: {},
        spec: { ttl: '1m' },
        status: {
          holder: { pod: 'a', uid: 'u1', token: 3, acquiredAt: now, expiresAt: now },
          token: 3,
          acquiredAt: now,
          expiresAt: now,
          phase: 'Held',
          waiting: 0,
          queue: [],
          nextToken: 4,
          conditions,
          observedGeneration: 1,
        },
      },
      {
        ...bar({ expected: 2 }),
        status: {
          arrived: 2,
          arrivals: [
            { pod: 'a', uid: 'u1', arrivedAt: now },
            { pod: 'b', uid: 'u2', arrivedAt: now },
          ],
          phase: 'Open',
          firstArrivalAt: now,
          openedAt: now,
          conditions,
          observedGeneration: 1,
        },
      },
      {
        ...gate([{ type: 'Job', name: 'j', state: 'Complete' }]),
        status: {
          phase: 'Failed',
          conditionStatuses: [{ type: 'Job', name: 'j', met: false, message: 'job j has not completed' }],
          failedAt: now,
          conditions,
          observedGeneration: 1,
        },
      },
    ];
    for (const doc of docs) expect(check(doc)).toEqual([]);
  });
});
