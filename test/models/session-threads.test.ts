import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { loadModelPackage } from '../../plugins/model-onnx/manifest.js';
import { normaliseTables, toInputPixels, writeTensor } from '../../plugins/model-onnx/preprocess.js';
import { openSession, type ModelSession } from '../../plugins/model-onnx/session.js';
import { OnnxModelStage } from '../../plugins/model-onnx/index.js';
import { ERRORS } from '../../runtime/errors.js';
import { contextFor, decodedPart } from '../helpers/samples.js';
import { SessionThread, openWorkerSession, spawnThread, type WorkerSessionSpec } from '../../plugins/model-onnx/session-worker.js';
import type { RawImage, Tensor } from '../../runtime/contract.js';
import { ROOT } from '../helpers/station.js';

const PACKAGE = path.join(ROOT, 'models/casting-cls/1');
const signal = new AbortController().signal;
const opened: ModelSession[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

async function inputsOf(files: readonly string[]): Promise<Float32Array[]> {
  const pkg = await loadModelPackage(PACKAGE);
  const spec = pkg.manifest.input;
  const tables = normaliseTables(spec);
  return Promise.all(
    files.map(async (f) => {
      const { data, info } = await sharp(f).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
      const image: RawImage = { kind: 'raw', data, width: info.width, height: info.height, channels: 1, colorOrder: 'GRAY' };
      const px = await toInputPixels(image, spec);
      const input = new Float32Array(spec.width * spec.height);
      writeTensor(px.data, spec, tables, input, 0);
      return input;
    }),
  );
}

const fixtures = (): string[] => {
  const dir = path.join(ROOT, 'fixtures/casting');
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.jpeg') || f.endsWith('.jpg'))
    .sort()
    .slice(0, 8)
    .map((f) => path.join(dir, f));
};

describe('model sessions on threads of their own', () => {
  it('give exactly the outputs of a session on the event loop, for parts in flight together, each its own', async () => {
    const pkg = await loadModelPackage(PACKAGE);
    const base = { intraOpThreads: 1, interOpThreads: 1, threadSpinning: false };
    const main = await openSession(pkg, { ...base, thread: 'main' });
    const threaded = await openSession(pkg, { ...base, thread: 'worker', sessions: 2 });
    opened.push(main, threaded);
    expect(threaded.graph).toEqual(main.graph);
    const inputs = await inputsOf(fixtures());
    expect(inputs.length).toBeGreaterThan(3);
    const dims = [1, 1, 300, 300];
    const want = [];
    for (const x of inputs) want.push(await main.run(x, dims, signal));
    // All at once: two threads, four or more parts; each answer must come back to its own part.
    const got = await Promise.all(inputs.map((x) => threaded.run(x, dims, signal)));
    for (let i = 0; i < inputs.length; i++) {
      expect(got[i]!.logits!.dims).toEqual(want[i]!.logits!.dims);
      expect(Array.from(got[i]!.logits!.data as Float32Array)).toEqual(Array.from(want[i]!.logits!.data as Float32Array));
    }
    // The distinct fixtures do not all score alike, so a mix-up between parts could not pass unseen.
    expect(new Set(got.map((o) => (o.logits!.data as Float32Array)[0])).size).toBeGreaterThan(1);
  });

  it('fail the runs waiting on a thread that dies, never answer them, and serve the next part from a fresh thread', async () => {
    const pkg = await loadModelPackage(PACKAGE);
    const spawned: SessionThread[] = [];
    const spec: WorkerSessionSpec = {
      onnxFile: pkg.onnxFile,
      inputName: pkg.manifest.input.name,
      ortOptions: { intraOpNumThreads: 1, interOpNumThreads: 1 },
      sessions: 1,
    };
    const session = await openWorkerSession(spec, (s) => {
      const t = spawnThread(s);
      spawned.push(t);
      return t;
    });
    opened.push(session);
    const [x] = await inputsOf(fixtures().slice(0, 1));
    const dims = [1, 1, 300, 300];
    const want = await session.run(x!, dims, signal);
    // Five runs, the thread's crash, five more: the first five are answered, each right; the rest fail, none is answered wrong.
    const before = Array.from({ length: 5 }, () => session.run(x!, dims, signal));
    spawned[0]!.kill();
    const after = Array.from({ length: 5 }, () => session.run(x!, dims, signal));
    const settled = await Promise.allSettled([...before, ...after]);
    for (const w of settled.slice(0, 5)) {
      expect(w.status).toBe('fulfilled');
      expect(Array.from((w as PromiseFulfilledResult<Record<string, Tensor>>).value.logits!.data as Float32Array)).toEqual(Array.from(want.logits!.data as Float32Array));
    }
    for (const w of settled.slice(5)) {
      expect(w.status).toBe('rejected');
      expect(String((w as PromiseRejectedResult).reason)).toMatch(/model thread/);
    }
    expect(spawned).toHaveLength(1);
    const again = await session.run(x!, dims, signal);
    expect(spawned).toHaveLength(2);
    expect(Array.from(again.logits!.data as Float32Array)).toEqual(Array.from(want.logits!.data as Float32Array));
  });

  it('refuse a file onnxruntime cannot load, and close twice without harm', async () => {
    const pkg = await loadModelPackage(PACKAGE);
    const spec: WorkerSessionSpec = { onnxFile: path.join(PACKAGE, 'model.json'), inputName: 'input', ortOptions: {}, sessions: 2 };
    await expect(openWorkerSession(spec)).rejects.toThrow();
    const ok = await openWorkerSession({ ...spec, onnxFile: pkg.onnxFile });
    await ok.close();
    await ok.close();
    await expect(ok.run(new Float32Array(300 * 300), [1, 1, 300, 300], signal)).rejects.toThrow(/closed/);
    expect(readFileSync(pkg.onnxFile).length).toBeGreaterThan(0);
  });

  it('turn a model thread that dies into an error verdict with reject code 907 for the part it held, never a pass, and judge the next part', async () => {
    const pkg = await loadModelPackage(PACKAGE);
    const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
    let armed = false;
    /** A thread that, once armed, crashes the moment a part's run is handed to it: the part is then waiting on it. */
    class Crashing extends SessionThread {
      override run(input: Float32Array, dims: readonly number[]): Promise<Record<string, Tensor>> {
        if (armed) {
          armed = false;
          this.kill();
        }
        return super.run(input, dims);
      }
    }
    const spawned: SessionThread[] = [];
    const session = await openWorkerSession(
      { onnxFile: pkg.onnxFile, inputName: pkg.manifest.input.name, ortOptions: { intraOpNumThreads: 1, interOpNumThreads: 1 }, sessions: 1 },
      (s) => {
        const t = new Crashing(s, ortPath);
        spawned.push(t);
        return t;
      },
    );
    opened.push(session);
    const stage = new OnnxModelStage(pkg, session, undefined, undefined);
    const ctx = contextFor(signal);
    const part = await decodedPart(fixtures()[0]);
    expect((await stage.run(part, ctx)).modelOutput).toBeDefined();
    armed = true;
    const err = await stage.run(part, ctx).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(err?.code).toBe('LG_ERR_MODEL_RUN');
    expect(ERRORS.LG_ERR_MODEL_RUN.rejectCode).toBe(907);
    const next = await stage.run(part, ctx);
    expect(next.modelOutput).toBeDefined();
    expect(spawned).toHaveLength(2);
  });
});
