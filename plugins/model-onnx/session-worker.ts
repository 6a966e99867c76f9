import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Tensor } from '../../runtime/contract.js';
import type { GraphInfo, ModelSession } from './session.js';

/** What a worker needs to open its own session: the checked file and onnxruntime's options. */
export interface WorkerSessionSpec {
  readonly onnxFile: string;
  readonly inputName: string;
  /** onnxruntime's session options, as plain data (they cross a thread). */
  readonly ortOptions: Record<string, unknown>;
  /** Sessions run side by side, one thread each: parts in flight beyond this many wait for one. */
  readonly sessions: number;
}

/*
 * The worker's own code. Plain JavaScript evaluated as a script, so it runs the same from
 * TypeScript under tsx or vitest and from the compiled dist/: it needs nothing of linegate,
 * only onnxruntime, whose path the parent resolves. onnxruntime-node runs a model
 * synchronously on the thread that calls it; here that thread is this worker, not the
 * event loop that serves the PLC link, the sinks and the HTTP API.
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
const meta = (m) => m.isTensor
  ? { name: m.name, type: m.type, shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d))) }
  : { name: m.name, type: 'non-tensor', shape: [] };
const text = (e) => String(e && e.message ? e.message : e);
ort.InferenceSession.create(workerData.onnxFile, workerData.ortOptions).then((session) => {
  async function handle(m) {
    if (m.t === 'die') throw new Error('model thread stopped on request');
    if (m.t === 'close') {
      await session.release().catch(() => {});
      parentPort.close();
      return;
    }
    let out;
    try {
      out = await session.run({ [workerData.inputName]: new ort.Tensor('float32', m.input, m.dims) });
    } catch (e) {
      parentPort.postMessage({ t: 'err', id: m.id, message: text(e) });
      return;
    }
    const outputs = {};
    const buffers = new Set();
    for (const [name, t] of Object.entries(out)) {
      outputs[name] = { type: t.type, dims: Array.from(t.dims), data: t.data };
      if (ArrayBuffer.isView(t.data) && t.data.buffer instanceof ArrayBuffer) buffers.add(t.data.buffer);
    }
    try {
      parentPort.postMessage({ t: 'out', id: m.id, outputs }, [...buffers]);
    } catch {
      // A buffer onnxruntime keeps cannot be handed over: copy it instead.
      parentPort.postMessage({ t: 'out', id: m.id, outputs });
    }
  }
  // One message at a time, in order: a release must never overlap a run.
  let chain = Promise.resolve();
  parentPort.on('message', (m) => {
    chain = chain.then(() => handle(m));
    chain.catch((e) => setImmediate(() => { throw e; }));
  });
  parentPort.postMessage({ t: 'ready', graph: { inputs: session.inputMetadata.map(meta), outputs: session.outputMetadata.map(meta) } });
}, (e) => {
  parentPort.postMessage({ t: 'load-error', message: text(e) });
  parentPort.close();
});
`;

type FromWorker =
  | { t: 'ready'; graph: GraphInfo }
  | { t: 'load-error'; message: string }
  | { t: 'out'; id: number; outputs: Record<string, Tensor> }
  | { t: 'err'; id: number; message: string };

interface Pending {
  resolve(outputs: Record<string, Tensor>): void;
  reject(e: Error): void;
}

/** One thread, one onnxruntime session; runs are queued inside the worker in the order they were posted. */
export class SessionThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #dead: Error | undefined;
  #exited = false;
  readonly ready: Promise<GraphInfo>;

  constructor(spec: WorkerSessionSpec, ortPath: string) {
    this.#worker = new Worker(WORKER_CODE, {
      eval: true,
      workerData: { ortPath, onnxFile: spec.onnxFile, inputName: spec.inputName, ortOptions: spec.ortOptions },
      // The parent's loaders (tsx, vitest) have no business in a thread that only requires onnxruntime.
      execArgv: [],
      stdout: false,
      stderr: false,
    });
    this.ready = new Promise<GraphInfo>((resolve, reject) => {
      this.#worker.on('message', (m: FromWorker) => {
        if (m.t === 'ready') resolve(m.graph);
        else if (m.t === 'load-error') reject(new Error(m.message));
        else if (m.t === 'out' || m.t === 'err') {
          const p = this.#pending.get(m.id);
          if (p === undefined) return;
          this.#pending.delete(m.id);
          this.#idle();
          if (m.t === 'out') p.resolve(m.outputs);
          else p.reject(new Error(m.message));
        }
      });
      // 'error' can come before the answers the thread posted just before it failed: no new run goes to it from
      // then on, but the runs waiting on it are failed only at 'exit', once every answer it sent has been read.
      this.#worker.on('error', (e) => {
        this.#dead ??= new Error(`model thread failed: ${e.message}`, { cause: e });
        reject(this.#dead);
      });
      this.#worker.on('exit', (code) => {
        this.#exited = true;
        const e = (this.#dead ??= new Error(`model thread exited (code ${code})`));
        reject(e);
        for (const p of this.#pending.values()) p.reject(e);
        this.#pending.clear();
      });
    });
    this.ready.catch(() => undefined);
    // Referenced while it loads or runs, so a process awaiting a run does not end under it; idle, it does not keep the process alive.
    void this.ready.then(() => this.#idle(), () => undefined);
  }

  #idle(): void {
    if (this.#pending.size === 0) this.#worker.unref();
  }

  get alive(): boolean {
    return this.#dead === undefined;
  }

  get load(): number {
    return this.#pending.size;
  }

  run(input: Float32Array, dims: readonly number[]): Promise<Record<string, Tensor>> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.ref();
      // A copy, not a transfer: the caller reuses its input buffers part after part.
      this.#worker.postMessage({ t: 'run', id, input, dims });
    });
  }

  /**
   * Makes the thread fail as a crash would, after the runs already posted to it:
   * the runs posted later fail. (Worker.terminate() is no way to do it: onnxruntime-node
   * aborts the whole process when its thread is torn down in the middle of a run.)
   */
  kill(): void {
    this.#worker.postMessage({ t: 'die' });
  }

  /**
   * Lets the thread finish the runs it has, release its session and end by itself.
   * Bounded: after `waitMs` close returns and the thread, unref'd, ends on its own
   * when its run does (terminating it mid-run would abort the process, see kill).
   */
  async close(waitMs = 10_000): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    if (this.#dead === undefined) this.#worker.postMessage({ t: 'close' });
    this.#dead ??= new Error('session is closed');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }
}

export function spawnThread(spec: WorkerSessionSpec): SessionThread {
  return new SessionThread(spec, createRequire(import.meta.url).resolve('onnxruntime-node'));
}

/**
 * Opens `spec.sessions` sessions, each on its own thread, behind one
 * ModelSession: a run goes to the thread with the fewest runs waiting. A
 * thread that dies fails its waiting runs (each part gets an error verdict)
 * and is replaced for the next part.
 */
export async function openWorkerSession(spec: WorkerSessionSpec, spawn: (spec: WorkerSessionSpec) => SessionThread = spawnThread): Promise<ModelSession> {
  const threads = Array.from({ length: spec.sessions }, () => spawn(spec));
  let graph: GraphInfo;
  try {
    [graph] = (await Promise.all(threads.map((t) => t.ready))) as [GraphInfo];
  } catch (e) {
    await Promise.all(threads.map((t) => t.close()));
    throw e;
  }
  let closed = false;
  return {
    graph,
    async run(input, dims, signal) {
      signal.throwIfAborted();
      if (closed) throw new Error('session is closed');
      let i = 0;
      for (let k = 1; k < threads.length; k++) if (threads[k]!.load < threads[i]!.load) i = k;
      if (!threads[i]!.alive) {
        const fresh = spawn(spec);
        threads[i] = fresh;
        await fresh.ready;
      }
      return threads[i]!.run(input, dims);
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(threads.map((t) => t.close()));
    },
  };
}
