/**
 * `kubectl konductor`: the commands, their flags, and `-w` (follow). Connects like kubectl (the kubeconfig
 * resolved by @kubernetes/client-node, in this process: it is short-lived) and reads only the API server:
 * the primitives and the managed pods. No extra server.
 */
import { parseArgs } from 'node:util';
import { konductorError } from '../api/errors.ts';
import { isNotFound, KubeClient } from '../api/kubeClient.ts';
import { resolveKubeconfig } from '../api/kubeconfig.ts';
import { connectKubeconfig } from '../api/kubeconfigSource.ts';
import { resourcePath } from '../api/kubeRequest.ts';
import type { Pod } from '../api/types.ts';
import { parsePrimitiveRef } from './refs.ts';
import {
  formatStructured,
  type OutputFormat,
  renderHolders,
  renderQueue,
  renderStatus,
  renderWhy,
} from './render.ts';
import { loadSnapshot, type Snapshot, watchSnapshot } from './snapshot.ts';
import { holdersView, queueView, statusView } from './views.ts';
import { whyView } from './why.ts';

export const PLUGIN_HELP = `kubectl konductor — see konductor's queues: who holds, who waits, and why

Usage:
  kubectl konductor status                 every primitive: capacity, in use, waiting, oldest wait
  kubectl konductor queue KIND/NAME        the whole queue in grant order, and why each pod is not granted
  kubectl konductor why POD                what the pod waits for, its place, what must happen for it to start
  kubectl konductor holders KIND/NAME      the pods that hold it: permits, fencing tokens, granted, expires

  KIND: semaphore (sem), lease (klease), barrier (kbar), gate (kgate)

Flags:
  -n, --namespace NS      namespace (default: the context's, else default)
  -A, --all-namespaces    status: every namespace
  -o, --output FORMAT     table (default), json or yaml
  -w, --watch             follow: print again after every change (Ctrl-C stops)
      --kubeconfig PATH   kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)
      --context NAME      kubeconfig context
  -h, --help, --version
`;

export interface PluginIO {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  /** Resolves when -w should stop (default: SIGINT/SIGTERM). */
  stopSignal?: Promise<void>;
}

interface Invocation {
  command: 'status' | 'queue' | 'why' | 'holders';
  target: string | undefined;
  namespace: string | undefined;
  allNamespaces: boolean;
  output: OutputFormat;
  watch: boolean;
  kubeconfig: string | undefined;
  context: string | undefined;
}

export function parseInvocation(argv: readonly string[]): Invocation | 'help' | 'version' {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      namespace: { type: 'string', short: 'n' },
      'all-namespaces': { type: 'boolean', short: 'A', default: false },
      output: { type: 'string', short: 'o', default: 'table' },
      watch: { type: 'boolean', short: 'w', default: false },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      version: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  if (values.version) return 'version';
  const [command, target, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') return 'help';
  const bad = (msg: string): never => {
    throw konductorError('KDR_PLUGIN_USAGE', msg);
  };
  if (command !== 'status' && command !== 'queue' && command !== 'why' && command !== 'holders') {
    bad(`unknown command "${command}": expected status, queue, why or holders`);
  }
  if (command === 'status' ? target !== undefined : target === undefined || rest.length > 0) {
    bad(command === 'status' ? 'status takes no argument' : `${command} takes one argument`);
  }
  const output = values.output === 'wide' ? 'table' : values.output;
  if (output !== 'table' && output !== 'json' && output !== 'yaml')
    bad(`unknown output format "${output}": table, json or yaml`);
  if (values['all-namespaces'] && command !== 'status') bad('--all-namespaces works with status only');
  return {
    command: command as Invocation['command'],
    target,
    namespace: values.namespace,
    allNamespaces: values['all-namespaces'] ?? false,
    output: output as OutputFormat,
    watch: values.watch ?? false,
    kubeconfig: values.kubeconfig,
    context: values.context,
  };
}

/** Renders one invocation from a snapshot (and, for `why`, the pod). */
export function renderInvocation(inv: Invocation, s: Snapshot, namespace: string, pod?: Pod): string {
  const out = (data: unknown, table: () => string) =>
    inv.output === 'table' ? table() : formatStructured(data, inv.output as 'json' | 'yaml');
  switch (inv.command) {
    case 'status': {
      const rows = statusView(s);
      return out({ namespace: s.namespace ?? null, primitives: rows }, () =>
        renderStatus(rows, s.now, inv.allNamespaces),
      );
    }
    case 'queue':
    case 'holders': {
      const ref = parsePrimitiveRef(inv.target);
      const view = inv.command === 'queue' ? queueView(s, namespace, ref) : holdersView(s, namespace, ref);
      if (!view) {
        throw konductorError('KDR_PLUGIN_NOT_FOUND', `${ref.kind.toLowerCase()} ${namespace}/${ref.name}`);
      }
      return out(view, () =>
        inv.command === 'queue'
          ? renderQueue(view as ReturnType<typeof queueView> & object, s.now)
          : renderHolders(view as ReturnType<typeof holdersView> & object, s.now),
      );
    }
    case 'why': {
      if (!pod) throw konductorError('KDR_PLUGIN_NOT_FOUND', `pod ${namespace}/${inv.target}`);
      const view = whyView(s, pod);
      return out(view, () => renderWhy(view, s.now));
    }
  }
}

async function getPod(client: KubeClient, namespace: string, name: string): Promise<Pod | undefined> {
  try {
    return await client.get<Pod>(resourcePath({ version: 'v1', plural: 'pods', namespace, name }));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The pod by name: from the snapshot (managed pods), else from the API server. */
async function podFor(
  client: KubeClient,
  s: Snapshot,
  namespace: string,
  name: string,
): Promise<Pod | undefined> {
  for (const p of s.pods.all()) {
    if (p.pod.metadata.name === name && p.pod.metadata.namespace === namespace) return p.pod;
  }
  return getPod(client, namespace, name);
}

/** Runs `kubectl konductor ARGS`; resolves with the exit code. */
export async function runPlugin(argv: readonly string[], io: PluginIO): Promise<number> {
  let inv: ReturnType<typeof parseInvocation>;
  try {
    inv = parseInvocation(argv);
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\n`);
    return 2;
  }
  if (inv === 'help') {
    io.stdout.write(PLUGIN_HELP);
    return 0;
  }
  if (inv === 'version') {
    io.stdout.write('kubectl-konductor 0.1.0\n');
    return 0;
  }
  let client: KubeClient | undefined;
  try {
    const conn = await connectKubeconfig(
      { kubeconfig: inv.kubeconfig, context: inv.context },
      resolveKubeconfig,
    );
    client = new KubeClient(conn);
    const namespace = inv.namespace ?? conn.namespace ?? 'default';
    const scope = inv.command === 'status' && inv.allNamespaces ? undefined : namespace;
    if (!inv.watch) {
      const s = await loadSnapshot(client, scope);
      const pod = inv.command === 'why' ? await podFor(client, s, namespace, inv.target ?? '') : undefined;
      io.stdout.write(renderInvocation(inv, s, namespace, pod));
      return 0;
    }
    await loadSnapshot(client, scope); // fail fast (no CRDs, no access) before following
    return await follow(client, inv, scope, namespace, io);
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\n`);
    return 1;
  } finally {
    client?.close();
  }
}

async function follow(
  client: KubeClient,
  inv: Invocation,
  scope: string | undefined,
  namespace: string,
  io: PluginIO,
): Promise<number> {
  const tty = io.stdout.isTTY === true && inv.output === 'table';
  let rendering = Promise.resolve();
  let last = '';
  let failure: unknown;
  let failed!: () => void;
  const failedSignal = new Promise<void>((r) => {
    failed = r;
  });
  const watcher = watchSnapshot(
    client,
    scope,
    (s) => {
      rendering = rendering.then(async () => {
        try {
          const pod =
            inv.command === 'why' ? await podFor(client, s, namespace, inv.target ?? '') : undefined;
          const text = renderInvocation(inv, s, namespace, pod);
          if (text === last) return;
          last = text;
          if (tty) io.stdout.write(`\x1b[H\x1b[2J${new Date(s.now).toISOString()}\n\n${text}`);
          else
            io.stdout.write(
              inv.output === 'yaml' ? `---\n${text}` : inv.output === 'table' ? `${text}\n` : text,
            );
        } catch (err) {
          failure = err;
          failed();
        }
      });
    },
    () => undefined, // the informers retry on their own
  );
  const stop =
    io.stopSignal ??
    new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  await Promise.race([stop, failedSignal]);
  watcher.stop();
  await rendering;
  if (failure) {
    io.stderr.write(`error: ${(failure as Error).message}\n`);
    return 1;
  }
  return 0;
}
