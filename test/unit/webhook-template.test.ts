import { readFileSync } from 'node:fs';
import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import type { CronJob, Job } from '../../api/types.ts';
import type { AdmissionReview } from '../../webhook/admissionReview.ts';
import { buildTemplateAnnotationPatch, konductorAnnotationsOf } from '../../webhook/templateAnnotations.ts';

function fixture<T>(name: string): T {
  const review = JSON.parse(
    readFileSync(new URL(`../fixtures/admission/${name}.json`, import.meta.url), 'utf8'),
  ) as AdmissionReview;
  return review.request?.object as T;
}

describe('buildTemplateAnnotationPatch', () => {
  it('copies a Job’s konductor annotations (only those) into its pod template', () => {
    const job = fixture<Job>('job');
    const result = buildTemplateAnnotationPatch(job);
    expect(result.patch).toEqual([
      {
        op: 'add',
        path: '/spec/template/metadata/annotations',
        value: { 'konductor.io/semaphore': 'batch-slots', 'konductor.io/priority': '5' },
      },
    ]);
    expect(result.parsed).toEqual({
      ok: true,
      request: { semaphore: { name: 'batch-slots', permits: 1 }, priority: 5 },
    });
    const out = jsonpatch.applyPatch(job, result.patch, true, false).newDocument;
    expect(out.spec.template.metadata?.labels).toEqual({ app: 'nightly-report' });
    // Applying again changes nothing.
    expect(buildTemplateAnnotationPatch(out).patch).toEqual([]);
  });

  it('copies a CronJob’s annotations into jobTemplate.spec.template; template values win', () => {
    const cron = fixture<CronJob>('cronjob');
    const result = buildTemplateAnnotationPatch(cron, 'CronJob');
    expect(result.patch).toEqual([
      {
        op: 'add',
        path: '/spec/jobTemplate/spec/template/metadata/annotations/konductor.io~1lease',
        value: 'sync-lock',
      },
      {
        op: 'add',
        path: '/spec/jobTemplate/spec/template/metadata/annotations/konductor.io~1wait-timeout',
        value: '5m',
      },
    ]);
    expect(result.effective).toEqual({
      'konductor.io/lease': 'sync-lock',
      'konductor.io/priority': '7',
      'konductor.io/wait-timeout': '5m',
    });
    const out = jsonpatch.applyPatch(cron, result.patch, true, false).newDocument;
    expect(out.spec.jobTemplate.spec.template.metadata?.annotations).toEqual(result.effective);
    expect(buildTemplateAnnotationPatch(out, 'CronJob').patch).toEqual([]);
  });

  it('infers the kind from the object', () => {
    const cron = fixture<CronJob>('cronjob');
    expect(buildTemplateAnnotationPatch(cron).patch[0]?.path).toMatch(/^\/spec\/jobTemplate\//);
  });

  it('creates the template metadata when absent', () => {
    const job: Job = {
      metadata: { name: 'j', annotations: { 'konductor.io/gate': 'go' } },
      spec: { template: { spec: { containers: [{ name: 'c' }] } } },
    };
    const { patch } = buildTemplateAnnotationPatch(job);
    expect(patch).toEqual([
      { op: 'add', path: '/spec/template/metadata', value: { annotations: { 'konductor.io/gate': 'go' } } },
    ]);
    jsonpatch.applyPatch(job, patch, true, false);
  });

  it('reports invalid annotations with the shared parser (the template’s included)', () => {
    const job: Job = {
      metadata: { name: 'j', annotations: { 'konductor.io/semaphore': 'slots' } },
      spec: {
        template: {
          metadata: { annotations: { 'konductor.io/permits': '-1' } },
          spec: { containers: [{ name: 'c' }] },
        },
      },
    };
    const { parsed } = buildTemplateAnnotationPatch(job);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problems.map((p) => p.annotation)).toEqual(['konductor.io/permits']);
  });

  it('ignores non-konductor and webhook-reserved annotations', () => {
    expect(
      konductorAnnotationsOf({
        'konductor.io/injected': 'true',
        'example.com/x': 'y',
        'konductor.io/lease': 'l',
      }),
    ).toEqual({ 'konductor.io/lease': 'l' });
    const job: Job = {
      metadata: { name: 'j', annotations: { 'example.com/x': 'y' } },
      spec: { template: { spec: { containers: [{ name: 'c' }] } } },
    };
    expect(buildTemplateAnnotationPatch(job)).toEqual({
      patch: [],
      effective: {},
      parsed: { ok: true, request: null },
    });
  });
});
