import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LinegateError, messageOf } from '../../runtime/errors.js';

/**
 * linegate's OPC UA PKI folder (node-opcua's layout): own/certs and
 * own/private for linegate's certificate (created at first start),
 * trusted/certs for the PLC certificates linegate accepts, rejected/ for the
 * ones it met and refused (`trustCertificate` moves one to trusted/).
 */
export const ownCertificateFile = (pkiDir: string): string => path.join(pkiDir, 'own/certs/client_certificate.pem');

export interface CertificateInfo {
  readonly file: string;
  readonly subject: string;
  readonly subjectAltName: string;
  readonly validFrom: string;
  readonly validTo: string;
  readonly sha1: string;
}

function describe(file: string, pem: Buffer): CertificateInfo {
  const c = new X509Certificate(pem);
  return { file, subject: c.subject, subjectAltName: c.subjectAltName ?? '', validFrom: c.validFrom, validTo: c.validTo, sha1: c.fingerprint };
}

/** linegate's own certificate, as a PLC engineer needs it to trust linegate on the PLC side. */
export async function showOwnCertificate(pkiDir: string): Promise<CertificateInfo> {
  const file = ownCertificateFile(pkiDir);
  try {
    return describe(file, await readFile(file));
  } catch (e) {
    throw new LinegateError('LG_ERR_PLC_PKI', [pkiDir, `no readable certificate at ${file} (it is made at the first secure start): ${messageOf(e)}`], { cause: e });
  }
}

export interface TrustResult extends CertificateInfo {
  /** The copies of the certificate that were in rejected/ and are gone now. */
  readonly removedFromRejected: readonly string[];
}

/**
 * Trusts a PLC's certificate (PEM or DER): it is stored, as DER, in
 * trusted/certs, and every copy of it in rejected/ is removed. node-opcua
 * looks in rejected/ before trusted/ (a certificate in both is rejected), and
 * it names its copy `<CN>[<sha1>].pem`, so copies are found by content, not name.
 */
export async function trustCertificate(pkiDir: string, certFile: string): Promise<TrustResult> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(await readFile(certFile));
  } catch (e) {
    throw new LinegateError('LG_ERR_PLC_PKI', [pkiDir, `${certFile} is not a PEM or DER certificate: ${messageOf(e)}`], { cause: e });
  }
  const dir = path.join(pkiDir, 'trusted/certs');
  await mkdir(dir, { recursive: true });
  const target = path.join(dir, `${cert.fingerprint.replace(/:/g, '').toLowerCase()}.der`);
  // Trusted first: should a removal below fail, nothing that was trusted is lost.
  await writeFile(target, cert.raw);
  const copies = await copiesIn(path.join(pkiDir, 'rejected'), cert);
  for (const file of copies) {
    try {
      await rm(file, { force: true });
    } catch (e) {
      throw new LinegateError('LG_ERR_PLC_PKI', [pkiDir, `${certFile} is now in trusted/certs, but its copy ${file} cannot be removed from rejected/, which node-opcua reads first: delete it by hand (${messageOf(e)})`], { cause: e });
    }
  }
  return { ...describe(target, Buffer.from(cert.toString())), removedFromRejected: copies };
}

/** Files under `dir` holding `cert` (same SHA-1 or SHA-256 fingerprint), PEM or DER, whatever their names; other files are left alone. */
async function copiesIn(dir: string, cert: X509Certificate): Promise<string[]> {
  const names = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  const found: string[] = [];
  for (const name of names.sort()) {
    const file = path.join(dir, name);
    let other: X509Certificate;
    try {
      other = new X509Certificate(await readFile(file));
    } catch {
      continue; // a folder, or not a certificate: not ours to judge
    }
    if (other.fingerprint256 === cert.fingerprint256 || other.fingerprint === cert.fingerprint) found.push(file);
  }
  return found;
}
