// The station's HTTP API, as the page reads it: same origin, JSON, bounded in time.

const TIMEOUT_MS = 8000;

export class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function getJson(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    const res = await fetch(path, { signal: ctl.signal, headers: { accept: 'application/json' }, cache: 'no-store' });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new HttpError(res.status, body?.error?.code ?? '', body?.error?.message ?? `${path}: HTTP ${res.status}`);
    return body;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The API's routes, from its OpenAPI document: the page asks only for what the station offers (a
 * station without the deploy API has no /api/models), so no request is made to be refused.
 */
export async function routes() {
  const doc = await getJson('/api/openapi.json');
  return new Set(Object.keys(doc?.paths ?? {}));
}

export const imageUrl = (r, overlay = false) => `/api/results/${encodeURIComponent(r.resultId)}/image${overlay ? '?overlay=1' : ''}`;

/** Whether the station likely keeps the part's image: archived (sha256), or a file it read (an absolute path). */
export function hasImage(r) {
  return r.frame?.sha256 !== undefined || /^([A-Za-z]:)?[\\/]/.test(r.frame?.ref ?? '');
}

/**
 * Whether the part is in the history yet. The stream tells of a part as it is decided; the history
 * stores it a moment later (a background lane), and its image route answers 404 until then.
 */
export function stored(r, state) {
  if (r.stored === true) return true;
  const at = r.time.decidedAt;
  const newest = state.summary?.window.newest;
  return (typeof newest === 'string' && at <= newest) || (state.storedUntil !== null && at <= state.storedUntil);
}
