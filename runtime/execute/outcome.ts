import { createHash, randomFillSync } from 'node:crypto';
import type { EncodedImage, Frame, Part, RawImage } from '../contract.js';
import { LinegateError, rejectCodeOf } from '../errors.js';
import { RESULT_SCHEMA_VERSION, type InspectionResult } from '../result.js';
import type { Plan } from '../compile/compile.js';
import { resultCalibration } from '../compile/models.js';

/** How a part's inspection ended: the part as far as it got, and the error that stopped it, if any. */
export interface Outcome {
  readonly part?: Part;
  readonly stageMs: Readonly<Record<string, number>>;
  readonly error?: LinegateError;
}

/** Builds the result record. A part without a decision is an `error`: never a pass by default. */
export function buildResult(plan: Plan, frame: Frame, outcome: Outcome, totalMs: number): InspectionResult {
  const { part, error } = outcome;
  const decision = error === undefined ? part?.decision : undefined;
  const image = part?.image;
  const encoded = frame.image.kind === 'encoded' ? frame.image : undefined;
  const raw = frame.image.kind === 'raw' ? frame.image : image;
  const base = {
    schemaVersion: RESULT_SCHEMA_VERSION,
    resultId: frame.key === undefined ? uuidv7() : stableResultId(plan, frame),
    station: stationOf(plan.settings),
    partId: frame.partId,
    sequence: frame.sequence,
    ...(frame.trigger === undefined ? {} : { trigger: { id: frame.trigger.id, counter: frame.trigger.counter, raisedAt: frame.trigger.raisedAt.toISOString() } }),
    time: { capturedAt: frame.capturedAt.toISOString(), decidedAt: new Date().toISOString() },
    source: {
      step: plan.source.name,
      plugin: plan.source.plugin.manifest.id,
      ref: frame.ref,
      ...(frame.label === undefined ? {} : { label: frame.label }),
    },
    frame: {
      ref: frame.ref,
      ...(raw === undefined ? {} : { width: raw.width, height: raw.height }),
      ...(encoded?.format === undefined ? {} : { format: encoded.format }),
    },
    model: part?.model ?? null,
    ...(plan.calibrationUse === undefined || plan.calibrationUse.status === 'skipped' ? {} : { calibration: resultCalibration(plan.calibrationUse, plan.root) }),
    scores: { ...part?.findings?.scores },
    timings: { totalMs: round3(totalMs), stages: Object.fromEntries(Object.entries(outcome.stageMs).map(([k, v]) => [k, round3(v)])) },
    delivery: {},
  };
  if (decision !== undefined) {
    return {
      ...base,
      ...(decision.thresholds === undefined ? {} : { thresholds: { ...decision.thresholds } }),
      verdict: decision.verdict,
      rejectCode: decision.rejectCode,
      reasons: [...decision.reasons],
      defects: [...decision.defects],
    };
  }
  const reason = error ?? missingDecision(plan);
  return {
    ...base,
    verdict: 'error',
    rejectCode: rejectCodeOf(reason),
    reasons: [{ code: reason.code, message: reason.message, rejectCode: rejectCodeOf(reason), ...(reason.step === undefined ? {} : { step: reason.step }) }],
    defects: [...(part?.findings?.defects ?? [])],
  };
}

/** The station's identity as every result carries it: its id, its line (station.line, else the hierarchy's) and its place in the plant. */
export function stationOf(settings: Pick<Plan['settings'], 'id' | 'line' | 'hierarchy'>): InspectionResult['station'] {
  const h = settings.hierarchy;
  const line = settings.line ?? h?.line;
  return {
    id: settings.id,
    ...(line === undefined ? {} : { line }),
    // A copy: the plan's settings are frozen, and a record is plain data its readers may change.
    ...(h === undefined ? {} : { hierarchy: { site: h.site, area: h.area, line: h.line, cell: h.cell } }),
  };
}

/** Past this size a frame is hashed on libuv's thread pool (WebCrypto), not on the event loop that serves the PLC. */
const HASH_OFF_LOOP_BYTES = 1024 * 1024;

/**
 * The result with `frame.sha256`: the sha256 of the frame's encoded bytes as the source gave them,
 * which is the image archive's content address (plugins/sink-bullmq/archive.ts keeps an encoded
 * frame unchanged), so the station's own record finds its archived image. Hashed once per frame,
 * after the critical sinks (0.1 ms for a 50 kB JPEG). Raw frames get none: the archive keeps them
 * as a PNG encoded later, whose hash only the queue sink knows.
 */
export async function withFrameHash(result: InspectionResult, image: EncodedImage | RawImage | undefined): Promise<InspectionResult> {
  if (image?.kind !== 'encoded' || result.frame.sha256 !== undefined) return result;
  const { data } = image;
  const sha256 = data.byteLength < HASH_OFF_LOOP_BYTES ? createHash('sha256').update(data).digest('hex') : Buffer.from(await crypto.subtle.digest('SHA-256', data)).toString('hex');
  return { ...result, frame: { ...result.frame, sha256 } };
}

/** Unreachable for a compiled station (its last stage must produce a decision); kept as the fail-safe. */
function missingDecision(plan: Plan): LinegateError {
  const last = plan.stages.at(-1);
  return new LinegateError('LG_ERR_STAGE_OUTPUT', [last?.name ?? '?', last?.plugin.manifest.id ?? '?', 'decision'], last === undefined ? {} : { step: last.name });
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000;

/**
 * The result id of a frame the source may yield again (its `key`): a UUIDv7 whose time is the
 * capture time and whose other bits come from a hash of the station, the source step and the key.
 * A re-inspection after a crash then gets the same id, and the durable sinks keep the result once
 * (BullMQ drops a job id it holds). Derived rather than journalled: a journal would cost the source
 * a write and an fsync per part, and the key already is the frame's identity.
 */
export function stableResultId(plan: Plan, frame: Pick<Frame, 'key' | 'capturedAt'>): string {
  return resultIdFor(plan.settings.id, plan.source.name, frame.key ?? '', frame.capturedAt);
}

/** The same from its parts: a source that sets `key` and `capturedAt` can tell its caller the result id before the result exists (the HTTP source). */
export function resultIdFor(stationId: string, sourceStep: string, key: string, capturedAt: Date): string {
  const seed = createHash('sha256').update(`${stationId}\0${sourceStep}\0${key}`).digest();
  return uuidv7(capturedAt.getTime(), seed);
}

/** RFC 9562 UUIDv7: 48-bit Unix ms, then random bits (or bits from `seed`); result ids sort by time. */
export function uuidv7(now = Date.now(), seed?: Uint8Array): string {
  const b = seed === undefined ? randomFillSync(new Uint8Array(16)) : Uint8Array.from(seed.subarray(0, 16));
  b[0] = Math.floor(now / 2 ** 40) & 0xff;
  b[1] = Math.floor(now / 2 ** 32) & 0xff;
  b[2] = (now >>> 24) & 0xff;
  b[3] = (now >>> 16) & 0xff;
  b[4] = (now >>> 8) & 0xff;
  b[5] = now & 0xff;
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
