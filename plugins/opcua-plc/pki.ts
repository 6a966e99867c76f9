import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LinegateError, messageOf } from '../../runtime/errors.js';

/**
 * linegate's OPC UA PKI folder (node-opcua's layout): own/certs and
 * own/private for linegate's certificate (created at first start),
 * trusted/certs for the PLC certificates linegate accepts, rejected/ for the
 * ones it met and refused (move one to trusted/ to trust it).
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

/** Trusts a PLC's certificate (PEM or DER): it is stored, as DER, in trusted/certs. */
export async function trustCertificate(pkiDir: string, certFile: string): Promise<CertificateInfo> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(await readFile(certFile));
  } catch (e) {
    throw new LinegateError('LG_ERR_PLC_PKI', [pkiDir, `${certFile} is not a PEM or DER certificate: ${messageOf(e)}`], { cause: e });
  }
  const dir = path.join(pkiDir, 'trusted/certs');
  await mkdir(dir, { recursive: true });
  const target = path.join(dir, `${cert.fingerprint.replace(/:/g, '').toLowerCase()}.der`);
  await writeFile(target, cert.raw);
  return describe(target, Buffer.from(cert.toString()));
}
