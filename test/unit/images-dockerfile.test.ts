/**
 * The Dockerfile interpreter's pure parts (devcluster/images/dockerfile.ts, dockerignore.ts,
 * dockerBuild.ts planning): the project's two Dockerfiles parse to the stages they declare, anything
 * the interpreter does not implement fails loudly with its line, variables and words follow Docker's
 * rules, .dockerignore follows moby's matcher, and the cache keys change exactly when an input does.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Dockerfile variables, not template strings
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DockerBuildRequest,
  type LocalImage,
  planDockerBuild,
  readBuildContext,
} from '../../devcluster/images/dockerBuild.ts';
import { expandVariables, parseDockerfile, splitWords } from '../../devcluster/images/dockerfile.ts';
import { dockerignoreMatcher } from '../../devcluster/images/dockerignore.ts';
import { REPO } from '../helpers/chartTools.ts';

const read = (f: string) => readFileSync(join(REPO, f), 'utf8');

describe('parseDockerfile', () => {
  it('Dockerfile.webhook: the build, deps and runtime stages, every instruction understood', () => {
    const df = parseDockerfile(read('Dockerfile.webhook'));
    expect(df.globalArgs).toEqual([{ name: 'NODE_IMAGE', default: 'node:24-slim' }]);
    expect(df.stages.map((s) => [s.name, s.from])).toEqual([
      ['build', '${NODE_IMAGE}'],
      ['deps', '${NODE_IMAGE}'],
      ['runtime', '${NODE_IMAGE}'],
    ]);
    expect(df.stages.map((s) => s.instructions.map((i) => i.kind))).toEqual([
      ['WORKDIR', 'COPY', 'RUN', 'COPY', 'RUN'],
      ['WORKDIR', 'COPY', 'RUN'],
      ['ENV', 'WORKDIR', 'COPY', 'COPY', 'COPY', 'USER', 'EXPOSE', 'ENTRYPOINT'],
    ]);
    const runtime = df.stages[2]?.instructions ?? [];
    expect(runtime[2]).toMatchObject({
      kind: 'COPY',
      from: 'deps',
      sources: ['/app/node_modules'],
      dest: './node_modules',
    });
    expect(runtime.at(-1)).toMatchObject({
      kind: 'ENTRYPOINT',
      argv: ['node', '--max-semi-space-size=2', '/app/dist/konductor.js'],
    });
  });

  it('Dockerfile.sidecar: build and runtime stages, the build stage identical to the webhook one', () => {
    const df = parseDockerfile(read('Dockerfile.sidecar'));
    const webhook = parseDockerfile(read('Dockerfile.webhook'));
    const strip = (s: (typeof df.stages)[0]) => s.instructions.map(({ line: _l, ...i }) => i);
    expect(df.stages.map((s) => s.name)).toEqual(['build', 'runtime']);
    expect(strip(df.stages[0] as (typeof df.stages)[0])).toEqual(
      strip(webhook.stages[0] as (typeof df.stages)[0]),
    );
    expect(df.stages[1]?.instructions.at(-1)).toMatchObject({
      kind: 'ENTRYPOINT',
      argv: ['node', '/app/konductor-agent.js'],
    });
  });

  it.each([
    ['ADD', 'FROM x\nADD a.tgz /', 'line 2: ADD'],
    ['VOLUME', 'FROM x\nVOLUME /data', 'line 2: VOLUME'],
    ['HEALTHCHECK', 'FROM x\n\nHEALTHCHECK CMD true', 'line 3: HEALTHCHECK'],
    ['SHELL', 'FROM x\nSHELL ["bash", "-c"]', 'line 2: SHELL'],
    ['RUN --mount', 'FROM x\nRUN --mount=type=cache,target=/root/.npm npm ci', 'line 2: RUN --mount'],
    ['COPY --chown', 'FROM x\nCOPY --chown=1:1 a /a', 'line 2: COPY --chown'],
    ['COPY wildcard', 'FROM x\nCOPY *.json /app/', 'line 2: a wildcard'],
    ['FROM --platform', 'FROM --platform=linux/arm64 x', 'line 1: FROM --platform'],
    ['escape directive', '# escape=`\nFROM x', 'line 1: escape=`'],
  ])('fails loudly on %s', (_name, text, message) => {
    expect(() => parseDockerfile(text)).toThrow(
      expect.objectContaining({ code: 'KDR_IMAGES_DOCKERFILE_UNSUPPORTED' }),
    );
    expect(() => parseDockerfile(text)).toThrow(message);
  });

  it('joins continuation lines, drops comments inside them, keeps the first line number', () => {
    const df = parseDockerfile('FROM x\n\nRUN echo a \\\n  # a comment\n  && echo b\nCMD echo c');
    expect(df.stages[0]?.instructions).toEqual([
      { kind: 'RUN', line: 3, shell: 'echo a   && echo b' },
      { kind: 'CMD', line: 6, argv: ['/bin/sh', '-c', 'echo c'] },
    ]);
  });

  it('ENV in both forms, LABEL, EXPOSE, exec-form RUN, COPY in JSON form', () => {
    const df = parseDockerfile(
      'FROM x AS Base\nENV A=1 B="two words"\nENV C legacy value\nLABEL k=v\nEXPOSE 80 53/udp\nRUN ["/bin/true", "x"]\nCOPY ["a b", "/d/"]',
    );
    expect(df.stages[0]?.name).toBe('base');
    expect(df.stages[0]?.instructions.map(({ line: _l, ...i }) => i)).toEqual([
      {
        kind: 'ENV',
        pairs: [
          ['A', '1'],
          ['B', 'two words'],
        ],
      },
      { kind: 'ENV', pairs: [['C', 'legacy value']] },
      { kind: 'LABEL', pairs: [['k', 'v']] },
      { kind: 'EXPOSE', ports: ['80', '53/udp'] },
      { kind: 'RUN', argv: ['/bin/true', 'x'] },
      { kind: 'COPY', sources: ['a b'], dest: '/d/' },
    ]);
  });

  it('rejects what is not a Dockerfile', () => {
    expect(() => parseDockerfile('# nothing\n')).toThrow(/no FROM/);
    expect(() => parseDockerfile('RUN true\nFROM x')).toThrow(/before the first FROM/);
    expect(() => parseDockerfile('FROM a b c d')).toThrow(/FROM a b c d/);
  });
});

describe('variables and words', () => {
  it.each([
    ['${A}', 'a'],
    ['$A/$B', 'a/'],
    ['${B:-def}', 'def'],
    ['${A:-def}', 'a'],
    ['${A:+alt}', 'alt'],
    ['${B:+alt}', ''],
    ['\\$A', '$A'],
    ['$', '$'],
    ['x$1', 'x$1'],
  ])('%s -> %s', (input, want) => {
    expect(expandVariables(input, { A: 'a' })).toBe(want);
  });

  it('text without $ or escapes is unchanged; a defined variable expands to its value', () => {
    fc.assert(
      fc.property(
        fc.string().filter((s) => !s.includes('$') && !s.includes('\\')),
        fc.string(),
        (text, value) => {
          expect(expandVariables(text, { V: value })).toBe(text);
          expect(expandVariables(`${text}\${V}${text}`, { V: value })).toBe(`${text}${value}${text}`);
        },
      ),
    );
  });

  it('splits words like a shell (quotes and escapes)', () => {
    expect(splitWords(`a "b c" 'd "e"' f\\ g ""`)).toEqual(['a', 'b c', 'd "e"', 'f g', '']);
    expect(() => splitWords('"open')).toThrow(/unterminated quote/);
  });
});

describe('.dockerignore (moby patternmatcher semantics)', () => {
  it("the repository's .dockerignore keeps local state, tooling, tests and docs out", () => {
    const ignored = dockerignoreMatcher(read('.dockerignore'));
    for (const p of [
      'node_modules',
      'node_modules/fastify/package.json',
      'dist/konductor.js',
      '.git/HEAD',
      'bench/results/x.json',
      'npm-debug.log',
      'devcluster/k8s-tools/go.mod',
      'devcluster/chart-tools/tools.go',
      'devcluster/certmanager/cert-manager-tools/go.sum',
      'Dockerfile.webhook',
      'devcluster/images/oci.ts',
      'test/unit/images.test.ts',
      'docs/helm.md',
    ]) {
      expect(ignored(p), p).toBe(true);
    }
    for (const p of [
      'package.json',
      'scripts/build.ts',
      'api/constants.ts',
      'charts/konductor/files/crds',
      'cmd/konductor.ts',
      'sidecar/main.ts',
    ]) {
      expect(ignored(p), p).toBe(false);
    }
  });

  it('anchors at the root, * stays in a segment, ** crosses them, the last match decides', () => {
    const m = dockerignoreMatcher('*.md\n!README.md\n**/*.tmp\n/build/\nsub/*/x\n# comment\n a \n');
    expect(m('notes.md')).toBe(true);
    expect(m('README.md')).toBe(false);
    expect(m('docs/notes.md')).toBe(false); // `*.md` is anchored at the context root
    expect(m('docs/deep/file.tmp')).toBe(true);
    expect(m('file.tmp')).toBe(true);
    expect(m('build/out.js')).toBe(true); // a directory excludes what is under it
    expect(m('sub/one/x')).toBe(true);
    expect(m('sub/one/two/x')).toBe(false);
    expect(m('a')).toBe(true); // trimmed
    expect(m('# comment')).toBe(false);
  });

  it('an exception re-includes a path under an excluded directory', () => {
    const m = dockerignoreMatcher('vendor\n!vendor/keep.txt');
    expect(m('vendor/other.txt')).toBe(true);
    expect(m('vendor/keep.txt')).toBe(false);
  });
});

describe('planDockerBuild: stage keys (the image cache stamps)', () => {
  let ctx: string;
  const base: LocalImage = {
    name: 'docker.io/konductor/node:24',
    archive: '/nonexistent',
    manifestDigest: 'sha256:aaa',
    config: { Env: ['PATH=/usr/bin'] },
  };
  const DF = [
    'ARG NODE_IMAGE=node:24-slim',
    'FROM ${NODE_IMAGE} AS build',
    'WORKDIR /src',
    'COPY package.json ./',
    'RUN npm ci',
    'COPY . .',
    'FROM ${NODE_IMAGE}',
    'COPY --from=build /src/app.js /app/app.js',
  ].join('\n');
  const req = (over: Partial<DockerBuildRequest> = {}): DockerBuildRequest => ({
    dockerfile: DF,
    label: 'test',
    context: readBuildContext(ctx),
    buildArgs: { NODE_IMAGE: 'konductor/node:24' },
    images: [base],
    ...over,
  });

  beforeAll(() => {
    ctx = mkdtempSync(join(tmpdir(), 'konductor-plan-'));
    writeFileSync(join(ctx, 'package.json'), '{}');
    writeFileSync(join(ctx, 'app.js'), 'console.log(1)');
    writeFileSync(join(ctx, '.dockerignore'), 'ignored\n');
    mkdirSync(join(ctx, 'ignored'));
    writeFileSync(join(ctx, 'ignored', 'x'), '1');
  });
  afterAll(() => rmSync(ctx, { recursive: true, force: true }));

  it('is stable, and the target depends on the stage it copies from', () => {
    const a = planDockerBuild(req());
    expect(planDockerBuild(req()).keys).toEqual(a.keys);
    expect(a.needed).toEqual([0, 1]);
    expect(a.bases).toEqual([{ image: base }, { image: base }]);
  });

  it('changes with a copied file, but not with a file .dockerignore leaves out', () => {
    const before = planDockerBuild(req()).keys;
    writeFileSync(join(ctx, 'ignored', 'x'), '2');
    expect(planDockerBuild(req()).keys).toEqual(before);
    writeFileSync(join(ctx, 'app.js'), 'console.log(2)');
    const after = planDockerBuild(req()).keys;
    expect(after[0]).not.toBe(before[0]);
    expect(after[1]).not.toBe(before[1]); // COPY --from=build carries the build stage's key
  });

  it('changes with the base image digest and the build args', () => {
    const k = planDockerBuild(req()).keys[1];
    expect(planDockerBuild(req({ images: [{ ...base, manifestDigest: 'sha256:bbb' }] })).keys[1]).not.toBe(k);
    expect(
      planDockerBuild(req({ buildArgs: { NODE_IMAGE: 'konductor/node:24', EXTRA: '1' } })).keys[1],
    ).not.toBe(k);
  });

  it('never pulls: a FROM that is not a local image fails, naming the local ones', () => {
    expect(() => planDockerBuild(req({ buildArgs: {} }))).toThrow(
      expect.objectContaining({ code: 'KDR_IMAGES_BASE_MISSING' }),
    );
    expect(() => planDockerBuild(req({ buildArgs: {} }))).toThrow(
      /node:24-slim.*docker\.io\/konductor\/node:24/s,
    );
  });

  it('a COPY source missing from the context (or ignored) fails with its line', () => {
    const df = 'FROM konductor/node:24\nCOPY ignored/x /x';
    expect(() => planDockerBuild(req({ dockerfile: df }))).toThrow(
      /line 2: COPY source ignored\/x not found/,
    );
  });

  it("the project's two Dockerfiles share their build stage key", () => {
    const context = readBuildContext(REPO);
    const plan = (file: string) =>
      planDockerBuild({
        dockerfile: read(file),
        label: file,
        context,
        buildArgs: { NODE_IMAGE: 'konductor/node:24' },
        images: [base],
      });
    expect(plan('Dockerfile.sidecar').keys[0]).toBe(plan('Dockerfile.webhook').keys[0]);
  });
});
