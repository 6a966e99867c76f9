/** Config keys whose values are secrets, whatever plugin uses them. */
const SECRET_KEY = /pass(word|phrase)?|secret|token|credential|private|api[-_]?key|^auth$|^key$/i;
/** userinfo in a URL (`redis://user:pass@host`): the whole userinfo goes. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi;

export const REDACTED = '[redacted]';

/**
 * A deep copy of `value` with secrets redacted: values under secret-looking keys, and credentials
 * inside URLs. Keeps the shape so an operator can still see what is configured.
 */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 32) return REDACTED; // a cycle or an absurd depth: nothing worth showing
  if (typeof value === 'string') return value.replace(URL_CREDENTIALS, `$1${REDACTED}@`);
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) && v !== undefined && v !== null && v !== false ? REDACTED : redact(v, depth + 1);
    return out;
  }
  if (typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') return String(value);
  return value;
}
