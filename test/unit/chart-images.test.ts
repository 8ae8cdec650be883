/**
 * Static checks of the two Dockerfiles (no Docker engine runs here): multi-stage on Node 24, production
 * dependencies only, non-root numeric USER, entry points that are the package's bins, and a
 * .dockerignore that keeps local state out. That the build produces the files they copy and that the
 * bundled entry points answer --help is checked where the build is (scripts/build.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/chartTools.ts';

const read = (f: string) => readFileSync(join(REPO, f), 'utf8');
const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> };

interface Stage {
  from: string;
  name?: string;
  lines: string[];
}

function stages(dockerfile: string): Stage[] {
  const args = Object.fromEntries(
    [...dockerfile.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]),
  );
  const out: Stage[] = [];
  for (const raw of dockerfile.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const from = /^FROM (\S+)(?: AS (\S+))?$/i.exec(line);
    if (from) {
      const image = (from[1] ?? '').replace(/\$\{(\w+)\}/g, (_, n: string) => args[n] ?? '');
      out.push({ from: image, ...(from[2] ? { name: from[2] } : {}), lines: [] });
    } else out.at(-1)?.lines.push(line);
  }
  return out;
}

describe.each([
  ['Dockerfile.webhook', 'konductor'],
  ['Dockerfile.sidecar', 'konductor-agent'],
])('%s', (file, bin) => {
  const all = stages(read(file));
  const runtime = all.at(-1) as Stage;

  it('is multi-stage on Node 24 and builds with npm ci + npm run build', () => {
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const s of all) expect(s.from).toMatch(/^node:24(-slim|-alpine)?$/);
    const build = all.find((s) => s.name === 'build');
    expect(build?.lines).toContain('RUN npm run build');
    expect(build?.lines.some((l) => l.startsWith('RUN npm ci'))).toBe(true);
  });

  it('runs as a non-root numeric user with the package bin as entry point', () => {
    expect(runtime.lines).toContain('USER 65532:65532');
    const entry = runtime.lines.find((l) => l.startsWith('ENTRYPOINT'));
    const target = pkg.bin[bin];
    expect(target).toBeDefined();
    // node [V8 flags...] script: the script is the last word
    const words = JSON.parse((entry ?? '').replace(/^ENTRYPOINT /, '')) as string[];
    expect(words[0]).toBe('node');
    const script = words.at(-1);
    const copied = runtime.lines.filter((l) => l.startsWith('COPY --from=build'));
    // the entry point is a file the runtime stage copies out of the build's dist/
    const base = (target ?? '').split('/').pop() as string;
    expect(script?.endsWith(base)).toBe(true);
    expect(copied.some((l) => l.includes('/src/dist'))).toBe(true);
  });

  it('ships no dev dependencies', () => {
    const installs = runtime.lines.filter((l) => l.includes('npm '));
    expect(installs).toEqual([]);
    const copiesNodeModules = runtime.lines.filter((l) => l.includes('node_modules'));
    for (const l of copiesNodeModules) expect(l).toMatch(/--from=deps/);
    if (copiesNodeModules.length > 0) {
      const deps = all.find((s) => s.name === 'deps');
      expect(deps?.lines.some((l) => l.includes('npm ci --omit=dev'))).toBe(true);
    }
  });
});

it('the agent image holds only the bundled agent', () => {
  const runtime = stages(read('Dockerfile.sidecar')).at(-1) as Stage;
  const copies = runtime.lines.filter((l) => l.startsWith('COPY'));
  expect(copies).toEqual(['COPY --from=build /src/dist/konductor-agent.js ./konductor-agent.js']);
});

it('.dockerignore keeps local state and the Go tool modules out of the build context', () => {
  const ignored = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const p of ['.git', 'node_modules', 'dist', 'devcluster/k8s-tools', 'devcluster/chart-tools']) {
    expect(ignored).toContain(p);
  }
});
