import { beforeAll, describe, expect, it } from 'vitest';
import { GRANT_FILE, SHARED_MOUNT_PATH, TOKEN_FILE } from '../../api/constants.ts';
import { KonductorError } from '../../api/errors.ts';
import { generateCA } from '../../certs/generate.ts';
import { AGENT_CONFIG_INVALID, parseAgentConfig } from '../../sidecar/config.ts';

let PEM = '';
let ENV: Record<string, string> = {};
beforeAll(async () => {
  PEM = (await generateCA({ commonName: 'test-ca', validityDays: 1 })).certPem;
  ENV = {
    KONDUCTOR_URL: 'https://konductor.konductor-system.svc:9443/',
    KONDUCTOR_CA_BUNDLE: PEM,
    KONDUCTOR_POD_NAME: 'job-a-x1',
    KONDUCTOR_POD_NAMESPACE: 'default',
    KONDUCTOR_POD_UID: 'uid-1',
  };
});

function errorOf(env: Record<string, string | undefined>): KonductorError {
  try {
    parseAgentConfig(env);
  } catch (err) {
    if (err instanceof KonductorError) return err;
    throw err;
  }
  throw new Error('parseAgentConfig accepted the environment');
}

describe('parseAgentConfig', () => {
  it('reads the injected environment with the default paths', () => {
    expect(parseAgentConfig(ENV)).toEqual({
      url: 'https://konductor.konductor-system.svc:9443',
      caBundle: PEM.trim(),
      podName: 'job-a-x1',
      podNamespace: 'default',
      podUid: 'uid-1',
      waitTimeoutMs: undefined,
      runDir: SHARED_MOUNT_PATH,
      tokenFile: TOKEN_FILE,
      grantFile: GRANT_FILE,
    });
  });

  it('accepts a bundle of several CAs (rollover keeps the previous one)', () => {
    expect(parseAgentConfig({ ...ENV, KONDUCTOR_CA_BUNDLE: `${PEM}${PEM}` }).caBundle).toContain(PEM.trim());
  });

  it('takes the run dir, token file and wait timeout overrides', () => {
    const config = parseAgentConfig({
      ...ENV,
      KONDUCTOR_RUN_DIR: '/tmp/run/',
      KONDUCTOR_TOKEN_FILE: '/tmp/token',
      KONDUCTOR_WAIT_TIMEOUT: '30000',
    });
    expect(config).toMatchObject({
      runDir: '/tmp/run',
      grantFile: '/tmp/run/grant.json',
      tokenFile: '/tmp/token',
      waitTimeoutMs: 30_000,
    });
    expect(parseAgentConfig({ ...ENV, KONDUCTOR_WAIT_TIMEOUT: '0' }).waitTimeoutMs).toBeUndefined();
    expect(parseAgentConfig({ ...ENV, KONDUCTOR_POD_UID: undefined }).podUid).toBe('');
  });

  it.each(['KONDUCTOR_URL', 'KONDUCTOR_CA_BUNDLE', 'KONDUCTOR_POD_NAME', 'KONDUCTOR_POD_NAMESPACE'])(
    'names %s when it is missing or blank',
    (name) => {
      for (const value of [undefined, '', '  ']) {
        const err = errorOf({ ...ENV, [name]: value });
        expect(err.code).toBe(AGENT_CONFIG_INVALID);
        expect(err.message).toContain(name);
      }
    },
  );

  it('rejects a non-https URL, a non-PEM bundle and a malformed timeout', () => {
    expect(errorOf({ ...ENV, KONDUCTOR_URL: 'http://konductor:9443' }).message).toMatch(
      /KONDUCTOR_URL.*https/,
    );
    expect(errorOf({ ...ENV, KONDUCTOR_URL: 'not a url' }).message).toContain('KONDUCTOR_URL');
    expect(errorOf({ ...ENV, KONDUCTOR_CA_BUNDLE: 'garbage' }).message).toContain('KONDUCTOR_CA_BUNDLE');
    const broken = `${PEM}\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n`;
    expect(errorOf({ ...ENV, KONDUCTOR_CA_BUNDLE: broken }).message).toMatch(
      /KONDUCTOR_CA_BUNDLE: certificate 2 of 2 does not parse/,
    );
    for (const bad of ['30s', '-5', '1.5', '1e3']) {
      expect(errorOf({ ...ENV, KONDUCTOR_WAIT_TIMEOUT: bad }).message).toContain('KONDUCTOR_WAIT_TIMEOUT');
    }
  });
});
