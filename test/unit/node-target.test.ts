/**
 * One Node.js target everywhere: package.json engines, the esbuild target of the bundles, the images' base,
 * the `node` devDependency the npm scripts run, @types/node and the docs all name the same major.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { nodeTarget, ROOT } from '../../scripts/build.ts';

const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const pkg = JSON.parse(read('package.json')) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
};
const major = /(\d+)/.exec(pkg.engines.node)?.[1];

it('package.json engines names one major, and the bundles are built for it', () => {
  expect(pkg.engines.node).toBe(`>=${major}`);
  expect(nodeTarget(pkg)).toBe(`node${major}`);
});

it('the node devDependency, @types/node and both images use the same major', () => {
  expect(pkg.devDependencies.node?.split('.')[0]).toBe(major);
  expect(/^\^?(\d+)/.exec(pkg.devDependencies['@types/node'] ?? '')?.[1]).toBe(major);
  for (const file of ['Dockerfile.webhook', 'Dockerfile.sidecar'])
    expect(read(file), file).toContain(`ARG NODE_IMAGE=node:${major}-slim`);
});

it('the docs name the same major and no other', () => {
  for (const file of ['README.md', 'docs/CONTRIBUTING.md']) {
    const text = read(file);
    expect(text, file).toContain(`Node.js ${major}`);
    expect(
      text.match(/Node\.js \d+/g)?.every((m) => m === `Node.js ${major}`),
      file,
    ).toBe(true);
  }
});
