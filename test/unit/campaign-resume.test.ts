import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** `npm run campaign -- --resume FILE`: what it refuses before it starts a cluster. */
const dir = mkdtempSync(join(tmpdir(), 'campaign-resume-'));
const campaign = (...args: string[]) =>
  spawnSync(process.execPath, ['campaign/run.ts', ...args], { encoding: 'utf8', timeout: 60_000 });

const report = (over: Record<string, unknown>) => {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      seed: 's',
      firstRound: 0,
      roundsRequested: 100,
      nextRound: 40,
      rounds: [],
      node: 'process',
      ...over,
    }),
  );
  return file;
};

describe('campaign --resume', () => {
  it('refuses a file that is not a report, readably', () => {
    const file = join(dir, 'junk.json');
    writeFileSync(file, 'not json');
    const r = campaign('--resume', file);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--resume .*junk\.json: not a campaign report/);
  });

  it('refuses a report written before runs could be resumed (no nextRound)', () => {
    const r = campaign('--resume', report({ nextRound: undefined }));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/not a campaign report written by a run that can be resumed/);
  });

  it('refuses a run that is complete', () => {
    const r = campaign('--resume', report({ nextRound: 100 }));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/that run is complete/);
  });

  it('refuses settings that would change the run: they come from the report', () => {
    const r = campaign('--resume', report({}), '--seed', 'other', '--pods', '3');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/drop --seed, --pods/);
  });
});
