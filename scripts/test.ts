/**
 * `npm test`: builds (when scripts/build.ts exists), makes sure the Kubernetes binaries and chart tools
 * are there (building them once with Go, with progress), and the real node's binaries and images,
 * then runs the vitest projects in order: unit + integration (one run), then `realnode` and `e2e`
 * (one run each: they need this machine's one real node in turn). Ends with a table of each phase's
 * time and the plain line `N passed, N failed`. Exits non-zero on any failure.
 *
 *   KONDUCTOR_SKIP_E2E=1 npm test     skip the real-node phases (developers; CI runs them)
 *   npm test -- <vitest args>         one vitest run with those arguments (e.g. a file)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureGoTools, ensureK8sBinaries } from '../devcluster/binaries.ts';
import { konductorNodeImages } from '../devcluster/realnode/konductor.ts';
import { prepareRealNode } from '../devcluster/realnode/prepare.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

interface VitestJson {
  numPassedTests?: number;
  numFailedTests?: number;
  numPendingTests?: number;
  numTodoTests?: number;
  numFailedTestSuites?: number;
  success?: boolean;
}

interface Tally {
  passed: number;
  failed: number;
  skipped: number;
  code: number;
}

async function vitest(args: string[]): Promise<Tally> {
  const outDir = mkdtempSync(join(tmpdir(), 'konductor-vitest-'));
  const jsonPath = join(outDir, 'results.json');
  const bin = join(ROOT, 'node_modules', '.bin', 'vitest');
  const code = await run(bin, [
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${jsonPath}`,
    ...args,
  ]);
  const tally: Tally = { passed: 0, failed: 0, skipped: 0, code };
  try {
    const res = JSON.parse(readFileSync(jsonPath, 'utf8')) as VitestJson;
    tally.passed = res.numPassedTests ?? 0;
    tally.failed = res.numFailedTests ?? 0;
    tally.skipped = (res.numPendingTests ?? 0) + (res.numTodoTests ?? 0);
    // A file that fails to load (or a failing hook) has no failed test but fails the run.
    if (tally.failed === 0 && (code !== 0 || (res.numFailedTestSuites ?? 0) > 0))
      tally.failed = res.numFailedTestSuites || 1;
  } catch {
    tally.failed = code === 0 ? 0 : 1; // no report: vitest itself failed (config error, global setup)
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
  return tally;
}

async function main(): Promise<number> {
  const started = Date.now();
  const timings: [string, number][] = [];
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    process.stdout.write(`== ${name}\n`);
    const t = Date.now();
    try {
      return await fn();
    } finally {
      const s = (Date.now() - t) / 1000;
      timings.push([name, s]);
      process.stdout.write(`== ${name}: ${s.toFixed(1)} s\n`);
    }
  };
  const extra = process.argv.slice(2);
  const e2e = process.env.KONDUCTOR_SKIP_E2E !== '1';
  const needsRealNode = extra.length ? /realnode|e2e/.test(extra.join(' ')) : e2e;

  if (existsSync(join(ROOT, 'scripts', 'build.ts'))) {
    const code = await phase('npm run build', () => run('npm', ['run', '--silent', 'build']));
    if (code !== 0) {
      process.stdout.write('build failed\n0 passed, 1 failed\n');
      return code;
    }
  }
  try {
    await phase('Kubernetes binaries', async () => {
      const bins = await ensureK8sBinaries();
      process.stdout.write(`(${bins.source})\n`);
    });
    if (!process.env.KONDUCTOR_CHART_TOOLS_BIN) {
      await phase('chart tools (helm, kubeconform, models-schema)', () => ensureGoTools('chart-tools'));
    }
    if (needsRealNode) {
      await phase('real node: packages, kubelet, containerd, CoreDNS, node images', () => prepareRealNode());
      await phase('images: manager, agent (Dockerfiles), cert-manager', () => konductorNodeImages());
    }
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    if ((err as { code?: string }).code?.startsWith('KDR_REALNODE_')) {
      process.stderr.write('(KONDUCTOR_SKIP_E2E=1 npm test runs everything but the real-node phases)\n');
    }
    process.stdout.write('0 passed, 1 failed\n');
    return 1;
  }

  const runs: Tally[] = [];
  if (extra.length) {
    runs.push(await phase(`vitest ${extra.join(' ')}`, () => vitest(extra)));
  } else {
    runs.push(
      await phase('vitest: unit + integration', () =>
        vitest(['--project', 'unit', '--project', 'integration']),
      ),
    );
    if (e2e) {
      runs.push(await phase('vitest: realnode (life cycle)', () => vitest(['--project', 'realnode'])));
      runs.push(await phase('vitest: e2e (real node)', () => vitest(['--project', 'e2e'])));
    } else {
      process.stdout.write('== real-node phases skipped (KONDUCTOR_SKIP_E2E=1)\n');
    }
  }
  const sum = (k: keyof Tally) => runs.reduce((a, r) => a + r[k], 0);
  const failed = sum('failed');
  const skipped = sum('skipped');
  const code = runs.find((r) => r.code !== 0)?.code ?? 0;
  const secs = Math.round((Date.now() - started) / 1000);
  process.stdout.write('\nphase timings:\n');
  for (const [name, s] of timings) process.stdout.write(`  ${s.toFixed(1).padStart(7)} s  ${name}\n`);
  process.stdout.write(
    `\n(${secs} s${skipped ? `, ${skipped} skipped` : ''})\n${sum('passed')} passed, ${failed} failed\n`,
  );
  return failed > 0 || code !== 0 ? code || 1 : 0;
}

process.exitCode = await main();
