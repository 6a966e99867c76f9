import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedPlc } from '../../plugins/opcua-plc/sim.js';
import { opcuaPlc } from '../../plugins/opcua-plc/index.js';
import { defaultTagMap } from '../../plugins/opcua-plc/tags.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';
import { showOwnCertificate, trustCertificate } from '../../plugins/opcua-plc/pki.js';
import { capturingLog } from '../helpers/station.js';
import { PlcTestbed } from '../helpers/plc.js';

/** Everything over loopback: linegate's client against a real OPC UA server playing the PLC. Tag maps and security here; the handshake in opcua-plc.test.ts. */

const bed = new PlcTestbed();
afterEach(() => bed.closeAll());
const sim = (options: Parameters<PlcTestbed['sim']>[0] = {}): Promise<SimulatedPlc> => bed.sim(options);

describe('tag maps as PLCs have them', () => {
  /** A sink in free-run against a PLC whose handshake block is DB_Vision in namespace 3 (a Siemens S7-1500's usual index). */
  async function writeThrough(tags: unknown, log = capturingLog().log): Promise<{ plc: SimulatedPlc; error?: { code: string; message: string } }> {
    const plc = await sim({ tags: defaultTagMap(3, 'DB_Vision') });
    const ctx = { ...contextFor(new AbortController().signal), log };
    try {
      const sink = await opcuaPlc.init(opcuaPlc.manifest.config.parse({ endpoint: plc.endpoint, mode: 'free-run', tags }), ctx);
      try {
        await sink.write(sampleResult({ partId: 'NS-1' }), ctx);
      } finally {
        await sink.close?.();
      }
      return { plc };
    } catch (e) {
      return { plc, error: e as { code: string; message: string } };
    }
  }

  it('takes a data block by namespace index and block name instead of 15 NodeIds', async () => {
    const { plc, error } = await writeThrough({ namespace: 3, block: 'DB_Vision' });
    expect(error).toBeUndefined();
    expect(plc.read('resultPartId')).toBe('NS-1');
  });

  it('takes the namespace by URI, and nsu= NodeIds, resolved at connect', async () => {
    const byUri = await writeThrough({ namespace: 'urn:linegate:plc-sim:ns3', block: 'DB_Vision' });
    expect(byUri.error).toBeUndefined();
    expect(byUri.plc.read('resultPartId')).toBe('NS-1');
    const nsu = await writeThrough(defaultTagMap('urn:linegate:plc-sim:ns3', 'DB_Vision'));
    expect(nsu.error).toBeUndefined();
    expect(nsu.plc.read('resultPartId')).toBe('NS-1');
  });

  it('names a namespace URI the PLC does not have, with the ones it has', async () => {
    const { error } = await writeThrough({ namespace: 'urn:acme:no-such-namespace', block: 'DB_Vision' });
    expect(error?.code).toBe('LG_ERR_PLC_NAMESPACE');
    expect(error?.message).toContain('urn:acme:no-such-namespace');
    expect(error?.message).toContain('3: urn:linegate:plc-sim:ns3');
  });

  it('says at start what an optional tag left out turns off, and still runs', async () => {
    const { log, entries } = capturingLog();
    const { plc, error } = await writeThrough({ namespace: 3, block: 'DB_Vision', omit: ['plcHeartbeat', 'score'] }, log);
    expect(error).toBeUndefined();
    expect(plc.read('resultPartId')).toBe('NS-1');
    const warned = entries().filter((e) => e.msg?.startsWith('the tag map has no'));
    expect(warned.map((e) => e.msg)).toEqual([
      'the tag map has no plcHeartbeat: linegate runs without the PLC watchdog: a PLC in STOP whose OPC UA server still answers is not noticed',
      'the tag map has no score: linegate runs without the defect score with each verdict',
    ]);
  });
});

describe('core/opcua-plc@1 security', () => {
  const users = [{ username: 'vision', password: 's3cret-pw' }];
  type Mode = 'Sign' | 'SignAndEncrypt';
  type Policy = 'Basic256Sha256' | 'Aes128_Sha256_RsaOaep';
  // The PLC offers only the one mode and policy: a client that fell back to another would fail.
  const secureSim = (accept = true, mode: Mode = 'SignAndEncrypt', policy: Policy = 'Basic256Sha256') =>
    sim({ security: { allowAnonymous: false, users, modes: [mode], policies: [policy], automaticallyAcceptUnknownCertificate: accept } });
  const config = (endpoint: string, pki: string, passwordEnv: string, mode: Mode = 'SignAndEncrypt', policy: Policy = 'Basic256Sha256') =>
    opcuaPlc.manifest.config.parse({
      endpoint,
      mode: 'free-run',
      connectAttempts: 2,
      connectDelayMs: 200,
      security: { mode, policy, pki },
      user: { username: { env: 'LG_TEST_PLC_USER' }, password: { env: passwordEnv } },
    });

  afterEach(() => {
    delete process.env.LG_TEST_PLC_USER;
    delete process.env.LG_TEST_PLC_PASSWORD;
    delete process.env.LG_TEST_PLC_WRONG;
  });

  it.each<[Mode, Policy]>([
    ['SignAndEncrypt', 'Basic256Sha256'],
    ['SignAndEncrypt', 'Aes128_Sha256_RsaOaep'],
    ['Sign', 'Aes128_Sha256_RsaOaep'],
  ])('works with %s, %s and a username from the environment, once the PLC certificate is trusted', async (mode, policy) => {
    const plc = await secureSim(true, mode, policy);
    const pki = scratch('lg-pki-');
    await trustCertificate(pki, plc.certificateFile);
    process.env.LG_TEST_PLC_USER = 'vision';
    process.env.LG_TEST_PLC_PASSWORD = 's3cret-pw';
    const ctx = contextFor(new AbortController().signal);
    const sink = await opcuaPlc.init(config(plc.endpoint, pki, 'LG_TEST_PLC_PASSWORD', mode, policy), ctx);
    try {
      await sink.write(sampleResult({ partId: 'SEC-1' }), ctx);
      expect(plc.read('resultPartId')).toBe('SEC-1');
      // linegate made its own certificate in its PKI at first start; `linegate pki show` reads it
      expect((await showOwnCertificate(pki)).subjectAltName).toContain(':linegate');
    } finally {
      await sink.close?.();
    }
  });

  it('reads the username and password from files (first line), as a secrets mount provides them', async () => {
    const plc = await secureSim(true, 'Sign', 'Basic256Sha256');
    const pki = scratch('lg-pki-');
    await trustCertificate(pki, plc.certificateFile);
    const secrets = scratch('lg-secrets-');
    writeFileSync(path.join(secrets, 'user'), 'vision\n');
    writeFileSync(path.join(secrets, 'password'), 's3cret-pw\r\n');
    const ctx = contextFor(new AbortController().signal);
    const sink = await opcuaPlc.init(
      opcuaPlc.manifest.config.parse({
        endpoint: plc.endpoint,
        mode: 'free-run',
        security: { mode: 'Sign', policy: 'Basic256Sha256', pki },
        user: { username: { file: path.join(secrets, 'user') }, password: { file: path.join(secrets, 'password') } },
      }),
      ctx,
    );
    try {
      await sink.write(sampleResult({ partId: 'FILE-1' }), ctx);
      expect(plc.read('resultPartId')).toBe('FILE-1');
    } finally {
      await sink.close?.();
    }
  });

  it('refuses a wrong password with a clear error that does not contain the password', async () => {
    const plc = await secureSim();
    const pki = scratch('lg-pki-');
    await trustCertificate(pki, plc.certificateFile);
    process.env.LG_TEST_PLC_USER = 'vision';
    process.env.LG_TEST_PLC_WRONG = 'not-the-password';
    const err = await opcuaPlc.init(config(plc.endpoint, pki, 'LG_TEST_PLC_WRONG'), contextFor(new AbortController().signal)).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).toBe('LG_ERR_PLC_SESSION');
    expect(err?.message).toMatch(/BadUserAccessDenied|BadIdentityTokenRejected|BadIdentityTokenInvalid/);
    expect(err?.message).not.toContain('not-the-password');
  });

  it('refuses a PLC whose certificate linegate does not trust', async () => {
    const plc = await secureSim();
    process.env.LG_TEST_PLC_USER = 'vision';
    process.env.LG_TEST_PLC_PASSWORD = 's3cret-pw';
    const err = await opcuaPlc.init(config(plc.endpoint, scratch('lg-pki-'), 'LG_TEST_PLC_PASSWORD'), contextFor(new AbortController().signal)).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).toBe('LG_ERR_PLC_CONNECT');
    expect(err?.message).toContain('BadCertificateUntrusted');
    expect(err?.message).toContain('linegate pki trust');
  });

  it('names the missing variable when the password is not in the environment', async () => {
    const plc = await secureSim();
    process.env.LG_TEST_PLC_USER = 'vision';
    await expect(opcuaPlc.init(config(plc.endpoint, scratch('lg-pki-'), 'LG_TEST_PLC_PASSWORD'), contextFor(new AbortController().signal))).rejects.toMatchObject({
      code: 'LG_ERR_PLC_CREDENTIALS',
      message: expect.stringContaining('LG_TEST_PLC_PASSWORD is not set'),
    });
  });
});
