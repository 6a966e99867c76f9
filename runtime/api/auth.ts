import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LinegateError, messageOf } from '../errors.js';
import type { Access } from './route.js';

const MIN_TOKEN_CHARS = 16;

/** Where the token came from, for the start-up log line (never the token itself). */
export interface TokenSource {
  readonly token: string | undefined;
  readonly from: 'LINEGATE_API_TOKEN' | 'api.tokenFile' | 'none';
  /** The file a token was just generated into (api.generateToken), for the start-up log line. */
  readonly generated?: string;
}

/**
 * The API token: LINEGATE_API_TOKEN, else the file `tokenFile` names (relative to the station root),
 * never the station file itself. Read once at start; a token that cannot be read or is too short
 * to be a secret stops the start (a station that silently runs without its token would leave its
 * write routes off, or worse, guarded by a guessable word).
 */
export async function loadToken(env: Readonly<Record<string, string | undefined>>, tokenFile: string | undefined, root: string, generate = false): Promise<TokenSource> {
  const fromEnv = env.LINEGATE_API_TOKEN;
  if (fromEnv !== undefined && fromEnv !== '') return { token: checked(fromEnv.trim(), 'LINEGATE_API_TOKEN'), from: 'LINEGATE_API_TOKEN' };
  if (tokenFile === undefined) return { token: undefined, from: 'none' };
  const file = path.resolve(root, tokenFile);
  if (generate) {
    // First start of a demo or a new station: a random token only the station's user can read. 'wx': an existing
    // file is never overwritten (a token someone already uses stays valid), it is read below like any other.
    const token = randomBytes(32).toString('base64url');
    const written = await mkdir(path.dirname(file), { recursive: true })
      .then(() => writeFile(file, `${token}\n`, { flag: 'wx', mode: 0o600 }))
      .then(
        () => true,
        (e: NodeJS.ErrnoException) => {
          if (e.code === 'EEXIST') return false;
          throw new LinegateError('LG_ERR_API_TOKEN', [`api.tokenFile ${file}`, `could not write a new token: ${messageOf(e)}`], { path: 'api.tokenFile', cause: e });
        },
      );
    if (written) return { token, from: 'api.tokenFile', generated: file };
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new LinegateError('LG_ERR_API_TOKEN', [`api.tokenFile ${file}`, messageOf(e)], { path: 'api.tokenFile' });
  }
  return { token: checked(text.trim(), `api.tokenFile ${file}`), from: 'api.tokenFile' };
}

function checked(token: string, from: string): string {
  if (token.length < MIN_TOKEN_CHARS) throw new LinegateError('LG_ERR_API_TOKEN', [from, `it is ${token.length} characters; at least ${MIN_TOKEN_CHARS} are needed`]);
  return token;
}

/** Decides, per request, whether a route may run; compares tokens in constant time. */
export class Gate {
  readonly #digest: Buffer | undefined;
  readonly #readsNeedToken: boolean;

  constructor(token: string | undefined, auth: 'writes' | 'all') {
    // Equal-length digests: timingSafeEqual needs equal lengths, and the token's length must not leak either.
    this.#digest = token === undefined ? undefined : digest(token);
    this.#readsNeedToken = auth === 'all';
  }

  get writesOn(): boolean {
    return this.#digest !== undefined;
  }

  /** Throws the coded error the request gets; returns when it may go on. */
  check(access: Access, authorization: string | undefined, what: string): void {
    if (access === 'open') return;
    if (access === 'read' && !this.#readsNeedToken) return;
    if (this.#digest === undefined) {
      if (access === 'write') throw new LinegateError('LG_ERR_API_WRITES_OFF', [what]);
      // auth: all without a token: nothing could ever pass, which is what was asked for.
      throw new LinegateError('LG_ERR_API_UNAUTHORIZED', [what]);
    }
    const m = /^Bearer ([\x21-\x7e]{1,1024})$/.exec(authorization ?? '');
    if (m === null || !timingSafeEqual(digest(m[1]!), this.#digest)) throw new LinegateError('LG_ERR_API_UNAUTHORIZED', [what]);
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
