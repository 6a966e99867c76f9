/**
 * What the fault cases share: temp roots, station and plugin files written
 * into them, the real processes a case runs (`linegate plc-sim`, a
 * redis-server of its own), the log as JSON lines, and RSS sampled from
 * /proc. Every process runs in its own process group and is killed with it
 * by `cleanUp()` (afterEach), whatever the case left running.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LinegateProcess, killAll } from '../helpers/child.js';
import { ROOT } from '../helpers/station.js';

export { LinegateProcess, ROOT };
export { writeHangPlugin, writeSlowPlugin } from './plugins.js';

const roots: string[] = [];
const mounts: string[] = [];
const servers = new Set<RedisServer>();

/** A fresh folder for one case: its station, plugins, inbox, results, spool. Removed by cleanUp(). */
export function tempRoot(name: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `lg-fault-${name}-`));
  roots.push(dir);
  return dir;
}

/** For afterEach: every process killed with its group, tmpfs unmounted, temp roots removed. */
export async function cleanUp(): Promise<void> {
  await killAll();
  await Promise.all([...servers].map((s) => s.kill9()));
  for (const dir of mounts.splice(0).reverse()) unmount(dir);
  for (const dir of roots.splice(0)) {
    if (process.env.LG_FAULTS_KEEP === undefined) rmSync(dir, { recursive: true, force: true });
    else console.warn(`LG_FAULTS_KEEP: kept ${dir} (its processes' logs in *.log)`);
  }
}

/** Keeps a process's log and output beside the case's files, for LG_FAULTS_KEEP=1. */
export function saveLog(root: string, name: string, p: LinegateProcess): void {
  if (process.env.LG_FAULTS_KEEP === undefined) return;
  writeFileSync(path.join(root, `${name}.log`), `${p.stderr}\n--- stdout ---\n${p.stdout}`);
}

/** The casting classifier's stages (decode to grey, casting-cls/1, classify, one reject rule), for a case's station text. */
export const CASTING_STAGES_YAML = `stages:
  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }
  - { name: model, use: core/onnx-model@1, config: { model: models/casting-cls/1 } }
  - { name: classify, use: core/classify-decode@1 }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ label: defect, rejectCode: 1 }] } }
`;

/** Writes a station file (YAML or JSON text) into `root`; returns its path. */
export function writeStation(root: string, text: string, name = 'station.yaml'): string {
  const file = path.join(root, name);
  // The stations are rooted in the repository (its models and fixtures); the history, on by default, goes to the
  // case's temp root with everything else it writes.
  writeFileSync(file, /^history:/m.test(text) ? text : `${text.trimEnd()}\nhistory: { dir: ${path.join(root, 'history')} }\n`);
  return file;
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * OPC UA certificates kept across cases and runs, as a plant keeps them: linegate's own (the PLC
 * sink's `security.pki`) and the simulated PLC's server certificate (`plc-sim --pki`). A fresh one
 * costs seconds of RSA key generation at every start, and the repository's var/ is left alone.
 */
export const LINEGATE_PKI = path.join(os.tmpdir(), 'linegate-faults-pki');
export const PLC_SIM_PKI = path.join(os.tmpdir(), 'linegate-faults-plc-sim-pki');

/** `linegate plc-sim` as its own process, JSON log at debug (one line per cycle); resolves once it listens. */
export async function plcSim(args: readonly string[]): Promise<{ sim: LinegateProcess; port: number; startedAt: number }> {
  const sim = new LinegateProcess(['plc-sim', '--no-pretty', '--log-level', 'debug', '--pki', PLC_SIM_PKI, '--address-space', 'minimal', ...args]);
  const m = await waitLog(sim, /simulated PLC listening on opc\.tcp:\/\/127\.0\.0\.1:(\d+)\//, 60_000);
  return { sim, port: Number(m[1]), startedAt: Date.now() };
}

/** Cycles the simulated PLC has finished so far (one log line each: debug when ok, warn otherwise). */
export const simCycles = (sim: LinegateProcess): number => sim.count(/"msg":"cycle(: [a-z-]+)?"/);

/** One pino line of a linegate log. */
export interface LogLine {
  readonly level: number;
  readonly time: number;
  readonly msg: string;
  readonly pid?: number;
  readonly step?: string;
  readonly sink?: string;
  readonly code?: string;
  readonly [key: string]: unknown;
}

/** The JSON lines of a log (anything else, e.g. a library's own warning, is left out). */
export function logLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const v = JSON.parse(line) as LogLine;
      if (typeof v.level === 'number' && typeof v.msg === 'string') out.push(v);
    } catch {
      // a line cut by a kill -9, or not a log line
    }
  }
  return out;
}

/** The pid of the process that writes the log (the one that runs the station), from its first log line. */
export async function pidOf(p: LinegateProcess): Promise<number> {
  const m = await waitLog(p, /"pid":(\d+)/, 60_000);
  return Number(m[1]);
}

/** VmRSS of a live process, sampled every `everyMs` from /proc/<pid>/status. */
export class RssSampler {
  readonly samples: { readonly at: number; readonly kib: number }[] = [];
  readonly #timer: NodeJS.Timeout;

  constructor(pid: number, everyMs = 250) {
    const read = (): void => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        if (m !== null) this.samples.push({ at: Date.now(), kib: Number(m[1]) });
      } catch {
        // the process has exited
      }
    };
    read();
    this.#timer = setInterval(read, everyMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  get maxMiB(): number {
    return Math.max(0, ...this.samples.map((s) => s.kib)) / 1024;
  }
}

/**
 * A redis-server of the case's own, `--save "" --appendonly no` (a kill -9
 * loses its data, as it would on a line), in its own process group.
 */
export class RedisServer {
  readonly port: number;
  #child: ChildProcessWithoutNullStreams | undefined;
  #exited: Promise<void> = Promise.resolve();
  log = '';

  private constructor(port: number) {
    this.port = port;
  }

  static async start(port?: number): Promise<RedisServer> {
    const r = new RedisServer(port ?? (await freePort()));
    servers.add(r);
    await r.up();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts it (again) on its port; resolves once it accepts connections. */
  async up(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { detached: true });
    this.#child = child;
    this.#exited = new Promise((resolve) => child.on('close', () => resolve()));
    let failed: Error | undefined;
    child.on('error', (e) => (failed = e));
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      this.log += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => (this.log += d.toString()));
    const end = Date.now() + 10_000;
    while (!out.includes('Ready to accept connections')) {
      if (failed !== undefined) throw new Error(`redis-server could not be started (${failed.message}): the fault suite needs the redis-server binary (apt-get install redis-server)`);
      if (child.exitCode !== null || Date.now() > end) throw new Error(`redis-server on port ${this.port} did not start:\n${this.log.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGKILL to its process group: the server is gone, with what it held. */
  async kill9(): Promise<void> {
    const child = this.#child;
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await this.#exited;
  }
}

/** Mounts a tmpfs of `size` (e.g. "2m") on `dir`; returns why not when this machine does not allow it. */
export function mountTmpfs(dir: string, size: string): { ok: true } | { ok: false; why: string } {
  if (process.platform !== 'linux') return { ok: false, why: `not Linux (${process.platform})` };
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error !== undefined) return { ok: false, why: `mount could not run: ${r.error.message}` };
  if (r.status !== 0) return { ok: false, why: `mount -t tmpfs exited ${r.status}: ${(r.stderr || r.stdout).trim()}` };
  mounts.push(dir);
  return { ok: true };
}

function unmount(dir: string): void {
  if (!existsSync(dir)) return;
  const r = spawnSync('umount', [dir], { encoding: 'utf8' });
  // Something still holds it (a process the kill has not reaped yet): detach it rather than leave it mounted.
  if (r.status !== 0) spawnSync('umount', ['-l', dir]);
}

/** SIGKILLs `run`'s process group the instant anything changes in `dir` (inotify); resolves then, or when it exits first. */
export async function killOnChange(dir: string, run: LinegateProcess): Promise<void> {
  const watcher = watch(dir);
  try {
    await Promise.race([new Promise((resolve) => watcher.once('change', resolve)), run.exited]);
    run.killGroup();
  } finally {
    watcher.close();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `cond` every 50 ms; fails naming `what` after `ms`, or at once when
 * `proc` (the process the case waits on) has exited, with the tail of its log.
 */
export async function waitUntil(cond: () => boolean | Promise<boolean>, ms: number, what: string, proc?: LinegateProcess): Promise<void> {
  const end = Date.now() + ms;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void proc?.exited.then((e) => (exit = e));
  const tail = (): string => (proc === undefined ? '' : `\n--- log tail ---\n${proc.stderr.slice(-3000)}`);
  while (!(await cond())) {
    if (exit !== undefined) throw new Error(`linegate exited (code ${exit.code}, signal ${exit.signal}) while the case waited for ${what}${tail()}`);
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${tail()}`);
    await sleep(50);
  }
}

/** Polls `cond` every 50 ms for at most `ms`; true once it holds, false if it never did (the case's assertions then say what is missing). */
export async function within(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

/** The first match of `re` in the log of `p` (from offset `from`), failing at once, with the log's tail, when `p` exits without it. */
export async function waitLog(p: LinegateProcess, re: RegExp, ms: number, from = 0): Promise<RegExpExecArray> {
  const gone = p.exited.then(async (e) => {
    await sleep(100); // the last output of a process can come after its exit event
    const m = re.exec(p.stderr.slice(from));
    if (m !== null) return m;
    throw new Error(`linegate exited (code ${e.code}, signal ${e.signal}) before its log showed ${re}\n--- log tail ---\n${p.stderr.slice(-3000)}`);
  });
  return Promise.race([p.waitFor(re, ms, from), gone]);
}

/** One line of what a case measured (rates, counts, RSS), printed whether it passes or not: the suite's own figures. */
export function note(fault: string, figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ fault, ...figures }));
}
