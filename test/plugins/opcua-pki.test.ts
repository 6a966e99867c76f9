import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { diagnoseConnect, diagnoseSession, type LinkDiagnosis } from '../../plugins/opcua-plc/diagnose.js';
import { opcuaPlc } from '../../plugins/opcua-plc/index.js';
import { ownCertificateFile, showOwnCertificate, trustCertificate } from '../../plugins/opcua-plc/pki.js';
import { SimulatedPlc } from '../../plugins/opcua-plc/sim.js';
import { linegate } from '../helpers/cli.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';

/** linegate's PKI against a PLC that checks certificates: the steps the README gives, end to end over loopback. */

const sims: SimulatedPlc[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()));
});

/** A PLC that offers only SignAndEncrypt, Basic256Sha256 (anonymous users allowed: certificates are what is under test). */
async function securePlc(acceptUnknownClients: boolean): Promise<SimulatedPlc> {
  const plc = await SimulatedPlc.start({
    port: 0,
    triggerRateHz: 0,
    addressSpace: 'minimal',
    security: { modes: ['SignAndEncrypt'], policies: ['Basic256Sha256'], automaticallyAcceptUnknownCertificate: acceptUnknownClients },
  });
  sims.push(plc);
  return plc;
}

/** A TCP relay to the PLC that counts the connections opened through it: each connect try opens its own. */
async function countingRelay(port: number): Promise<{ endpoint: string; connections: () => number; close: () => Promise<void> }> {
  let opened = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((downstream) => {
    opened++;
    const upstream = net.connect(port, '127.0.0.1');
    for (const [a, b] of [[downstream, upstream], [upstream, downstream]] as const) {
      open.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        open.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `opc.tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}/`,
    connections: () => opened,
    close: () => {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const sinkConfig = (endpoint: string, pki: string, o: { connectAttempts?: number; connectDelayMs?: number } = {}) =>
  opcuaPlc.manifest.config.parse({ endpoint, mode: 'free-run', connectAttempts: o.connectAttempts ?? 2, connectDelayMs: o.connectDelayMs ?? 200, security: { mode: 'SignAndEncrypt', policy: 'Basic256Sha256', pki } });

const failure = (p: Promise<unknown>): Promise<{ code: string; message: string; retryable: boolean } | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => e as { code: string; message: string; retryable: boolean },
  );

/** Connects, writes one result and checks the PLC got it: the link works. */
async function writesThrough(plc: SimulatedPlc, pki: string, partId: string): Promise<void> {
  const ctx = contextFor(new AbortController().signal);
  const sink = await opcuaPlc.init(sinkConfig(plc.endpoint, pki), ctx);
  try {
    await sink.write(sampleResult({ partId }), ctx);
    expect(plc.read('resultPartId')).toBe(partId);
  } finally {
    await sink.close?.();
  }
}

describe('linegate pki trust, following the README against a PLC linegate does not know yet', () => {
  it('takes every copy of the PLC certificate out of rejected/ (node-opcua reads it first), so the next start connects', async () => {
    const plc = await securePlc(true);
    const pki = scratch('lg-pki-');
    const first = await failure(opcuaPlc.init(sinkConfig(plc.endpoint, pki), contextFor(new AbortController().signal)));
    expect(first).toMatchObject({ code: 'LG_ERR_PLC_CONNECT', message: expect.stringContaining('BadCertificateUntrusted') });
    expect(first?.message).toContain(`linegate pki trust <its certificate> --pki ${pki}`);
    const rejected = path.join(pki, 'rejected');
    const filed = readdirSync(rejected);
    expect(filed).toHaveLength(1); // node-opcua's copy, `<CN>[<sha1>].pem`
    const plcCert = new X509Certificate(readFileSync(plc.certificateFile));
    expect(filed[0]).toContain(plcCert.fingerprint.replace(/:/g, '').toLowerCase());
    // Copies under names node-opcua would not choose, one DER and one PEM, and a certificate that is not the PLC's.
    writeFileSync(path.join(rejected, 'plc-export.der'), plcCert.raw);
    mkdirSync(path.join(rejected, 'certs'));
    writeFileSync(path.join(rejected, 'certs', 'from-tia.crt'), plcCert.toString());
    copyFileSync(ownCertificateFile(pki), path.join(rejected, 'someone-else.pem'));

    const trusted = await trustCertificate(pki, path.join(rejected, filed[0]!));
    await writesThrough(plc, pki, 'TRUSTED-1');

    expect([...trusted.removedFromRejected].sort()).toEqual([path.join(rejected, filed[0]!), path.join(rejected, 'certs', 'from-tia.crt'), path.join(rejected, 'plc-export.der')].sort());
    expect(readdirSync(rejected).sort()).toEqual(['certs', 'someone-else.pem']);
    expect(trusted).toMatchObject({ sha1: plcCert.fingerprint, file: path.join(pki, 'trusted/certs', `${plcCert.fingerprint.replace(/:/g, '').toLowerCase()}.der`) });
  });

  it('prints what it removed: the JSON on stdout lists it, and stderr says it', async () => {
    const plc = await securePlc(true);
    const pki = scratch('lg-pki-');
    mkdirSync(path.join(pki, 'rejected'));
    const copy = path.join(pki, 'rejected', 'plc[abc].pem');
    copyFileSync(plc.certificateFile, copy);
    const r = await linegate(['pki', 'trust', copy, '--pki', pki]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ removedFromRejected: [copy], sha1: new X509Certificate(readFileSync(plc.certificateFile)).fingerprint });
    expect(r.messages()).toContain(`removed from rejected/: ${copy}`);
    expect(existsSync(copy)).toBe(false);
  });
});

describe('a PLC that does not trust linegate', () => {
  it("is LG_ERR_PLC_SESSION on the first try, naming the cause, `linegate pki show` and the PLC's rejected list; trusting it there fixes it", async () => {
    const plc = await securePlc(false);
    const pki = scratch('lg-pki-');
    await trustCertificate(pki, plc.certificateFile);
    const relay = await countingRelay(plc.port);
    const err = await failure(opcuaPlc.init(sinkConfig(relay.endpoint, pki, { connectAttempts: 5, connectDelayMs: 100 }), contextFor(new AbortController().signal)));
    await relay.close();
    expect(err).toMatchObject({ code: 'LG_ERR_PLC_SESSION', retryable: false });
    expect(err?.message).toContain("does not trust linegate's certificate");
    expect(err?.message).toContain('BadSecurityChecksFailed');
    expect(err?.message).toContain(`\`linegate pki show --pki ${pki}\``);
    expect(err?.message).toContain('rejected/ folder');
    expect(err?.message).not.toContain('after 5 tries');
    // One try: the endpoint query and the refused secure channel, one connection each, not five rounds of them.
    expect(relay.connections()).toBe(2);
    // The PLC filed linegate's certificate in its rejected list, as the message says.
    const own = await showOwnCertificate(pki);
    const filed = readdirSync(plc.rejectedDir);
    expect(filed).toHaveLength(1);
    expect(new X509Certificate(readFileSync(path.join(plc.rejectedDir, filed[0]!))).fingerprint).toBe(own.sha1);
    // Doing what it says: trust linegate's certificate on the PLC, and the link works.
    await plc.trustClientCertificate(readFileSync(own.file));
    await writesThrough(plc, pki, 'TRUSTED-BY-PLC');
  });
});

describe('diagnoseConnect and diagnoseSession', () => {
  const secure: LinkDiagnosis = { endpoint: 'opc.tcp://plc:4840/', mode: 'SignAndEncrypt', pkiDir: '/srv/linegate/pki', connectAttempts: 5 };
  /** node-opcua's errors, in the shapes it throws them (see diagnose.ts). */
  const refused = Object.assign(new Error('The connection has been rejected by server: BadSecurityChecksFailed (0x80130000)'), { statusCode: { name: 'BadSecurityChecksFailed', value: 0x80130000 } });
  const hungUp = new Error('The connection may have been rejected by server,\n Err = (ClientTCP_transport1: socket has been disconnected by third party)');
  const dead = new Error("Fail to connect to server at opc.tcp://plc:4840/ to collect server's certificate (in findEndpoint) \n (err =premature disconnection 4)");
  const untrustedPlc = new Error('server Certificate verification failed with err BadCertificateUntrusted (0x801a0000)');

  it("reads the PLC's refusal of linegate's certificate as a session error with what to do, not as a connection to retry", () => {
    const e = diagnoseConnect(refused, secure);
    expect(e).toMatchObject({ code: 'LG_ERR_PLC_SESSION', retryable: false, cause: refused });
    expect(e.message).toBe(
      "the PLC at opc.tcp://plc:4840/ refused the session: it answered BadSecurityChecksFailed when linegate opened the SignAndEncrypt channel: most likely it does not trust linegate's certificate; " +
        "show linegate's certificate with `linegate pki show --pki /srv/linegate/pki` and trust it on the PLC: the PLC's OPC UA server keeps the certificates it refused in its rejected list " +
        "(a rejected/ folder in its PKI for node-opcua servers and `linegate plc-sim --pki <dir>`, the certificate manager of the PLC's engineering tool for others), from where it is moved to the trusted list",
    );
  });

  it('reads the status from the message when the error carries no status code', () => {
    expect(diagnoseConnect(new Error('The connection has been rejected by server: BadCertificateUntrusted (0x801a0000)'), secure).code).toBe('LG_ERR_PLC_SESSION');
    expect(diagnoseConnect(new Error('The connection has been rejected by server: BadCertificateTimeInvalid (0x80140000)'), secure).message).toContain('check both clocks');
  });

  it('takes a PLC hanging up at the secure channel for a likely trust problem, but only when security is on', () => {
    expect(diagnoseConnect(hungUp, secure)).toMatchObject({ code: 'LG_ERR_PLC_SESSION', message: expect.stringContaining('most likely it does not trust linegate') });
    expect(diagnoseConnect(hungUp, { ...secure, mode: 'None' })).toMatchObject({ code: 'LG_ERR_PLC_CONNECT', message: expect.not.stringContaining('pki show') });
    // A BadSecurityChecksFailed in mode None involves no certificate of linegate's.
    expect(diagnoseConnect(refused, { ...secure, mode: 'None' }).code).toBe('LG_ERR_PLC_CONNECT');
  });

  it('leaves a dead endpoint a retryable connection error naming the tries', () => {
    expect(diagnoseConnect(dead, secure)).toMatchObject({ code: 'LG_ERR_PLC_CONNECT', retryable: true, message: expect.stringContaining('after 5 tries') });
    expect(diagnoseConnect(dead, secure).message).not.toContain('pki');
  });

  it("tells linegate's own refusal of the PLC apart: the fix is `linegate pki trust`, on linegate's side", () => {
    const e = diagnoseConnect(untrustedPlc, secure);
    expect(e.code).toBe('LG_ERR_PLC_CONNECT');
    expect(e.message).toContain('linegate pki trust <its certificate> --pki /srv/linegate/pki');
    expect(e.message).toContain('/srv/linegate/pki/rejected/');
  });

  it('gives certificate advice for a session refused over the certificate, and the plain reason otherwise', () => {
    const atSession = Object.assign(new Error('CreateSession failed: BadCertificateUntrusted (0x801a0000)'), { statusCode: { name: 'BadCertificateUntrusted' } });
    expect(diagnoseSession(atSession, secure)).toMatchObject({ code: 'LG_ERR_PLC_SESSION', message: expect.stringContaining('linegate pki show --pki /srv/linegate/pki') });
    const password = new Error('ActivateSession failed: BadUserAccessDenied (0x801f0000)');
    expect(diagnoseSession(password, secure)).toMatchObject({ code: 'LG_ERR_PLC_SESSION', message: 'the PLC at opc.tcp://plc:4840/ refused the session: ActivateSession failed: BadUserAccessDenied (0x801f0000)' });
  });
});
