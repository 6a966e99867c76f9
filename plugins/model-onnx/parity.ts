import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Tensor } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';

/**
 * `linegate models parity`: a model package against the outputs its training
 * framework gave on the same images. The reference says what the model must
 * output; the station's own decode, preprocessing and session say what it
 * does. A difference beyond the tolerance is a package that disagrees with
 * training (a wrong kernel, colour order, normalisation), found before a line
 * is judged by it.
 */

/** The tolerance when neither --tolerance nor the reference gives one: float32 noise between two runtimes stays well below it. */
export const DEFAULT_TOLERANCE = 1e-4;

/** All of an output's values (compared one by one), or, for a large map, some statistics of it and its first values. */
const Expected = z.union([
  z.array(z.number()).min(1).describe("every value of the output, flattened in the model's order"),
  z
    .object({
      sum: z.number().optional().describe('sum of all values; allowed difference: tolerance x number of values'),
      max: z.number().optional().describe('largest value'),
      sample: z.array(z.number()).min(1).optional().describe('the first values, in order'),
    })
    .strict()
    .refine((e) => e.sum !== undefined || e.max !== undefined || e.sample !== undefined, 'give sum, max or sample'),
]);
export type Expected = z.infer<typeof Expected>;

/** The reference format `models parity --ref` reads. */
export const ParityRef = z
  .object({
    tolerance: z.number().nonnegative().optional().describe(`largest allowed absolute difference (default ${DEFAULT_TOLERANCE}; --tolerance overrides)`),
    images: z
      .array(
        z
          .object({
            file: z.string().min(1).describe('the image as the station would receive it; a relative path is relative to the reference file'),
            outputs: z
              .record(z.string().min(1), Expected)
              .refine((o) => Object.keys(o).length > 0, 'name at least one output')
              .describe('output name -> what the training framework gave for this image'),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();
export type ParityRef = z.infer<typeof ParityRef>;

/**
 * parity.json as the shipped training scripts write it:
 * `{ tolerance, input?, output?, cases: [{ file, <output>: [...], <output>_sum, <output>_max, <output>_sample }] }`,
 * files relative to the project root. Other keys of a case (a label, a derived score) describe it.
 */
const LegacyParity = z
  .object({
    tolerance: z.number().nonnegative(),
    input: z.string().optional(),
    output: z.string().optional(),
    note: z.string().optional().describe('for the reader: what the recorded values are'),
    cases: z.array(z.object({ file: z.string().min(1) }).catchall(z.unknown())).min(1),
  })
  .strict();

export interface ParityCase {
  /** Absolute path of the image. */
  readonly file: string;
  /** As written in the reference, for reports. */
  readonly name: string;
  readonly outputs: Readonly<Record<string, Expected>>;
}

export interface LoadedRef {
  readonly file: string;
  /** `images`: the format above; `cases`: a training script's parity.json, whose keys that name no output are descriptions. */
  readonly format: 'images' | 'cases';
  readonly tolerance?: number;
  readonly cases: readonly ParityCase[];
}

const refError = (file: string, why: string, at?: string): LinegateError => new LinegateError('LG_ERR_PARITY_REF', [file, why], at === undefined ? {} : { path: at });

/** Training scripts name fixtures from the project root: the folder that holds the `models/` the reference sits in. */
function projectRoot(refFile: string): string {
  let dir = path.dirname(refFile);
  for (;;) {
    if (path.basename(dir) === 'models') return path.dirname(dir);
    const up = path.dirname(dir);
    if (up === dir) return path.dirname(refFile);
    dir = up;
  }
}

const isNumbers = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');

/** A training script's case -> expected outputs, grouping `<output>_sum/_max/_sample` under their output; keys that fit no expectation are descriptions. */
function fromLegacyCase(c: { file: string } & Record<string, unknown>): Record<string, Expected> {
  const out: Record<string, Expected> = {};
  const stats: Record<string, { sum?: number; max?: number; sample?: number[] }> = {};
  for (const [key, value] of Object.entries(c)) {
    if (key === 'file') continue;
    const m = /^(.+)_(sum|max|sample)$/.exec(key);
    if (m !== null && (m[2] === 'sample' ? isNumbers(value) : typeof value === 'number')) {
      const s = (stats[m[1]!] ??= {});
      if (m[2] === 'sample') s.sample = value as number[];
      else s[m[2] as 'sum' | 'max'] = value as number;
    } else if (isNumbers(value)) {
      out[key] = value;
    }
  }
  for (const [name, s] of Object.entries(stats)) if (out[name] === undefined) out[name] = s;
  return out;
}

/** Reads and validates a reference file (either format); images are resolved, not yet opened. */
export async function loadParityRef(file: string): Promise<LoadedRef> {
  const abs = path.resolve(file);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(abs, 'utf8'));
  } catch (e) {
    throw refError(abs, messageOf(e));
  }
  const isLegacy = typeof raw === 'object' && raw !== null && 'cases' in raw;
  if (isLegacy) {
    const parsed = LegacyParity.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw refError(abs, `${issue.path.join('.') || '(top level)'}: ${issue.message}`, issue.path.join('.'));
    }
    const root = projectRoot(abs);
    const cases = parsed.data.cases.map((c, k) => {
      const outputs = fromLegacyCase(c);
      if (Object.keys(outputs).length === 0) throw refError(abs, `cases.${k} (${c.file}) gives no output values`, `cases.${k}`);
      return { file: path.resolve(root, c.file), name: c.file, outputs };
    });
    return { file: abs, format: 'cases', tolerance: parsed.data.tolerance, cases };
  }
  const parsed = ParityRef.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw refError(abs, `${issue.path.join('.') || '(top level)'}: ${issue.message}`, issue.path.join('.'));
  }
  const dir = path.dirname(abs);
  const cases = parsed.data.images.map((c) => ({ file: path.resolve(dir, c.file), name: c.file, outputs: c.outputs }));
  return { file: abs, format: 'images', ...(parsed.data.tolerance === undefined ? {} : { tolerance: parsed.data.tolerance }), cases };
}

export interface ParityCheck {
  readonly image: string;
  readonly output: string;
  /** values: every value; sample: the first values; sum, max: statistics of the output. */
  readonly kind: 'values' | 'sample' | 'sum' | 'max';
  /** Largest absolute difference (for sum and max, of the statistic). */
  readonly diff: number;
  readonly allowed: number;
  readonly ok: boolean;
  /** For values and sample: the index of the largest difference. */
  readonly at?: number;
}

/** NaN equals NaN (a model may output it on purpose); NaN against a number is an infinite difference. */
const absDiff = (a: number, b: number): number => (Number.isNaN(a) || Number.isNaN(b) ? (Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity) : Math.abs(a - b));

function largest(want: readonly number[], got: readonly number[]): { diff: number; at: number } {
  let diff = 0;
  let at = 0;
  for (let i = 0; i < want.length; i++) {
    const d = absDiff(want[i]!, got[i]!);
    if (d > diff) {
      diff = d;
      at = i;
    }
  }
  return { diff, at };
}

/**
 * The checks of one image: each expected output against what the model gave.
 * A reference that does not fit the model (an output it does not have, more
 * values than it gives) is LG_ERR_PARITY_REF: it is for another model, and
 * no tolerance makes that a pass. In the `cases` format, keys naming no
 * output are descriptions, but each case must compare at least one output.
 */
export function checkImage(ref: LoadedRef, c: ParityCase, outputs: Readonly<Record<string, Tensor>>, tolerance: number): ParityCheck[] {
  const checks: ParityCheck[] = [];
  const have = Object.keys(outputs).join(', ');
  for (const [name, want] of Object.entries(c.outputs)) {
    const t = outputs[name];
    if (t === undefined) {
      if (ref.format === 'cases') continue;
      throw refError(ref.file, `image ${c.name}: the model has no output "${name}" (its outputs: ${have})`);
    }
    const got = Array.from(t.data as ArrayLike<number | bigint>, Number);
    const check = (kind: ParityCheck['kind'], diff: number, allowed: number, at?: number): void =>
      void checks.push({ image: c.name, output: name, kind, diff, allowed, ok: diff <= allowed, ...(at === undefined ? {} : { at }) });
    if (Array.isArray(want)) {
      if (want.length !== got.length) throw refError(ref.file, `image ${c.name}, output ${name}: the reference has ${want.length} values, the model gives ${got.length} (dims [${t.dims.join(', ')}])`);
      const { diff, at } = largest(want, got);
      check('values', diff, tolerance, at);
      continue;
    }
    if (want.sample !== undefined) {
      if (want.sample.length > got.length) throw refError(ref.file, `image ${c.name}, output ${name}: the sample has ${want.sample.length} values, the model gives ${got.length}`);
      const { diff, at } = largest(want.sample, got);
      check('sample', diff, tolerance, at);
    }
    // Summing n float32 values accumulates rounding: the allowance grows with n, as the shipped parity test has it.
    if (want.sum !== undefined) check('sum', absDiff(want.sum, got.reduce((a, b) => a + b, 0)), tolerance * Math.max(1, got.length));
    if (want.max !== undefined) check('max', absDiff(want.max, got.reduce((a, b) => (b > a || Number.isNaN(b) ? b : a), -Infinity)), tolerance);
  }
  if (checks.length === 0) throw refError(ref.file, `image ${c.name}: no key of it names an output of the model (its outputs: ${have})`);
  return checks;
}

export interface OutputParity {
  readonly output: string;
  /** Largest difference of the element checks (values, sample, max); a sum-only output reports its sum difference. */
  readonly maxAbsDiff: number;
  /** The image it was found on. */
  readonly image: string;
  readonly checks: number;
  readonly failed: number;
  readonly passed: boolean;
}

/** Per output, the largest difference and where it was. */
export function summarise(checks: readonly ParityCheck[]): OutputParity[] {
  const by = new Map<string, ParityCheck[]>();
  for (const c of checks) by.set(c.output, [...(by.get(c.output) ?? []), c]);
  return [...by].map(([output, cs]) => {
    const elementwise = cs.filter((c) => c.kind !== 'sum');
    const worst = (elementwise.length > 0 ? elementwise : cs).reduce((a, b) => (b.diff > a.diff ? b : a));
    const failed = cs.filter((c) => !c.ok).length;
    return { output, maxAbsDiff: worst.diff, image: worst.image, checks: cs.length, failed, passed: failed === 0 };
  });
}
