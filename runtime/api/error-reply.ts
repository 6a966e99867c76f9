import { LinegateError, LinegateErrors, isLinegateError, messageOf } from '../errors.js';
import type { ErrorBody } from './schemas.js';

/** What the API answers for anything thrown: a coded error's own status, else a 500 (the cause goes to the log only). */
export function errorReply(e: unknown, what: string): { readonly status: number; readonly body: ErrorBody; readonly internal: boolean } {
  if (e instanceof LinegateErrors && e.errors.length > 0) {
    const first = e.errors[0]!;
    return { status: first.httpStatus, body: bodyOf(first, e.errors.map((x) => `${x.code}: ${x.message}`)), internal: false };
  }
  const known = isLinegateError(e) ? e : fromFramework(e, what);
  if (known !== undefined) return { status: known.httpStatus, body: bodyOf(known), internal: known.httpStatus >= 500 && known.code === 'LG_ERR_API_INTERNAL' };
  const internal = new LinegateError('LG_ERR_API_INTERNAL', [what, 'see the station log']);
  return { status: 500, body: bodyOf(internal), internal: true };
}

function bodyOf(e: LinegateError, issues?: readonly string[]): ErrorBody {
  return { error: { code: e.code, message: e.message, retryable: e.retryable, ...(issues === undefined ? {} : { issues: [...issues] }) } };
}

/** fastify's own errors (bad JSON, body too large, unknown media type) as coded errors. */
function fromFramework(e: unknown, what: string): LinegateError | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const { code, statusCode } = e as { code?: unknown; statusCode?: unknown };
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' || statusCode === 413) return new LinegateError('LG_ERR_API_TOO_LARGE', [limitOf(e)]);
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || statusCode === 415) return new LinegateError('LG_ERR_API_MEDIA_TYPE', [headerOf(e), what, 'see /api/openapi.json']);
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) return new LinegateError('LG_ERR_API_BAD_REQUEST', [what, messageOf(e)]);
  return undefined;
}

const limitOf = (e: object): number => {
  const m = /(\d+)/.exec(messageOf(e));
  return m === null ? 0 : Number(m[1]);
};
const headerOf = (e: object): string => /: (.+)$/.exec(messageOf(e))?.[1] ?? 'this content type';
