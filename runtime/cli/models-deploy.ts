import { openAsBlob } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Logger } from '../contract.js';
import { DeployReport, ModelsStatus, ShadowStatus } from '../deploy/types.js';
import { LinegateError, LinegateErrors, messageOf } from '../errors.js';
import { MAX_PACKAGE_FILES, packageFileNameProblem } from '../api/multipart.js';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';
import { onStopSignals } from './signals.js';

/*
 * `linegate models deploy | rollback | shadow start | shadow stop | status`: a client of the
 * station's /api/models routes. It checks what it can before sending (the token, the package
 * folder: flat, named as the station takes, not too large), then prints the station's JSON reply.
 * Exit 0 done, 1 refused by the station or no answer from it, 2 a misuse found here.
 */

export type ModelsAction = 'deploy' | 'rollback' | 'shadow start' | 'shadow stop' | 'status';

export interface ModelsCliOptions extends LogOptions {
  readonly keepCalibration?: boolean;
  readonly timeoutMs: number;
  readonly maxPackageMib?: number;
}

const ROUTES: Readonly<Record<ModelsAction, { readonly method: 'GET' | 'POST'; readonly url: string; readonly write: boolean }>> = {
  deploy: { method: 'POST', url: 'api/models/deploy', write: true },
  rollback: { method: 'POST', url: 'api/models/rollback', write: true },
  'shadow start': { method: 'POST', url: 'api/models/shadow', write: true },
  'shadow stop': { method: 'POST', url: 'api/models/shadow/stop', write: true },
  status: { method: 'GET', url: 'api/models', write: false },
};

/** What a linegate station answers on a refusal (runtime/api/error-reply.ts). */
const StationError = z.object({ error: z.object({ code: z.string().regex(/^LG_ERR_[A-Z_]+$/), message: z.string(), retryable: z.boolean(), issues: z.array(z.string()).optional() }) });

export async function modelsCommand(action: ModelsAction, stationUrl: string, packageDir: string | undefined, opts: ModelsCliOptions, ctx: CommandContext): Promise<number> {
  const log = ctx.logger(opts);
  const route = ROUTES[action];
  const base = stationBase(stationUrl);
  const token = ctx.io.env.LINEGATE_API_TOKEN?.trim();
  if (route.write && (token === undefined || token === '')) {
    throw new LinegateError('LG_ERR_CLI_TOKEN', [`linegate models ${action}`, 'it is not set (the token the station reads from LINEGATE_API_TOKEN or its api.tokenFile)']);
  }
  const body = packageDir === undefined ? undefined : await packageForm(packageDir, opts.maxPackageMib ?? 256, opts.keepCalibration === true, log);
  const url = new URL(route.url, base);
  const reply = await request(url, base.href, { method: route.method, ...(token === undefined || token === '' ? {} : { token }), ...(body === undefined ? {} : { body }) }, opts.timeoutMs, route.write, log, ctx);
  const json = parseJson(reply.text);
  if (reply.status >= 200 && reply.status < 300 && json !== undefined) {
    ctx.io.stdout.write(`${JSON.stringify(json)}\n`);
    summarise(action, json, log);
    return EXIT.ok;
  }
  const refused = StationError.safeParse(json);
  if (!refused.success) throw new LinegateError('LG_ERR_CLI_REPLY', [base.href, `HTTP ${reply.status}`, reply.type ?? 'no content type']);
  const { error } = refused.data;
  // The station's own coded errors, one log line each: every problem it found with the package.
  const lines = error.issues ?? [`${error.code}: ${error.message}`];
  for (const line of lines) {
    const m = /^(LG_ERR_[A-Z_]+): ([\s\S]*)$/.exec(line);
    log.error({ code: m?.[1] ?? error.code, status: reply.status, station: base.href, ...(lines.length === 1 ? { retryable: error.retryable } : {}) }, m === null ? `${error.code}: ${line}` : line);
  }
  return EXIT.runtime;
}

/** The station's API root as given (a path prefix behind a proxy is kept); the token never rides in the URL. */
function stationBase(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new LinegateError('LG_ERR_CLI_USAGE', [`<station-url> "${raw.slice(0, 200)}" is not a URL: give the station's API, e.g. http://127.0.0.1:8080`]);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new LinegateError('LG_ERR_CLI_USAGE', [`<station-url> must be http:// or https://, not ${u.protocol}`]);
  if (u.username !== '' || u.password !== '') throw new LinegateError('LG_ERR_CLI_USAGE', ['<station-url> must not carry credentials: the token goes in LINEGATE_API_TOKEN']);
  if (u.search !== '' || u.hash !== '') throw new LinegateError('LG_ERR_CLI_USAGE', ['<station-url> is the API root, without a query or fragment']);
  if (!u.pathname.endsWith('/')) u.pathname = `${u.pathname}/`;
  return u;
}

/** The package folder as multipart form data, after every check the station would make on its names and size. */
async function packageForm(dir: string, maxMiB: number, keepCalibration: boolean, log: Logger): Promise<FormData> {
  const abs = path.resolve(dir);
  const refuse = (why: string): LinegateError => new LinegateError('LG_ERR_CLI_PACKAGE', [abs, why]);
  let entries: string[];
  try {
    entries = (await readdir(abs)).sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw refuse(code === 'ENOENT' ? 'there is no such folder' : code === 'ENOTDIR' ? 'it is a file, not a package folder (model.json, model.onnx, ...)' : messageOf(e));
  }
  const hidden = entries.filter((n) => n.startsWith('.'));
  if (hidden.length > 0) log.warn({ package: abs, left: hidden }, `left out of the upload (hidden): ${hidden.join(', ')}`);
  const files: { name: string; file: string; size: number }[] = [];
  const folders: string[] = [];
  const problems: string[] = [];
  for (const name of entries.filter((n) => !n.startsWith('.'))) {
    const file = path.join(abs, name);
    // stat, not lstat: a linked file is uploaded as the file it points at.
    const s = await stat(file).catch((e: unknown) => messageOf(e));
    if (typeof s === 'string') problems.push(`${name}: ${s}`);
    else if (s.isDirectory()) folders.push(name);
    else if (!s.isFile()) problems.push(`${name} is not a regular file`);
    else files.push({ name, file, size: s.size });
    const why = packageFileNameProblem(name);
    if (why !== undefined) problems.push(why);
  }
  if (folders.length > 0) problems.push(`it has sub-folders (${folders.join(', ')}): a package is flat, its files side by side (model.json, model.onnx, README.md, ...); move them out, or give the folder that holds model.json`);
  if (files.length > 0 && !files.some((f) => f.name === 'model.json')) problems.push('it has no model.json: is it a model package folder?');
  if (files.length === 0 && folders.length === 0) problems.push('it is empty');
  if (files.length > MAX_PACKAGE_FILES) problems.push(`it has ${files.length} files; the station takes at most ${MAX_PACKAGE_FILES}`);
  const bytes = files.reduce((n, f) => n + f.size, 0);
  const max = Math.floor(maxMiB * 1024 * 1024);
  if (bytes > max) problems.push(`it is ${bytes} bytes, more than --max-package-mib ${maxMiB} (${max} bytes); the station takes at most its station.deploy.maxPackageMiB`);
  if (problems.length === 1) throw refuse(problems[0]!);
  if (problems.length > 1) throw new LinegateErrors(problems.map(refuse));
  const form = new FormData();
  if (keepCalibration) form.append('calibration', 'keep');
  for (const f of files) form.append('file', await openAsBlob(f.file), f.name);
  log.info({ package: abs, files: files.length, bytes }, `uploading ${files.length} files (${bytes} bytes) from ${abs}`);
  return form;
}

/** One request, bounded by --timeout-ms and abandoned on SIGINT/SIGTERM (a second signal exits at once). */
async function request(
  url: URL,
  station: string,
  o: { readonly method: 'GET' | 'POST'; readonly token?: string; readonly body?: FormData },
  timeoutMs: number,
  write: boolean,
  log: Logger,
  ctx: CommandContext,
): Promise<{ status: number; type: string | null; text: string }> {
  const interrupted = new AbortController();
  const timeout = AbortSignal.timeout(timeoutMs);
  const offSignals = onStopSignals(log, ctx.io, 'interrupted: abandoning the request', () => interrupted.abort());
  const later = write ? '; the station may still finish it: `linegate models status` says which model is active' : '';
  try {
    const res = await fetch(url, {
      method: o.method,
      headers: { accept: 'application/json', ...(o.token === undefined ? {} : { authorization: `Bearer ${o.token}` }) },
      ...(o.body === undefined ? {} : { body: o.body }),
      signal: AbortSignal.any([interrupted.signal, timeout]),
    });
    return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
  } catch (e) {
    if (timeout.aborted) throw new LinegateError('LG_ERR_CLI_NO_ANSWER', [station, `nothing within ${timeoutMs} ms (--timeout-ms)${later}`]);
    if (interrupted.signal.aborted) throw new LinegateError('LG_ERR_CLI_NO_ANSWER', [station, `interrupted before it answered${later}`]);
    throw new LinegateError('LG_ERR_CLI_UNREACHABLE', [station, causeOf(e)], { cause: e });
  } finally {
    offSignals();
  }
}

/** fetch says "fetch failed"; what failed (ECONNREFUSED, ENOTFOUND, ...) is its cause. */
const causeOf = (e: unknown): string => (e instanceof Error && e.cause instanceof Error ? e.cause.message : messageOf(e));

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A line a person reads on stderr beside the JSON on stdout; a reply this CLI does not know is printed all the same. */
function summarise(action: ModelsAction, json: unknown, log: Logger): void {
  const named = (d: { name: string; version: string } | null): string => (d === null ? 'none' : `${d.name}/${d.version}`);
  const unknown = (e: z.ZodError): void =>
    log.warn({ issues: e.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`) }, `the station's reply does not match what this linegate expects of ${action} (another version?): printed as it came`);
  if (action === 'deploy' || action === 'rollback') {
    const r = DeployReport.safeParse(json);
    if (!r.success) return unknown(r.error);
    const { deployment: d, previous } = r.data;
    log.info({ model: named(d), sha256: d.sha256, previous: named(previous), by: d.by, warmupMs: r.data.warmupMs, thresholds: r.data.thresholds, calibration: r.data.calibration.status }, `${named(d)} is active (was ${named(previous)})`);
    for (const w of r.data.warnings) log.warn({ model: named(d) }, w);
  } else if (action === 'status') {
    const s = ModelsStatus.safeParse(json);
    if (!s.success) return unknown(s.error);
    log.info({ model: named(s.data.active), shadow: s.data.shadow.state, canRollback: s.data.canRollback }, `${s.data.station}: ${named(s.data.active)} is active`);
  } else {
    const s = ShadowStatus.safeParse(json);
    if (!s.success) return unknown(s.error);
    const sh = s.data;
    const counts = sh.state === 'running' ? sh : sh.last;
    const agreed = counts === undefined ? '' : `: agreed on ${counts.agreement.agree} of ${counts.agreement.total} frames`;
    log.info(
      { shadow: sh.state, ...(counts === undefined ? {} : { model: named(counts.model), agreement: counts.agreement, skipped: counts.skipped, failed: counts.failed, queued: counts.queued }) },
      sh.state === 'running' ? `shadow ${named(sh.model)} is running${agreed}` : counts === undefined ? 'no shadow model runs' : `shadow ${named(counts.model)} stopped${agreed}`,
    );
  }
}
