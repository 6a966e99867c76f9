import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LinegateError, LinegateErrors, messageOf } from '../errors.js';
import type { Access } from './route.js';

const MIN_TOKEN_CHARS = 16;
/** What an Authorization header can carry (the Gate's pattern): a longer or odd token could never pass. */
const TOKEN_CHARS = /^[\x21-\x7e]{1,1024}$/;
const TOKEN_NAME = /^[A-Za-z0-9_.@-]{1,64}$/;

/** A token and the name a deploy journal records for whoever sent it; the token itself is never logged. */
export interface NamedToken {
  readonly name: string;
  readonly token: string;
}

/** Where the tokens came from, for the start-up log line (names only, never a token). */
export interface TokenSource {
  /** Empty: no token configured (state-changing routes are off). */
  readonly tokens: readonly NamedToken[];
  readonly from: 'LINEGATE_API_TOKEN' | 'api.tokenFile' | 'none';
  /** The file a token was just generated into (api.generateToken), for the start-up log line. */
  readonly generated?: string;
}

/**
 * The API tokens: LINEGATE_API_TOKEN (one token, named `env`), else the file `tokenFile` names
 * (relative to the station root), never the station file itself. The file holds one token a line,
 * `<name> <token>`, or a bare token (named `default`, the format generateToken writes); `#` lines
 * and blank lines are skipped. Read once at start; a file that cannot be read, or a token that is
 * too short to be a secret, stops the start (a station that silently runs without its token would
 * leave its write routes off, or worse, guarded by a guessable word).
 */
export async function loadToken(env: Readonly<Record<string, string | undefined>>, tokenFile: string | undefined, root: string, generate = false): Promise<TokenSource> {
  const fromEnv = env.LINEGATE_API_TOKEN;
  if (fromEnv !== undefined && fromEnv !== '') return { tokens: [{ name: 'env', token: checked(fromEnv.trim(), 'LINEGATE_API_TOKEN') }], from: 'LINEGATE_API_TOKEN' };
  if (tokenFile === undefined) return { tokens: [], from: 'none' };
  const file = path.resolve(root, tokenFile);
  if (generate) {
    // First start of a demo or a new station: a random token only the station's user can read. 'wx': an existing
    // file is never overwritten (a token someone already uses stays valid), it is read below like any other.
    // A bare token line (named `default`): `$(cat tokenFile)` stays a working LINEGATE_API_TOKEN.
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
    if (written) return { tokens: [{ name: 'default', token }], from: 'api.tokenFile', generated: file };
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new LinegateError('LG_ERR_API_TOKEN', [`api.tokenFile ${file}`, messageOf(e)], { path: 'api.tokenFile' });
  }
  return { tokens: parseTokenFile(text, `api.tokenFile ${file}`), from: 'api.tokenFile' };
}

/** The tokens of a token file; every problem is named by its line (never by the token). */
export function parseTokenFile(text: string, from: string): NamedToken[] {
  const tokens: NamedToken[] = [];
  const problems: LinegateError[] = [];
  const problem = (line: number, why: string): void => void problems.push(new LinegateError('LG_ERR_API_TOKEN', [`${from} line ${line}`, why], { path: 'api.tokenFile' }));
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    if (fields.length > 2) return problem(i + 1, `${fields.length} fields; a line is "<name> <token>" or a bare token`);
    const [name, token] = fields.length === 1 ? ['default', fields[0]!] : [fields[0]!, fields[1]!];
    if (!TOKEN_NAME.test(name)) return problem(i + 1, `the name "${name.slice(0, 64)}" is not 1-64 of A-Z a-z 0-9 _ . @ -`);
    if (tokens.some((t) => t.name === name)) return problem(i + 1, `the name "${name}" is used twice (a bare token is named "default")`);
    const why = tokenProblem(token);
    if (why !== undefined) return problem(i + 1, why);
    if (tokens.some((t) => t.token === token)) return problem(i + 1, `token "${name}" is the same as token "${tokens.find((t) => t.token === token)!.name}"; each must be its own`);
    tokens.push({ name, token });
  });
  if (problems.length === 0 && tokens.length === 0) problems.push(new LinegateError('LG_ERR_API_TOKEN', [from, 'it holds no token'], { path: 'api.tokenFile' }));
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) throw new LinegateErrors(problems);
  return tokens;
}

function tokenProblem(token: string): string | undefined {
  if (token.length < MIN_TOKEN_CHARS) return `the token is ${token.length} characters; at least ${MIN_TOKEN_CHARS} are needed`;
  if (!TOKEN_CHARS.test(token)) return 'the token has characters an Authorization header cannot carry (printable ASCII only, at most 1024)';
  return undefined;
}

function checked(token: string, from: string): string {
  const why = tokenProblem(token);
  if (why !== undefined) throw new LinegateError('LG_ERR_API_TOKEN', [from, why]);
  return token;
}

/** Decides, per request, whether a route may run, and who asked; compares tokens in constant time. */
export class Gate {
  readonly #tokens: readonly { readonly name: string; readonly digest: Buffer }[];
  readonly #readsNeedToken: boolean;

  constructor(tokens: readonly NamedToken[], auth: 'writes' | 'all') {
    // Equal-length digests: timingSafeEqual needs equal lengths, and the token's length must not leak either.
    this.#tokens = tokens.map((t) => ({ name: t.name, digest: digest(t.token) }));
    this.#readsNeedToken = auth === 'all';
  }

  get writesOn(): boolean {
    return this.#tokens.length > 0;
  }

  /** The token names, for the start-up log line. */
  get names(): readonly string[] {
    return this.#tokens.map((t) => t.name);
  }

  /**
   * Throws the coded error the request gets; returns the name of the token that passed, or
   * undefined when the route needs none (open routes, and read routes unless auth is `all`).
   */
  check(access: Access, authorization: string | undefined, what: string): string | undefined {
    if (access === 'open') return undefined;
    if (access === 'read' && !this.#readsNeedToken) return undefined;
    if (this.#tokens.length === 0) {
      if (access === 'write') throw new LinegateError('LG_ERR_API_WRITES_OFF', [what]);
      // auth: all without a token: nothing could ever pass, which is what was asked for.
      throw new LinegateError('LG_ERR_API_UNAUTHORIZED', [what]);
    }
    const m = /^Bearer ([\x21-\x7e]{1,1024})$/.exec(authorization ?? '');
    if (m === null) throw new LinegateError('LG_ERR_API_UNAUTHORIZED', [what]);
    const presented = digest(m[1]!);
    // Every token compared, every time (map, not find): how long a check takes must not say which token
    // matched, or how far down the list a guess got.
    const hits = this.#tokens.map((t) => timingSafeEqual(presented, t.digest));
    const at = hits.indexOf(true);
    if (at < 0) throw new LinegateError('LG_ERR_API_UNAUTHORIZED', [what]);
    return this.#tokens[at]!.name;
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
