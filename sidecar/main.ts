/**
 * konductor-agent: the process injected into pods (DESIGN §4).
 *   konductor-agent wait   init container `konductor-wait`: block until granted, write grant.json
 *   konductor-agent hold   native sidecar `konductor-hold`: idle; release on SIGTERM
 * Bundled by scripts/build.ts into dist/konductor-agent.js; keep imports to node builtins and api/.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { isKonductorError } from '../api/errors.ts';
import { setLongTimeout } from '../api/longTimer.ts';
import { createAgentClient, readToken } from './agentClient.ts';
import { AGENT_ENV, type AgentConfig, parseAgentConfig } from './config.ts';
import { runHold } from './hold.ts';
import { runWait, WAIT_STARTED_FILE, waitBeganAt, writeGrantFileAtomically } from './wait.ts';
import { EXIT_MISCONFIGURED } from './waitProgress.ts';

/** Replaced at build time by scripts/build.ts (package.json version). */
declare const KONDUCTOR_AGENT_VERSION: string | undefined;

const AGENT_VERSION: string =
  typeof KONDUCTOR_AGENT_VERSION === 'string' ? KONDUCTOR_AGENT_VERSION : '0.0.0-dev';

const USAGE = `usage: konductor-agent <wait|hold> | --help | --version

  wait   init container konductor-wait: waits until the konductor manager grants the pod every primitive
         its konductor.io/ annotations ask for, prints progress, writes grant.json, exits 0
         (exit 1: the wait failed, 2: konductor.io/wait-timeout reached, 3: misconfiguration)
  hold   native sidecar konductor-hold: idles while the pod runs; on SIGTERM asks the manager to release
         the pod's grants, then exits 0

environment (injected by the konductor webhook):
  ${AGENT_ENV.url}              https base URL of the manager's agent API
  ${AGENT_ENV.caBundle}        PEM of the CA that signed the manager's certificate
  ${AGENT_ENV.podName}, ${AGENT_ENV.podNamespace}, ${AGENT_ENV.podUid}
  ${AGENT_ENV.waitTimeout}     optional, milliseconds (konductor.io/wait-timeout)
  ${AGENT_ENV.runDir}          optional, default /var/run/konductor (grant.json)
  ${AGENT_ENV.tokenFile}       optional, default /var/run/secrets/konductor/token
`;

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const mode = argv[0];
  if (mode === '--help' || mode === '-h' || mode === 'help') {
    out(USAGE);
    return 0;
  }
  if (mode === '--version' || mode === '-v' || mode === 'version') {
    out(`konductor-agent ${AGENT_VERSION}`);
    return 0;
  }
  if (mode !== 'wait' && mode !== 'hold') {
    err(
      mode === undefined
        ? 'konductor-agent: missing mode'
        : `konductor-agent: unknown mode ${JSON.stringify(mode)}`,
    );
    err(USAGE);
    return EXIT_MISCONFIGURED;
  }
  let config: AgentConfig;
  try {
    config = parseAgentConfig(env);
  } catch (e) {
    err(`konductor-${mode}: ${isKonductorError(e) ? e.message : String(e)}`);
    return EXIT_MISCONFIGURED;
  }
  const client = createAgentClient({ url: config.url, caBundle: config.caBundle });
  const token = () => readToken(config.tokenFile);
  const now = () => performance.now();
  if (mode === 'wait') {
    return runWait(config, {
      client,
      readToken: token,
      writeGrantFile: (content) => writeGrantFileAtomically(config.grantFile, content),
      out,
      err,
      now,
      random: Math.random,
      sleep: (ms, signal) => delay(ms, undefined, { signal }).catch(() => {}),
      setTimer: (ms, fire) => setLongTimeout(fire, ms),
      wallClock: () => Date.now(),
      waitBeganAt: () => waitBeganAt(`${config.runDir}/${WAIT_STARTED_FILE}`, Date.now()),
    });
  }
  return runHold(config, {
    client,
    readToken: token,
    out,
    err,
    now,
    sleep: (ms) => delay(ms),
    untilStopSignal: () =>
      new Promise((resolve) => {
        const onSignal = (signal: NodeJS.Signals) => {
          // A second signal while releasing changes nothing: the release has its own short deadline.
          process.on('SIGTERM', () => {}).on('SIGINT', () => {});
          resolve(signal);
        };
        process.once('SIGTERM', onSignal).once('SIGINT', onSignal);
      }),
    // A ref'd interval at the longest period node allows (~24.8 days): keeps the event loop alive while
    // waking the CPU once every few weeks at most. Signal handlers alone do not keep node running.
    keepAlive: () => {
      const timer = setInterval(() => {}, 2 ** 31 - 1);
      return () => clearInterval(timer);
    },
  });
}

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (e: unknown) => {
    err(`konductor-agent: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(EXIT_MISCONFIGURED);
  },
);
