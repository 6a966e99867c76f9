import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Frame, Part, PluginContext, RawImage } from '../../runtime/contract.js';
import { uuidv7 } from '../../runtime/execute/outcome.js';
import type { InspectionResult } from '../../runtime/result.js';
import { testRoot } from './roots.js';
import { ROOT, silentLog } from './station.js';

export const FIXTURE = path.join(ROOT, 'fixtures/casting/def_front/cast_def_0_103.jpeg');

export function frameOf(file = FIXTURE, sequence = 0): Frame {
  return { ref: file, partId: `part-${sequence}`, sequence, capturedAt: new Date(), image: { kind: 'encoded', data: readFileSync(file), format: 'jpeg' } };
}

export async function rawOf(file: string | Buffer = FIXTURE): Promise<RawImage> {
  const { data, info } = await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { kind: 'raw', data, width: info.width, height: info.height, channels: 3, colorOrder: 'RGB' };
}

export async function decodedPart(file = FIXTURE): Promise<Part> {
  return { frame: frameOf(file), image: await rawOf(file) };
}

export function sampleResult(overrides: Partial<InspectionResult> = {}): InspectionResult {
  const now = new Date().toISOString();
  return {
    schemaVersion: 1,
    resultId: uuidv7(),
    station: { id: 'sample-01' },
    partId: 'part-1',
    sequence: 1,
    time: { capturedAt: now, decidedAt: now },
    source: { step: 'cam', plugin: 'core/folder-source@1', ref: FIXTURE, label: 'def_front' },
    frame: { ref: FIXTURE, width: 300, height: 300, format: 'jpeg' },
    model: null,
    verdict: 'fail',
    rejectCode: 11,
    reasons: [{ code: 'reject-blurred', message: '1 blurred defect', rejectCode: 11 }],
    defects: [{ label: 'blurred', score: 0.7, rule: 'reject-blurred' }],
    scores: { blurred: 0.7 },
    timings: { totalMs: 5, stages: { decode: 3, quality: 2 } },
    delivery: {},
    ...overrides,
  };
}

/** A plugin context rooted, under vitest, in a test root of its own (see testRoot); for the benches, at the repository. */
export function contextFor(signal: AbortSignal, root: string = process.env.VITEST === undefined ? ROOT : testRoot()): PluginContext {
  return {
    log: silentLog,
    signal,
    stationId: 'conformance',
    step: 'step',
    timing: { cycleBudgetMs: 1000, sinkTimeoutMs: 2000, closeTimeoutMs: 10_000 },
    resolvePath: (p) => path.resolve(root, p),
    resolveAsset: (p) => path.resolve(root, p),
    dependency: (field) => {
      throw new Error(`no dependency ${field} in a test context`);
    },
  };
}
