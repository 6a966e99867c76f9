import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as ort from 'onnxruntime-node';
import type { Tensor } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import type { ModelManifest, ModelPackage } from './manifest.js';
import { openWorkerSession } from './session-worker.js';

/** The graph's own view of a tensor: dims are numbers, or a name / -1 for a dynamic axis. */
export interface GraphTensor {
  readonly name: string;
  readonly type: string;
  readonly shape: readonly (number | string)[];
}

export interface GraphInfo {
  readonly inputs: readonly GraphTensor[];
  readonly outputs: readonly GraphTensor[];
}

export interface SessionOptions {
  readonly intraOpThreads: number;
  readonly interOpThreads: number;
  /** Idle threads spin for the next run; off, they sleep and leave the core to the PLC link and whatever else runs on the station. */
  readonly threadSpinning: boolean;
  /**
   * Where runs execute. 'worker': on threads of their own, so the event loop (PLC
   * link, sinks, API) answers while a model runs, and a second part's decode overlaps
   * this part's inference. 'main' (the default here; the station's model step asks for
   * 'worker'): on the event loop, as onnxruntime-node does by itself.
   */
  readonly thread?: 'worker' | 'main';
  /** Sessions side by side ('worker' only), each on its own thread; default 1. */
  readonly sessions?: number;
}

/** One ORT session behind a narrow, ort-free interface: the rest of linegate never sees ort types. */
export interface ModelSession {
  readonly graph: GraphInfo;
  run(input: Float32Array, dims: readonly number[], signal: AbortSignal): Promise<Record<string, Tensor>>;
  close(): Promise<void>;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const graphTensor = (m: ort.InferenceSession.ValueMetadata): GraphTensor =>
  m.isTensor ? { name: m.name, type: m.type, shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d))) } : { name: m.name, type: 'non-tensor', shape: [] };

/**
 * The graph's inputs and outputs as onnxruntime reports them, for inspecting a
 * model that has no manifest yet: no sha256 check, one thread, no graph
 * optimisation (loading still resolves every node, so ORT refuses what it
 * cannot run), and the session is released before returning.
 */
export async function readGraph(file: string): Promise<GraphInfo> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
  } catch (e) {
    throw new LinegateError('LG_ERR_MODEL_LOAD', [file, messageOf(e)], { cause: e });
  }
  try {
    return { inputs: session.inputMetadata.map(graphTensor), outputs: session.outputMetadata.map(graphTensor) };
  } finally {
    await session.release();
  }
}

/** Opens a session after checking the file is the one the manifest names. */
export async function openSession(pkg: ModelPackage, options: SessionOptions): Promise<ModelSession> {
  const { manifest, onnxFile } = pkg;
  let actual: string;
  try {
    actual = await sha256File(onnxFile);
  } catch (e) {
    throw new LinegateError('LG_ERR_MODEL_FILE', [onnxFile, messageOf(e)], { cause: e });
  }
  if (actual !== manifest.sha256) throw new LinegateError('LG_ERR_MODEL_HASH', [onnxFile, actual, manifest.sha256]);
  const ortOptions = {
    intraOpNumThreads: options.intraOpThreads,
    interOpNumThreads: options.interOpThreads,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    // A part arrives every few tens of ms: spinning threads in between would take the core the PLC
    // link and the PLC's own server need (on 2 cores, a p99 of trigger -> ResultValid twice as long).
    extra: { session: { intra_op: { allow_spinning: options.threadSpinning ? '1' : '0' }, inter_op: { allow_spinning: options.threadSpinning ? '1' : '0' } } },
  } satisfies ort.InferenceSession.SessionOptions;
  if (options.thread === 'worker') {
    try {
      return await openWorkerSession({ onnxFile, inputName: manifest.input.name, ortOptions, sessions: options.sessions ?? 1 });
    } catch (e) {
      throw new LinegateError('LG_ERR_MODEL_LOAD', [onnxFile, messageOf(e)], { cause: e });
    }
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(onnxFile, ortOptions);
  } catch (e) {
    throw new LinegateError('LG_ERR_MODEL_LOAD', [onnxFile, messageOf(e)], { cause: e });
  }
  const graph: GraphInfo = { inputs: session.inputMetadata.map(graphTensor), outputs: session.outputMetadata.map(graphTensor) };
  const inputName = manifest.input.name;
  let closed = false;
  return {
    graph,
    async run(input, dims, signal) {
      signal.throwIfAborted();
      if (closed) throw new Error('session is closed');
      const feeds = { [inputName]: new ort.Tensor('float32', input, dims) };
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await session.run(feeds);
      } catch (e) {
        throw new Error(`onnxruntime: ${messageOf(e)}`, { cause: e });
      }
      const result: Record<string, Tensor> = {};
      for (const [name, t] of Object.entries(out)) result[name] = { type: t.type as Tensor['type'], dims: [...t.dims], data: t.data as Tensor['data'] };
      return result;
    },
    async close() {
      if (closed) return;
      closed = true;
      await session.release();
    },
  };
}

const fmt = (shape: readonly (number | string)[]): string => `[${shape.join(',')}]`;

/** Every way the manifest and the graph disagree, as messages naming the tensor and the shapes. */
export function checkGraph(manifest: ModelManifest, graph: GraphInfo): { input: string[]; output: string[] } {
  const input: string[] = [];
  const output: string[] = [];
  const spec = manifest.input;
  const g = graph.inputs.find((t) => t.name === spec.name);
  if (g === undefined) {
    input.push(`input "${spec.name}" is not in the graph (its inputs: ${graph.inputs.map((t) => `${t.name}${fmt(t.shape)}`).join(', ')})`);
  } else {
    const want = spec.layout === 'NCHW' ? ['N', spec.channels, spec.height, spec.width] : ['N', spec.height, spec.width, spec.channels];
    const mismatch = g.shape.length !== 4 || want.some((w, i) => i > 0 && typeof g.shape[i] === 'number' && g.shape[i] !== w);
    if (mismatch) {
      input.push(`manifest says input "${spec.name}" is ${fmt(want)} (${spec.layout}, ${spec.width}x${spec.height}x${spec.channels}) but the graph's is ${fmt(g.shape)}`);
    }
    if (g.type !== 'float32') input.push(`input "${spec.name}" is ${g.type} in the graph; linegate feeds float32`);
  }
  const outs = new Map(graph.outputs.map((t) => [t.name, t]));
  const need = (name: string): GraphTensor | undefined => {
    const t = outs.get(name);
    if (t === undefined) output.push(`output "${name}" is not in the graph (its outputs: ${graph.outputs.map((o) => `${o.name}${fmt(o.shape)}`).join(', ')})`);
    return t;
  };
  const dimIs = (t: GraphTensor, i: number, want: number, what: string): void => {
    const d = t.shape.at(i);
    if (typeof d === 'number' && d !== want) output.push(`output "${t.name}" ${fmt(t.shape)}: ${what} should be ${want}`);
  };
  const d = manifest.decode;
  const nc = manifest.labels.length;
  if (d.kind === 'classification') {
    const t = need(d.output);
    if (t !== undefined) dimIs(t, -1, nc, `its last axis (classes, ${nc} labels)`);
  } else if (d.kind === 'yolo') {
    const t = need(d.output);
    if (t !== undefined) {
      if (t.shape.length !== 3) output.push(`output "${t.name}" ${fmt(t.shape)} should have 3 axes`);
      else if (d.format === 'xywh-scores') dimIs(t, 1, 4 + nc, `axis 1 (4 box values + ${nc} class scores)`);
      else dimIs(t, 2, 6, 'axis 2 (x1 y1 x2 y2 score class)');
    }
  } else if (d.kind === 'segmentation') {
    const t = need(d.output);
    if (t !== undefined) {
      if (t.shape.length !== 4) output.push(`output "${t.name}" ${fmt(t.shape)} should be (N, classes, H, W)`);
      else if (typeof t.shape[1] === 'number' && t.shape[1] !== nc && !(t.shape[1] === 1 && nc === 1)) dimIs(t, 1, nc, `axis 1 (classes, ${nc} labels)`);
    }
  } else {
    need(d.score);
    if (d.map !== undefined) {
      const t = need(d.map);
      if (t !== undefined && t.shape.length !== 4 && t.shape.length !== 3) output.push(`output "${t.name}" ${fmt(t.shape)} should be (N, 1, H, W) or (N, H, W)`);
    }
    if (d.label !== undefined) need(d.label);
    if (d.mask !== undefined) need(d.mask);
  }
  return { input, output };
}

/** Whether the graph takes any batch size (so tiles can go in one run). */
export function dynamicBatch(manifest: ModelManifest, graph: GraphInfo): boolean {
  const g = graph.inputs.find((t) => t.name === manifest.input.name);
  return g !== undefined && typeof g.shape[0] !== 'number';
}
