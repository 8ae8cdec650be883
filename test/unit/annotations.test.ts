import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  hasKonductorAnnotations,
  isDns1123Subdomain,
  type KonductorRequest,
  MAX_PERMITS,
  type ParseResult,
  PRIORITY_MAX,
  PRIORITY_MIN,
  parseAnnotations,
  primitivesOf,
} from '../../api/annotations.ts';
import { ANNOTATIONS, WEBHOOK_ANNOTATIONS } from '../../api/constants.ts';

function request(result: ParseResult): KonductorRequest | null {
  if (!result.ok) throw new Error(`expected ok, got ${JSON.stringify(result.problems)}`);
  return result.request;
}

function problems(result: ParseResult): { annotation: string; message: string }[] {
  if (result.ok) throw new Error(`expected problems, got ${JSON.stringify(result.request)}`);
  return result.problems;
}

describe('parseAnnotations', () => {
  it('returns null when there are no konductor.io/ annotations', () => {
    expect(request(parseAnnotations(undefined))).toBeNull();
    expect(request(parseAnnotations({}))).toBeNull();
    expect(
      request(parseAnnotations({ 'example.com/semaphore': 'x', 'foo.konductor.io/bar': '1' })),
    ).toBeNull();
  });

  it('ignores the keys the webhook writes itself', () => {
    expect(request(parseAnnotations({ [WEBHOOK_ANNOTATIONS.injected]: '0.1.0' }))).toBeNull();
    expect(
      request(parseAnnotations({ [WEBHOOK_ANNOTATIONS.injected]: '0.1.0', [ANNOTATIONS.lease]: 'l' })),
    ).toEqual({
      lease: { name: 'l' },
      priority: 0,
    });
  });

  it('parses a semaphore with default permits and priority', () => {
    expect(request(parseAnnotations({ 'konductor.io/semaphore': 'batch-slots' }))).toEqual({
      semaphore: { name: 'batch-slots', permits: 1 },
      priority: 0,
    });
  });

  it('parses every annotation together', () => {
    expect(
      request(
        parseAnnotations({
          'konductor.io/semaphore': 'gpu',
          'konductor.io/permits': '2',
          'konductor.io/lease': 'db-migration',
          'konductor.io/barrier': 'start.line',
          'konductor.io/gate': 'ready',
          'konductor.io/priority': '-5',
          'konductor.io/wait-timeout': '1h30m',
          'app.kubernetes.io/name': 'ignored',
        }),
      ),
    ).toEqual({
      semaphore: { name: 'gpu', permits: 2 },
      lease: { name: 'db-migration' },
      barrier: { name: 'start.line' },
      gate: { name: 'ready' },
      priority: -5,
      waitTimeoutMs: 5_400_000,
    });
  });

  it('trims surrounding whitespace of values', () => {
    expect(
      request(parseAnnotations({ 'konductor.io/semaphore': ' s ', 'konductor.io/permits': ' 3\n' })),
    ).toEqual({ semaphore: { name: 's', permits: 3 }, priority: 0 });
  });

  it('reports an unknown konductor.io/ key, listing the known keys', () => {
    const [p, ...rest] = problems(
      parseAnnotations({ 'konductor.io/semaphore': 's', 'konductor.io/semafore': 's' }),
    );
    expect(rest).toEqual([]);
    expect(p?.annotation).toBe('konductor.io/semafore');
    for (const key of Object.values(ANNOTATIONS)) expect(p?.message).toContain(key);
  });

  it.each(['Batch', 'batch_slots', '-a', 'a-', '', 'a..b', 'a/b', 'x'.repeat(254)])(
    'rejects the name %j',
    (name) => {
      for (const key of [ANNOTATIONS.semaphore, ANNOTATIONS.lease, ANNOTATIONS.barrier, ANNOTATIONS.gate]) {
        const ps = problems(parseAnnotations({ [key]: name }));
        expect(ps).toHaveLength(1);
        expect(ps[0]?.annotation).toBe(key);
        expect(ps[0]?.message).toContain(key);
        expect(ps[0]?.message).toContain('DNS-1123');
      }
    },
  );

  it('accepts DNS-1123 subdomain names up to 253 characters', () => {
    expect(isDns1123Subdomain('a')).toBe(true);
    expect(isDns1123Subdomain('a.b-c.0')).toBe(true);
    expect(isDns1123Subdomain(`${'a'.repeat(63)}.${'b'.repeat(189)}`)).toBe(true);
    expect(isDns1123Subdomain('a'.repeat(254))).toBe(false);
  });

  it.each(['two', '0', '-1', '1.5', '', '1e3', '0x10'])('rejects permits %j', (value) => {
    const ps = problems(parseAnnotations({ 'konductor.io/semaphore': 's', 'konductor.io/permits': value }));
    expect(ps).toHaveLength(1);
    expect(ps[0]?.annotation).toBe('konductor.io/permits');
    expect(ps[0]?.message).toBe(
      `annotation konductor.io/permits: ${JSON.stringify(value)} is not a positive integer (expected e.g. konductor.io/permits: "2")`,
    );
  });

  it('accepts permits up to MAX_PERMITS, the largest spec.permits', () => {
    expect(
      request(
        parseAnnotations({ 'konductor.io/semaphore': 's', 'konductor.io/permits': String(MAX_PERMITS) }),
      )?.semaphore?.permits,
    ).toBe(MAX_PERMITS);
  });

  it.each([String(MAX_PERMITS + 1), '2147483648', '99999999999999999999'])(
    'rejects permits %j above MAX_PERMITS, naming the bound',
    (value) => {
      const ps = problems(parseAnnotations({ 'konductor.io/semaphore': 's', 'konductor.io/permits': value }));
      expect(ps).toHaveLength(1);
      expect(ps[0]?.message).toBe(
        `annotation konductor.io/permits: ${JSON.stringify(value)} is more than ${MAX_PERMITS}, the most permits a ` +
          `Semaphore can have (expected an integer from 1 to ${MAX_PERMITS}, e.g. konductor.io/permits: "2")`,
      );
    },
  );

  it('reports permits without a semaphore', () => {
    const ps = problems(parseAnnotations({ 'konductor.io/lease': 'l', 'konductor.io/permits': '2' }));
    expect(ps).toHaveLength(1);
    expect(ps[0]?.message).toContain('konductor.io/semaphore');
  });

  it.each([
    ['10', 10],
    ['-3', -3],
    ['+4', 4],
    ['-0', 0],
    [String(PRIORITY_MIN), PRIORITY_MIN],
    [String(PRIORITY_MAX), PRIORITY_MAX],
  ])('accepts priority %j', (value, expected) => {
    const req = request(parseAnnotations({ 'konductor.io/gate': 'g', 'konductor.io/priority': value }));
    expect(Object.is(req?.priority, expected)).toBe(true);
  });

  it.each(['high', '1.5', '', String(PRIORITY_MAX + 1), String(PRIORITY_MIN - 1), '2147483648', '1e2'])(
    'rejects priority %j',
    (value) => {
      const ps = problems(parseAnnotations({ 'konductor.io/gate': 'g', 'konductor.io/priority': value }));
      expect(ps).toHaveLength(1);
      expect(ps[0]?.annotation).toBe('konductor.io/priority');
      expect(ps[0]?.message).toContain('konductor.io/priority: "10"');
      expect(ps[0]?.message).toContain(`between ${PRIORITY_MIN} and ${PRIORITY_MAX}`);
    },
  );

  it.each([
    ['30s', 30_000],
    ['300ms', 300],
    ['1.5h', 5_400_000],
    ['600h', 600 * 3_600_000],
    ['8760h', 8760 * 3_600_000],
  ])('accepts wait-timeout %j', (value, ms) => {
    expect(
      request(parseAnnotations({ 'konductor.io/barrier': 'b', 'konductor.io/wait-timeout': value }))
        ?.waitTimeoutMs,
    ).toBe(ms);
  });

  it.each(['10', 'soon', '-5m', '0', '0s', '', '5 m'])('rejects wait-timeout %j', (value) => {
    const ps = problems(
      parseAnnotations({ 'konductor.io/barrier': 'b', 'konductor.io/wait-timeout': value }),
    );
    expect(ps).toHaveLength(1);
    expect(ps[0]?.annotation).toBe('konductor.io/wait-timeout');
    expect(ps[0]?.message).toContain('Go duration');
  });

  it.each(['8760h1ns', '8759h60m0.000000001s', '8761h', '2500000000h', '9999999999999999h'])(
    'rejects wait-timeout %j beyond 8760h, naming the bound',
    (value) => {
      const ps = problems(
        parseAnnotations({ 'konductor.io/barrier': 'b', 'konductor.io/wait-timeout': value }),
      );
      expect(ps).toHaveLength(1);
      expect(ps[0]?.message).toBe(
        `annotation konductor.io/wait-timeout: ${JSON.stringify(value)} is too long: it must be at most 8760h ` +
          '(one year) (expected e.g. konductor.io/wait-timeout: "10m", "30s" or "1h30m")',
      );
    },
  );

  it('reports priority or wait-timeout without any primitive', () => {
    const ps = problems(
      parseAnnotations({ 'konductor.io/priority': '1', 'konductor.io/wait-timeout': '1m' }),
    );
    expect(ps.map((p) => p.annotation).sort()).toEqual([
      'konductor.io/priority',
      'konductor.io/wait-timeout',
    ]);
    for (const p of ps) expect(p.message).toContain('konductor.io/semaphore');
  });

  it('reports every problem, not just the first', () => {
    const ps = problems(
      parseAnnotations({
        'konductor.io/semaphore': 'Bad',
        'konductor.io/permits': 'x',
        'konductor.io/priority': 'y',
        'konductor.io/wait-timeout': 'z',
        'konductor.io/nope': '',
      }),
    );
    expect(new Set(ps.map((p) => p.annotation))).toEqual(
      new Set([
        'konductor.io/semaphore',
        'konductor.io/permits',
        'konductor.io/priority',
        'konductor.io/wait-timeout',
        'konductor.io/nope',
      ]),
    );
  });

  it('never throws and always returns a well-formed result on arbitrary string maps', () => {
    const key = fc.oneof(
      fc.constantFrom(...Object.values(ANNOTATIONS), WEBHOOK_ANNOTATIONS.injected),
      fc.string().map((s) => `konductor.io/${s}`),
      fc.string(),
    );
    const value = fc.oneof(
      fc.string(),
      fc.integer().map(String),
      fc.constantFrom('s', '1', '0', '-1', '1m', '1.5h', 'a.b', ' x '),
    );
    fc.assert(
      fc.property(fc.dictionary(key, value), (annotations) => {
        const result = parseAnnotations(annotations);
        if (result.ok) {
          if (result.request === null) {
            expect(hasKonductorAnnotations(annotations)).toBe(false);
          } else {
            expect(Number.isInteger(result.request.priority)).toBe(true);
            for (const p of primitivesOf(result.request)) expect(isDns1123Subdomain(p.name)).toBe(true);
          }
        } else {
          expect(result.problems.length).toBeGreaterThan(0);
          for (const p of result.problems) {
            expect(p.annotation.startsWith('konductor.io/')).toBe(true);
            expect(p.message).toContain(p.annotation);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('survives a prototype-polluting key', () => {
    const annotations = JSON.parse('{"__proto__": "x", "konductor.io/semaphore": "s"}') as Record<
      string,
      string
    >;
    expect(request(parseAnnotations(annotations))?.semaphore).toEqual({ name: 's', permits: 1 });
  });
});

describe('parseAnnotations: wait mode and start timeout', () => {
  const sem = { [ANNOTATIONS.semaphore]: 's' };

  it('reads both wait modes and a start timeout', () => {
    expect(request(parseAnnotations({ ...sem, [ANNOTATIONS.waitMode]: 'scheduling-gate' }))?.waitMode).toBe(
      'scheduling-gate',
    );
    expect(request(parseAnnotations({ ...sem, [ANNOTATIONS.waitMode]: ' init-container ' }))?.waitMode).toBe(
      'init-container',
    );
    const r = request(
      parseAnnotations({
        ...sem,
        [ANNOTATIONS.waitMode]: 'scheduling-gate',
        [ANNOTATIONS.startTimeout]: '90s',
      }),
    );
    expect(r?.startTimeoutMs).toBe(90_000);
    // Absent: the manager's default applies (the request says nothing).
    expect(request(parseAnnotations(sem))).not.toHaveProperty('waitMode');
    expect(request(parseAnnotations(sem))).not.toHaveProperty('startTimeoutMs');
    // A start timeout without a mode: the default mode may be scheduling-gate.
    expect(request(parseAnnotations({ ...sem, [ANNOTATIONS.startTimeout]: '1m' }))?.startTimeoutMs).toBe(
      60_000,
    );
  });

  it('denies an unknown wait mode naming the accepted ones', () => {
    const [p] = problems(parseAnnotations({ ...sem, [ANNOTATIONS.waitMode]: 'gate' }));
    expect(p?.annotation).toBe(ANNOTATIONS.waitMode);
    expect(p?.message).toBe(
      'annotation konductor.io/wait-mode: "gate" is not a wait mode (expected konductor.io/wait-mode: ' +
        '"init-container" or konductor.io/wait-mode: "scheduling-gate")',
    );
  });

  it('denies a bad or too long start timeout', () => {
    expect(problems(parseAnnotations({ ...sem, [ANNOTATIONS.startTimeout]: 'soon' }))[0]?.message).toMatch(
      /^annotation konductor.io\/start-timeout: "soon" is not a positive duration \(expected a Go duration/,
    );
    expect(problems(parseAnnotations({ ...sem, [ANNOTATIONS.startTimeout]: '9000h' }))[0]?.message).toMatch(
      /^annotation konductor.io\/start-timeout: "9000h" is too long: it must be at most 8760h/,
    );
  });

  it('denies a start timeout on a pod in init-container mode (it could never apply)', () => {
    const [p] = problems(
      parseAnnotations({
        ...sem,
        [ANNOTATIONS.waitMode]: 'init-container',
        [ANNOTATIONS.startTimeout]: '1m',
      }),
    );
    expect(p?.annotation).toBe(ANNOTATIONS.startTimeout);
    expect(p?.message).toMatch(/only applies to konductor.io\/wait-mode: "scheduling-gate"/);
  });

  it('denies a wait timeout on a pod in scheduling-gate mode (konductor-wait starts only once granted)', () => {
    const [p] = problems(
      parseAnnotations({
        ...sem,
        [ANNOTATIONS.waitMode]: 'scheduling-gate',
        [ANNOTATIONS.waitTimeout]: '1m',
      }),
    );
    expect(p?.annotation).toBe(ANNOTATIONS.waitTimeout);
    expect(p?.message).toMatch(/does not apply to konductor.io\/wait-mode: "scheduling-gate"/);
  });

  it('denies a wait mode or start timeout without a primitive', () => {
    const found = problems(
      parseAnnotations({ [ANNOTATIONS.waitMode]: 'scheduling-gate', [ANNOTATIONS.startTimeout]: '1m' }),
    );
    expect(found.map((p) => p.annotation).sort()).toEqual([ANNOTATIONS.startTimeout, ANNOTATIONS.waitMode]);
    expect(found[0]?.message).toMatch(/needs a primitive to wait for/);
  });
});

describe('hasKonductorAnnotations', () => {
  it('is true for any user-facing konductor.io/ key, known or not', () => {
    expect(hasKonductorAnnotations({ 'konductor.io/semaphore': 's' })).toBe(true);
    expect(hasKonductorAnnotations({ 'konductor.io/typo': 's' })).toBe(true);
  });
  it('is false without them', () => {
    expect(hasKonductorAnnotations(undefined)).toBe(false);
    expect(hasKonductorAnnotations({ a: 'b' })).toBe(false);
    expect(hasKonductorAnnotations({ [WEBHOOK_ANNOTATIONS.injected]: '1' })).toBe(false);
  });
});

describe('primitivesOf', () => {
  it('lists primitives in acquisition order: gate, barrier, lease, semaphore', () => {
    expect(
      primitivesOf({
        semaphore: { name: 's', permits: 3 },
        lease: { name: 'l' },
        barrier: { name: 'b' },
        gate: { name: 'g' },
        priority: 0,
      }),
    ).toEqual([
      { kind: 'Gate', name: 'g', permits: 0 },
      { kind: 'Barrier', name: 'b', permits: 0 },
      { kind: 'Lease', name: 'l', permits: 1 },
      { kind: 'Semaphore', name: 's', permits: 3 },
    ]);
  });
  it('keeps that order for every subset', () => {
    const order = ['Gate', 'Barrier', 'Lease', 'Semaphore'];
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), (s, l, b, g) => {
        const req: KonductorRequest = { priority: 0 };
        if (s) req.semaphore = { name: 's', permits: 1 };
        if (l) req.lease = { name: 'l' };
        if (b) req.barrier = { name: 'b' };
        if (g) req.gate = { name: 'g' };
        const kinds = primitivesOf(req).map((p) => p.kind);
        expect(kinds).toEqual(order.filter((k) => kinds.includes(k as never)));
        expect(kinds.length).toBe([s, l, b, g].filter(Boolean).length);
      }),
    );
  });
});
