import { LinegateError, messageOf } from '../../runtime/errors.js';

/**
 * Why linegate could not open its link to the PLC, from what node-opcua
 * threw, told in terms a plant engineer can act on. Pure: the error, the
 * security mode and the PKI folder in, a coded error out.
 *
 * What node-opcua 2.182 reports (measured against the simulated PLC):
 * - the PLC does not trust linegate's certificate: `connect()` rejects on the
 *   first try (no backoff, one `connection_failed` event) with "The connection
 *   has been rejected by server: BadSecurityChecksFailed (0x80130000)", the
 *   status also on `error.statusCode` and the server's ServiceFault on
 *   `error.response`; the server files linegate's certificate in its rejected/.
 *   A server that closes the channel without that fault gives "The connection
 *   may have been rejected by server, Err = (... socket has been disconnected
 *   by third party)" instead, also at once.
 * - linegate does not trust the PLC's certificate: "server Certificate
 *   verification failed with err BadCertificateUntrusted", at once, the PLC's
 *   certificate filed in linegate's rejected/.
 * - nothing listening, or a peer that drops the TCP connection: every try is
 *   spent (`backoff` events), then "Fail to connect to server at ... (in
 *   findEndpoint) (err =premature disconnection ...)".
 */

export interface LinkDiagnosis {
  readonly endpoint: string;
  readonly mode: 'None' | 'Sign' | 'SignAndEncrypt';
  /** linegate's PKI folder (absolute), named in the commands the message gives. */
  readonly pkiDir: string | undefined;
  readonly connectAttempts: number;
}

/** Status codes a server gives when it refuses the client's application certificate. */
const CERTIFICATE_REFUSED = new Set([
  'BadSecurityChecksFailed',
  'BadCertificateUntrusted',
  'BadCertificateInvalid',
  'BadCertificateTimeInvalid',
  'BadCertificateIssuerTimeInvalid',
  'BadCertificateHostNameInvalid',
  'BadCertificateUriInvalid',
  'BadCertificateUseNotAllowed',
  'BadCertificateIssuerUseNotAllowed',
  'BadCertificateRevoked',
  'BadCertificateIssuerRevoked',
  'BadCertificateRevocationUnknown',
  'BadCertificateIssuerRevocationUnknown',
  'BadCertificateChainIncomplete',
]);

/** The OPC UA status name the error carries: node-opcua's `statusCode` when set, else the first `Bad...` in its message. */
function statusOf(e: unknown): string | undefined {
  const code = (e as { statusCode?: { name?: unknown } } | null)?.statusCode?.name;
  if (typeof code === 'string') return code;
  return /\b(Bad[A-Za-z]+)\b/.exec(messageOf(e))?.[1];
}

const showCommand = (pkiDir: string | undefined): string => `linegate pki show${pkiDir === undefined ? '' : ` --pki ${pkiDir}`}`;

/** What to do when the PLC refuses linegate's certificate: the same steps whatever the PLC's stack. */
function trustOnPlc(pkiDir: string | undefined): string {
  return (
    `show linegate's certificate with \`${showCommand(pkiDir)}\` and trust it on the PLC: ` +
    "the PLC's OPC UA server keeps the certificates it refused in its rejected list " +
    "(a rejected/ folder in its PKI for node-opcua servers and `linegate plc-sim --pki <dir>`, the certificate manager of the PLC's engineering tool for others), " +
    'from where it is moved to the trusted list'
  );
}

function refusedCertificate(status: string, o: LinkDiagnosis, e: unknown): LinegateError {
  // Servers answer BadSecurityChecksFailed in place of the check that failed (node-opcua turns its own
  // BadCertificateUntrusted into it), so it is named as the likely cause, not as a certainty.
  const cause =
    status === 'BadSecurityChecksFailed'
      ? `it answered ${status} when linegate opened the ${o.mode} channel: most likely it does not trust linegate's certificate`
      : status === 'BadCertificateUntrusted'
        ? `it does not trust linegate's certificate (it answered ${status} when linegate opened the ${o.mode} channel)`
        : status === 'BadCertificateTimeInvalid'
          ? `it finds linegate's certificate expired or not yet valid (${status}): check both clocks, then the certificate's dates`
          : `it refused linegate's certificate (${status})`;
  return new LinegateError('LG_ERR_PLC_SESSION', [o.endpoint, `${cause}; ${trustOnPlc(o.pkiDir)}`], { cause: e });
}

/** The coded error for a failed `client.connect()`. */
export function diagnoseConnect(e: unknown, o: LinkDiagnosis): LinegateError {
  const why = messageOf(e);
  const status = statusOf(e);
  const secure = o.mode !== 'None';
  if (/server certificate verification failed/i.test(why) && status === 'BadCertificateUntrusted' && o.pkiDir !== undefined) {
    // linegate's side refused the PLC: the PLC's certificate now sits in linegate's rejected/.
    const hint = `; the PLC's certificate is not trusted: linegate pki trust <its certificate> --pki ${o.pkiDir} (node-opcua filed it in ${o.pkiDir}/rejected/)`;
    return new LinegateError('LG_ERR_PLC_CONNECT', [o.endpoint, o.connectAttempts, `${why}${hint}`], { cause: e });
  }
  if (secure && /rejected by server/i.test(why) && status !== undefined && CERTIFICATE_REFUSED.has(status)) return refusedCertificate(status, o, e);
  if (secure && /may have been rejected by server/i.test(why) && /disconnected by third party/i.test(why)) {
    // The TCP connection and the endpoint query worked (else node-opcua says "findEndpoint"): the PLC hung up at the secure channel.
    const cause = `it closed the connection while linegate opened the ${o.mode} channel, without saying why: most likely it does not trust linegate's certificate`;
    return new LinegateError('LG_ERR_PLC_SESSION', [o.endpoint, `${cause}; ${trustOnPlc(o.pkiDir)}`], { cause: e });
  }
  return new LinegateError('LG_ERR_PLC_CONNECT', [o.endpoint, o.connectAttempts, why], { cause: e });
}

/** The coded error for a failed `client.createSession()`: some servers check the application certificate only here. */
export function diagnoseSession(e: unknown, o: LinkDiagnosis): LinegateError {
  const status = statusOf(e);
  if (o.mode !== 'None' && status !== undefined && CERTIFICATE_REFUSED.has(status)) return refusedCertificate(status, o, e);
  return new LinegateError('LG_ERR_PLC_SESSION', [o.endpoint, messageOf(e)], { cause: e });
}
