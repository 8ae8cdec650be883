/**
 * One Dockerfile instruction carried out on a stage's root filesystem: RUN in a chroot with the stage's
 * environment and user, COPY from the context or an earlier stage (ownership, modes, .dockerignore), and the
 * configuration instructions (ENV, WORKDIR, USER, ENTRYPOINT, CMD, ...).
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join, posix } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { chrootRun } from './chrootRun.ts';
import {
  type BuildSession,
  type BuiltStage,
  type DockerBuildRequest,
  hostBuildEnvironment,
} from './dockerBuild.ts';
import { expandVariables, type Instruction, type Stage } from './dockerfile.ts';
import { type Plan, stageIndex, varsOf } from './dockerPlan.ts';
import { copyInto, mkdirInRoot, resolveInRoot } from './rootfs.ts';

export function passwdLookup(root: string, file: 'passwd' | 'group', name: string): number | undefined {
  const p = resolveInRoot(root, `/etc/${file}`);
  if (!existsSync(p)) return undefined;
  for (const line of readFileSync(p, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined) return Number(f[2]);
  }
  return undefined;
}

/** `USER` as numeric uid:gid (names from the stage's /etc/passwd and /etc/group) and the home directory. */
export function resolveUser(root: string, user: string | undefined): { spec: string; home: string } {
  if (!user) return { spec: '0:0', home: '/root' };
  const [u = '', g] = user.split(':');
  const uid = /^\d+$/.test(u) ? Number(u) : passwdLookup(root, 'passwd', u);
  if (uid === undefined)
    throw konductorError('KDR_IMAGES_USER_UNKNOWN', `USER ${user}: no such user in the stage`);
  let gid = g === undefined ? undefined : /^\d+$/.test(g) ? Number(g) : passwdLookup(root, 'group', g);
  let home = '/';
  const passwd = resolveInRoot(root, '/etc/passwd');
  if (existsSync(passwd)) {
    for (const line of readFileSync(passwd, 'utf8').split('\n')) {
      const f = line.split(':');
      if (Number(f[2]) === uid) {
        gid ??= Number(f[3]);
        home = f[5] || '/';
        break;
      }
    }
  }
  return { spec: `${uid}:${gid ?? uid}`, home };
}

export function describeStage(s: Stage): string {
  return `${s.index}${s.name ? ` (${s.name})` : ''} FROM ${s.from}`;
}

export async function execute(
  session: BuildSession,
  req: DockerBuildRequest,
  plan: Plan,
  st: BuiltStage,
  ins: Instruction,
): Promise<void> {
  const s = st.state;
  const x = (t: string) => expandVariables(t, varsOf(s));
  const where = `${req.label} line ${ins.line}`;
  switch (ins.kind) {
    case 'ARG': {
      const v =
        req.buildArgs?.[ins.name] ?? (ins.default !== undefined ? x(ins.default) : plan.globals[ins.name]);
      if (v !== undefined) s.args.set(ins.name, v);
      return;
    }
    case 'ENV':
      for (const [k, v] of ins.pairs) s.env = [...s.env.filter(([n]) => n !== k), [k, x(v)]];
      return;
    case 'LABEL':
      for (const [k, v] of ins.pairs) s.labels[x(k)] = x(v);
      return;
    case 'WORKDIR':
      s.workdir = posix.resolve(s.workdir, x(ins.path));
      mkdirInRoot(st.root, s.workdir);
      return;
    case 'USER':
      s.user = x(ins.user);
      return;
    case 'EXPOSE':
      for (const p of ins.ports.map(x)) s.exposed.add(p.includes('/') ? p : `${p}/tcp`);
      return;
    case 'ENTRYPOINT':
      s.entrypoint = ins.argv;
      if (s.cmdFromBase) delete s.cmd;
      return;
    case 'CMD':
      s.cmd = ins.argv;
      s.cmdFromBase = false;
      return;
    case 'COPY':
      copy(session, req, plan, st, ins, x, where);
      return;
    case 'RUN': {
      const argv = ins.argv ?? ['/bin/sh', '-c', ins.shell as string];
      const user = resolveUser(st.root, s.user);
      const env: Record<string, string> = {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: user.home,
        HOSTNAME: 'buildkitsandbox',
        ...Object.fromEntries(s.args),
        ...Object.fromEntries(s.env),
      };
      mkdirInRoot(st.root, s.workdir);
      const host = hostBuildEnvironment();
      for (const [k, v] of Object.entries(host.env)) env[k] ??= v;
      // Mount points of the RUN's private mounts, removed afterwards when the image had none.
      const made = ['proc', 'dev', ...(host.caFile ? ['run', 'run/konductor-build'] : [])].filter(
        (d) => !existsSync(join(st.root, d)),
      );
      for (const d of made) mkdirSync(join(st.root, d));
      session.log(`${where}: RUN ${ins.shell ?? JSON.stringify(ins.argv)}`);
      const started = Date.now();
      const heartbeat = setInterval(
        () =>
          session.log(`  ... ${where}: RUN still running, ${Math.round((Date.now() - started) / 1000)} s`),
        session.heartbeatMs,
      );
      const r = await chrootRun({
        root: st.root,
        argv,
        env,
        cwd: s.workdir,
        user: user.spec,
        ...(host.caFile ? { caFile: host.caFile } : {}),
        onLine: (l) => {
          if (l.trim()) session.log(`  | ${l}`);
        },
      }).finally(() => clearInterval(heartbeat));
      for (const d of made.reverse()) rmdirSync(join(st.root, d));
      if (r.code !== 0) {
        throw konductorError(
          'KDR_IMAGES_RUN_FAILED',
          `${where}: RUN ${ins.shell ?? JSON.stringify(ins.argv)} exited ${r.code}:\n${r.tail.slice(-30).join('\n')}`,
        );
      }
      session.log(`${where}: RUN done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return;
    }
  }
}

export function copy(
  session: BuildSession,
  req: DockerBuildRequest,
  plan: Plan,
  st: BuiltStage,
  ins: Extract<Instruction, { kind: 'COPY' }>,
  x: (t: string) => string,
  where: string,
): void {
  const owner = { uid: 0, gid: 0 };
  const sources = ins.sources.map(x);
  const destRaw = x(ins.dest);
  const dest = posix.resolve(st.state.workdir, destRaw);
  const destIsDir = destRaw.endsWith('/') || destRaw === '.' || sources.length > 1;
  let from: { root: string; inContext: boolean };
  if (ins.from !== undefined) {
    const idx = stageIndex(plan.df, x(ins.from), plan.df.stages.length) as number;
    const src = session.stages.get(plan.keys[idx] as string);
    if (!src) throw konductorError('KDR_IMAGES_BUILD_FAILED', `${where}: stage ${ins.from} was not built`);
    from = { root: src.root, inContext: false };
  } else from = { root: req.context.dir, inContext: true };
  for (const s of sources) {
    const rel = posix.normalize(`/${s}`);
    const host = from.inContext ? join(from.root, rel) : resolveInRoot(from.root, rel);
    const relToContext = rel.slice(1);
    if (!existsSync(host) || (from.inContext && relToContext && req.context.ignored(relToContext))) {
      throw konductorError('KDR_IMAGES_COPY_SOURCE', `${where}: COPY source ${s} not found`);
    }
    const filter = from.inContext
      ? (r: string) => !req.context.ignored(relToContext ? `${relToContext}/${r}` : r)
      : () => true;
    const isDir = lstatSync(host).isDirectory();
    let target: string;
    if (isDir) target = mkdirInRoot(st.root, dest, owner);
    else {
      const existingDir =
        existsSync(resolveInRoot(st.root, dest)) && lstatSync(resolveInRoot(st.root, dest)).isDirectory();
      if (destIsDir || existingDir) target = join(mkdirInRoot(st.root, dest, owner), posix.basename(rel));
      else {
        mkdirInRoot(st.root, posix.dirname(dest), owner);
        target = join(resolveInRoot(st.root, posix.dirname(dest)), posix.basename(dest));
      }
    }
    if (isDir) {
      for (const n of readdirSync(host).sort()) {
        if (!filter(n)) continue;
        copyInto(join(host, n), join(target, n), owner, (r) => filter(`${n}/${r}`));
      }
    } else copyInto(host, target, owner);
  }
}
