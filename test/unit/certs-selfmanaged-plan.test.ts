/**
 * The pure rotation planner (certs/rotationPlan.ts), against a model of certificates (ids, validity,
 * signer): from any state one round of actions reaches a state with nothing to do, and along a timeline of
 * syncs (with timer lag) the serving certificate never lapses, is only moved to a new CA after the switch
 * delay, and no CA leaves the trust bundle while a recently retired serving certificate still needs it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalIp,
  planRotation,
  type RotationAction,
  type RotationPolicy,
  type RotationState,
  renewalTime,
  rotationPolicy,
} from '../../certs/rotationPlan.ts';
import { defaultPollInterval } from '../../certs/selfManaged.ts';

interface ModelCert {
  id: number;
  notBefore: number;
  notAfter: number;
  createdAt: number;
  signer?: number;
  dnsNames?: string[];
  ipAddresses?: string[];
}

interface Model {
  ca?: ModelCert;
  previous?: ModelCert;
  serving?: ModelCert;
  caRotatedAt?: number;
}

const HOUR = 3_600_000;
const DNS = ['konductor.konductor-system.svc', 'konductor.konductor-system.svc.cluster.local'];
const IPS = ['127.0.0.1'];

function inspect(m: Model): RotationState {
  const s: RotationState = {};
  if (m.ca) s.ca = { notBefore: m.ca.notBefore, notAfter: m.ca.notAfter };
  if (m.previous) s.previousCa = { notBefore: m.previous.notBefore, notAfter: m.previous.notAfter };
  if (m.caRotatedAt !== undefined) s.caRotatedAt = m.caRotatedAt;
  if (m.serving) {
    const signer = m.serving.signer;
    s.serving = {
      notBefore: m.serving.notBefore,
      notAfter: m.serving.notAfter,
      signedBy:
        m.ca && signer === m.ca.id ? 'current' : m.previous && signer === m.previous.id ? 'previous' : 'none',
      dnsNames: m.serving.dnsNames ?? [],
      ipAddresses: m.serving.ipAddresses ?? [],
    };
  }
  return s;
}

/** applyActions of certs/selfManaged.ts, on the model; `skewMs` back-dates notBefore like generate.ts. */
function apply(
  m: Model,
  actions: RotationAction[],
  policy: RotationPolicy,
  now: number,
  nextId: () => number,
  skewMs: number,
): Model {
  const out: Model = { ...m };
  for (const a of actions) {
    if (a.type === 'create-ca') {
      if (a.keepPrevious && out.ca) out.previous = out.ca;
      else delete out.previous;
      out.ca = {
        id: nextId(),
        notBefore: now - skewMs,
        notAfter: now + policy.caValidityMs,
        createdAt: now,
      };
      out.caRotatedAt = now;
    } else if (a.type === 'drop-previous-ca') {
      delete out.previous;
    } else {
      const signer = a.signer === 'current' ? out.ca : out.previous;
      if (!signer) throw new Error(`no ${a.signer} CA to sign with`);
      out.serving = {
        id: nextId(),
        notBefore: now - skewMs,
        notAfter: now + policy.servingValidityMs,
        createdAt: now,
        signer: signer.id,
        dnsNames: [...policy.dnsNames],
        ipAddresses: [...policy.ipAddresses],
      };
    }
  }
  return out;
}

const arbValidityMs = fc.oneof(
  fc.integer({ min: 10_000, max: 120_000 }),
  fc.integer({ min: HOUR, max: 8760 * HOUR }),
);

describe('planRotation', () => {
  it('creates a CA and a serving certificate signed by it from nothing', () => {
    const policy = rotationPolicy(8760 * HOUR, DNS, IPS);
    const plan = planRotation({}, policy, 1_000_000);
    expect(plan.actions.map((a) => a.type)).toEqual(['create-ca', 'issue-serving']);
    expect(plan.actions[1]).toMatchObject({ signer: 'current' });
  });

  it('renews a 1-year serving certificate at 2/3 of its validity, reusing the CA', () => {
    const V = 8760 * HOUR;
    const policy = rotationPolicy(V, DNS, IPS);
    const t0 = 0;
    const state: RotationState = {
      ca: { notBefore: t0, notAfter: t0 + 2 * V },
      caRotatedAt: t0,
      serving: { notBefore: t0, notAfter: t0 + V, signedBy: 'current', dnsNames: DNS, ipAddresses: IPS },
    };
    expect(planRotation(state, policy, t0 + (2 / 3) * V - 1).actions).toEqual([]);
    expect(planRotation(state, policy, t0 + (2 / 3) * V - 1).nextCheckAt).toBe(t0 + (2 / 3) * V);
    expect(planRotation(state, policy, t0 + (2 / 3) * V).actions).toEqual([
      { type: 'issue-serving', signer: 'current', reason: 'serving certificate due for renewal' },
    ]);
  });

  it('rotates the CA keeping the old one, and moves the serving certificate after the switch delay', () => {
    const V = 30_000;
    const policy = rotationPolicy(V, DNS, IPS);
    const caRenew = renewalTime({ notBefore: 0, notAfter: 2 * V }, 2 * V);
    const state: RotationState = {
      ca: { notBefore: 0, notAfter: 2 * V },
      caRotatedAt: 0,
      serving: {
        notBefore: caRenew - 1000,
        notAfter: caRenew - 1000 + V,
        signedBy: 'current',
        dnsNames: DNS,
        ipAddresses: IPS,
      },
    };
    expect(planRotation(state, policy, caRenew).actions).toEqual([
      { type: 'create-ca', keepPrevious: true, reason: 'CA due for renewal' },
    ]);
    const after: RotationState = {
      ca: { notBefore: caRenew, notAfter: caRenew + 2 * V },
      previousCa: state.ca,
      caRotatedAt: caRenew,
      serving: { ...(state.serving as NonNullable<RotationState['serving']>), signedBy: 'previous' },
    };
    const plan = planRotation(after, policy, caRenew + 1);
    expect(plan.actions).toEqual([]);
    expect(plan.nextCheckAt).toBe(caRenew + V / 3);
    expect(planRotation(after, policy, caRenew + V / 3).actions).toEqual([
      {
        type: 'issue-serving',
        signer: 'current',
        reason: 'moving the serving certificate to the current CA',
      },
    ]);
  });

  it('re-issues the serving certificate when the wanted SANs change (IPv6 compared canonically)', () => {
    const policy = rotationPolicy(HOUR, ['a.b.svc'], ['::1']);
    const base: RotationState = {
      ca: { notBefore: 0, notAfter: 2 * HOUR },
      caRotatedAt: 0,
      serving: {
        notBefore: 0,
        notAfter: HOUR,
        signedBy: 'current',
        dnsNames: ['A.B.svc'],
        ipAddresses: ['0:0:0:0:0:0:0:1'],
      },
    };
    expect(planRotation(base, policy, 1000).actions).toEqual([]);
    const wider = rotationPolicy(HOUR, ['a.b.svc', 'c.d.svc'], ['::1']);
    expect(planRotation(base, wider, 1000).actions.map((a) => a.type)).toEqual(['issue-serving']);
    expect(canonicalIp('0:0:0:0:0:0:0:1')).toBe('::1');
  });

  it('from any state, one round of actions reaches a state with nothing to do and a usable serving certificate', () => {
    const window = fc.record({
      start: fc.double({ min: -6, max: 2, noNaN: true }),
      length: fc.double({ min: 0.001, max: 6, noNaN: true }),
    });
    fc.assert(
      fc.property(
        arbValidityMs,
        fc.integer({ min: 0, max: 300_000 }),
        fc.option(window, { nil: undefined }),
        fc.option(window, { nil: undefined }),
        fc.option(window, { nil: undefined }),
        fc.constantFrom('ca', 'previous', 'foreign'),
        fc.boolean(),
        fc.option(fc.double({ min: -3, max: 1, noNaN: true }), { nil: undefined }),
        (V, skew, caW, prevW, servW, signedBy, sansOk, rotatedFrac) => {
          const now = 10 * 8760 * HOUR;
          const policy = rotationPolicy(V, DNS, IPS);
          const at = (w: { start: number; length: number }) => ({
            notBefore: Math.round(now + w.start * V),
            notAfter: Math.round(now + (w.start + w.length) * V),
          });
          let id = 0;
          const nextId = () => ++id;
          const m: Model = {};
          if (caW) m.ca = { id: nextId(), ...at(caW), createdAt: at(caW).notBefore };
          if (prevW) m.previous = { id: nextId(), ...at(prevW), createdAt: at(prevW).notBefore };
          if (rotatedFrac !== undefined) m.caRotatedAt = Math.round(now + rotatedFrac * V);
          if (servW) {
            const signer = signedBy === 'ca' ? m.ca?.id : signedBy === 'previous' ? m.previous?.id : 999;
            m.serving = {
              id: nextId(),
              ...at(servW),
              createdAt: at(servW).notBefore,
              ...(signer !== undefined ? { signer } : {}),
              dnsNames: sansOk ? DNS : ['other.svc'],
              ipAddresses: IPS,
            };
          }
          const plan = planRotation(inspect(m), policy, now);
          const after = apply(m, plan.actions, policy, now, nextId, skew);
          const again = planRotation(inspect(after), policy, now);
          expect(again.actions).toEqual([]);
          const s = inspect(after);
          expect(s.serving?.signedBy === 'current' || s.serving?.signedBy === 'previous').toBe(true);
          expect(s.serving?.notAfter).toBeGreaterThan(now);
          expect(s.ca?.notAfter).toBeGreaterThan(now);
          if (s.previousCa) expect(s.previousCa.notAfter).toBeGreaterThan(now);
          expect(again.nextCheckAt).toBeGreaterThan(now);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('along a timeline of syncs, no admission can fail because of a certificate', () => {
    fc.assert(
      fc.property(
        arbValidityMs,
        fc.integer({ min: 0, max: 300_000 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 50, maxLength: 50 }),
        (V, skew, lagFractions) => {
          const policy = rotationPolicy(V, DNS, IPS);
          const poll = defaultPollInterval(V);
          const maxLag = poll / 4; // a late timer or a slow API call, well under one interval
          let id = 0;
          const nextId = () => ++id;
          let now = 1_700_000_000_000;
          const end = now + 5 * policy.caValidityMs;
          let m: Model = {};
          let initial = true;
          let caRotations = 0;
          // serving id -> [first time current, last time current]
          const inUse = new Map<number, { signer: number; until: number }>();
          for (let step = 0; now < end && step < 5000; step++) {
            const before = m;
            // The serving certificate of the previous sync was in use until now: it must still be valid,
            // and so must its CA, which must still be in the bundle.
            if (before.serving) {
              expect(now).toBeLessThan(before.serving.notAfter);
              const signer = before.serving.signer;
              const bundle = [before.ca, before.previous].filter((c) => c && c.id === signer);
              expect(bundle.length).toBe(1);
              expect(now).toBeLessThan((bundle[0] as ModelCert).notAfter);
            }
            const plan = planRotation(inspect(m), policy, now);
            m = apply(m, plan.actions, policy, now, nextId, skew);
            expect(planRotation(inspect(m), policy, now).actions).toEqual([]);
            for (const a of plan.actions) {
              if (a.type === 'create-ca' && !initial) {
                expect(a.keepPrevious).toBe(true);
                caRotations++;
              }
              if (a.type === 'issue-serving' && !initial) {
                // Signed by a CA that has been in the bundle for the switch delay.
                const signer = a.signer === 'current' ? m.ca : m.previous;
                expect(now - (signer as ModelCert).createdAt).toBeGreaterThanOrEqual(policy.switchDelayMs);
              }
              if (a.type === 'drop-previous-ca') {
                // No serving certificate it signed was in use within the last poll interval (lagging replicas).
                const dropped = (before.previous as ModelCert).id;
                for (const use of inUse.values()) {
                  if (use.signer === dropped) expect(use.until).toBeLessThanOrEqual(now - poll);
                }
              }
            }
            if (before.serving && m.serving && before.serving.id !== m.serving.id) {
              // Replicas polling the Secret keep serving the old one for up to one interval.
              expect(before.serving.notAfter).toBeGreaterThan(now + poll);
            }
            const current = m.serving as ModelCert;
            const use = inUse.get(current.id) ?? { signer: current.signer as number, until: now };
            use.until = now;
            inUse.set(current.id, use);
            initial = false;
            const planAfter = planRotation(inspect(m), policy, now);
            const lag = (lagFractions[step % lagFractions.length] as number) * maxLag;
            // Syncs between the plan's check times (poll ticks) find nothing to do; skip them.
            now = Math.ceil(planAfter.nextCheckAt + lag);
          }
          expect(caRotations).toBeGreaterThanOrEqual(2);
        },
      ),
      { numRuns: 200 },
    );
  });
});
