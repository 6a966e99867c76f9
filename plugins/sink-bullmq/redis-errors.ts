import { LinegateError, messageOf } from '../../runtime/errors.js';

/*
 * What a Redis failure means for the operator. A refused password is not
 * "Redis is away": waiting will not fix it, and saying "unreachable" sends
 * people to the network instead of the password. Redis's own words for it
 * never contain the password, so they can be shown.
 */

/** WRONGPASS (a wrong password or user), NOAUTH (none given where one is needed), and older servers' wording. */
const AUTH = /^(WRONGPASS|NOAUTH)\b|invalid password|invalid username-password/i;

export function isAuthRefusal(e: unknown): boolean {
  if (e instanceof LinegateError) return e.code === 'LG_ERR_QUEUE_AUTH';
  return AUTH.test(messageOf(e));
}

/** The URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable Redis URL)';
  }
}

/** `message` with the URL's password (and its URL-encoded form) masked: an error must never carry it. */
export function scrub(message: string, url: string): string {
  let password = '';
  try {
    password = new URL(url).password;
  } catch {
    return message;
  }
  if (password === '') return message;
  let out = message;
  for (const p of new Set([password, decodeURIComponent(password)])) out = out.split(p).join('***');
  return out;
}

/** The coded error for a failure talking to Redis at `url`: LG_ERR_QUEUE_AUTH for a refused password, else LG_ERR_QUEUE_REDIS. */
export function redisError(url: string, e: unknown): LinegateError {
  if (e instanceof LinegateError && (e.code === 'LG_ERR_QUEUE_AUTH' || e.code === 'LG_ERR_QUEUE_REDIS')) return e;
  const why = scrub(messageOf(e), url);
  if (isAuthRefusal(e)) return new LinegateError('LG_ERR_QUEUE_AUTH', [redactUrl(url), why]);
  return new LinegateError('LG_ERR_QUEUE_REDIS', [redactUrl(url), why]);
}
