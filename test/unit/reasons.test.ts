/** docs/reasons.md lists every reason of the vocabularies in api/reasons.ts. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ADMISSION_REASONS, CONDITION_REASONS, EVENT_REASONS, FAILURE_REASONS } from '../../api/reasons.ts';
import { ROOT } from '../../scripts/build.ts';

it('docs/reasons.md lists every condition, Event, wait-failure and admission reason', () => {
  const doc = readFileSync(join(ROOT, 'docs/reasons.md'), 'utf8');
  for (const reason of [...CONDITION_REASONS, ...EVENT_REASONS, ...FAILURE_REASONS, ...ADMISSION_REASONS])
    expect(doc, reason).toContain(`\`${reason}\``);
});
