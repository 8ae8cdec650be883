/**
 * The import boundaries between the parts (DESIGN §1, docs/architecture.md "Layers"), as data and a pure
 * check. `npm run lint` runs scripts/check-imports.ts, which feeds it every TypeScript file of the repository.
 *
 * A file belongs to the most specific area its path starts with (`controller/arbitration/` before
 * `controller/`); an area may import the areas listed for it (itself included, and their sub-areas) and
 * nothing else of ours.
 * A `pure` area imports no `node:` builtin and no npm package either: its code decides, it does no I/O.
 */

export interface AreaRule {
  /** Areas (path prefixes without the trailing slash) this area may import. */
  may: readonly string[];
  /** No node: builtins, no npm packages. */
  pure?: boolean;
  /** Why, in one line (printed with a violation). */
  why: string;
}

const PRODUCT = ['api', 'controller', 'webhook', 'sidecar', 'certs', 'plugin'] as const;

export const AREAS: Readonly<Record<string, AreaRule>> = {
  api: { may: ['api'], why: 'api/ is the shared vocabulary: it imports nothing of ours' },
  'controller/arbitration': {
    may: ['api', 'controller/arbitration'],
    pure: true,
    why: "controller/arbitration/ is the controller's pure core (arbitration, kind rules, stages, figures, pod index)",
  },
  controller: { may: ['api', 'controller'], why: 'controller/ builds on api/ only' },
  webhook: { may: ['api', 'certs', 'webhook'], why: 'webhook/ builds on api/ and certs/' },
  sidecar: { may: ['api', 'sidecar'], why: 'sidecar/ (the agent) builds on api/ only' },
  certs: { may: ['api', 'certs'], why: 'certs/ builds on api/ only' },
  devcluster: {
    may: ['api', 'certs', 'devcluster'],
    why: "devcluster/ builds on api/ and certs/ (the shared certificate builder); never on the product's webhook or controller",
  },
  plugin: {
    may: ['api', 'controller/arbitration', 'plugin'],
    why: "plugin/ builds on api/ and the controller's pure core (controller/arbitration/)",
  },
  cmd: { may: [...PRODUCT, 'cmd'], why: 'cmd/ wires the product together (not the dev tooling)' },
  scripts: {
    may: [...PRODUCT, 'cmd', 'devcluster', 'scripts', 'test/helpers'],
    why: 'scripts/ are dev entry points',
  },
  bench: {
    may: [...PRODUCT, 'cmd', 'devcluster', 'scripts', 'bench', 'test/helpers'],
    why: 'bench/ may use anything but the tests themselves (shared helpers live in test/helpers/)',
  },
  test: { may: [...PRODUCT, 'cmd', 'devcluster', 'scripts', 'bench', 'test'], why: 'tests may use anything' },
  'test/helpers': {
    may: [...PRODUCT, 'cmd', 'devcluster', 'scripts', 'test/helpers'],
    why: 'shared test helpers (also used by bench/) use no test files',
  },
};

/** An area listed in `may` admits its sub-areas too (`controller` admits `controller/arbitration`). */
function admits(may: readonly string[], area: string): boolean {
  return may.some((a) => area === a || area.startsWith(`${a}/`));
}

/** The area of a repository path (`controller/arbitration/lease.ts` -> `controller/arbitration`), if any. */
export function areaOf(path: string): string | undefined {
  let best: string | undefined;
  for (const area of Object.keys(AREAS)) {
    if ((path === area || path.startsWith(`${area}/`)) && (!best || area.length > best.length)) best = area;
  }
  return best;
}

export interface SourceImports {
  /** Repository-relative path, `/`-separated. */
  path: string;
  /** Import specifiers with their line, as written. */
  imports: readonly { specifier: string; line: number }[];
}

export interface Violation {
  path: string;
  line: number;
  specifier: string;
  message: string;
}

/** Resolves a relative specifier against the importing file's directory (repository-relative). */
export function resolveSpecifier(from: string, specifier: string): string {
  const parts = from.split('/').slice(0, -1);
  for (const seg of specifier.split('/')) {
    if (seg === '..') parts.pop();
    else if (seg !== '.' && seg !== '') parts.push(seg);
  }
  return parts.join('/');
}

/** Every import that crosses a boundary it may not cross. */
export function checkImports(files: readonly SourceImports[]): Violation[] {
  const out: Violation[] = [];
  for (const file of files) {
    const area = areaOf(file.path);
    if (area === undefined) continue;
    const rule = AREAS[area]!;
    for (const { specifier, line } of file.imports) {
      const relative = specifier.startsWith('.');
      if (!relative) {
        if (rule.pure) {
          out.push({
            path: file.path,
            line,
            specifier,
            message: `${area}/ is pure: no node: builtins or packages (${rule.why})`,
          });
        }
        continue;
      }
      const target = resolveSpecifier(file.path, specifier);
      const targetArea = areaOf(target);
      if (targetArea === undefined || admits(rule.may, targetArea)) continue;
      out.push({
        path: file.path,
        line,
        specifier,
        message: `${area}/ may import ${rule.may.map((a) => `${a}/`).join(', ')}, not ${targetArea}/ (${rule.why})`,
      });
    }
  }
  return out;
}
