import { readFile } from 'node:fs/promises';
import { LinegateError, messageOf } from '../errors.js';
import type { AnnotationRef } from './dataset.js';
import type { TruthBox } from './report.js';

/** The objects of a Pascal VOC file as boxes (xmin/ymin/xmax/ymax in pixels). */
export function parseVoc(xml: string, file: string): TruthBox[] {
  return [...xml.matchAll(/<object>([\s\S]*?)<\/object>/g)].map((m) => {
    const body = m[1]!;
    const tag = (t: string): string => {
      const v = new RegExp(`<${t}>\\s*([^<]*?)\\s*</${t}>`).exec(body)?.[1];
      if (v === undefined || v === '') throw new LinegateError('LG_ERR_REPLAY_ANNOTATION', [file, `an <object> has no <${t}>`]);
      return v;
    };
    const [x1, y1, x2, y2] = ['xmin', 'ymin', 'xmax', 'ymax'].map((t) => Number(tag(t))) as [number, number, number, number];
    if (![x1, y1, x2, y2].every(Number.isFinite) || x2 < x1 || y2 < y1) throw new LinegateError('LG_ERR_REPLAY_ANNOTATION', [file, `box ${x1},${y1},${x2},${y2} is not a box`]);
    return { label: tag('name'), x: x1, y: y1, w: x2 - x1, h: y2 - y1 };
  });
}

/** YOLO txt lines `class cx cy w h` (normalised) as boxes in pixels of a width x height image. */
export function parseYolo(text: string, names: readonly string[], width: number, height: number, file: string): TruthBox[] {
  const out: TruthBox[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (t === '') return;
    const v = t.split(/\s+/).map(Number);
    if (v.length < 5 || !v.every(Number.isFinite) || !Number.isInteger(v[0])) throw new LinegateError('LG_ERR_REPLAY_ANNOTATION', [file, `line ${i + 1} is not "class cx cy w h"`]);
    const [c, cx, cy, w, h] = v as [number, number, number, number, number];
    out.push({ label: names[c] ?? `class${c}`, x: (cx - w / 2) * width, y: (cy - h / 2) * height, w: w * width, h: h * height });
  });
  return out;
}

/**
 * The truth boxes of one image. YOLO needs the image size and the class
 * names; a mask's regions take the image's class as their label.
 */
export async function readTruth(ref: AnnotationRef, o: { truth: string; size?: { width: number; height: number }; yoloNames: readonly string[] }): Promise<TruthBox[]> {
  try {
    if (ref.kind === 'voc') return parseVoc(await readFile(ref.file, 'utf8'), ref.file);
    if (ref.kind === 'yolo') {
      if (o.size === undefined) throw new LinegateError('LG_ERR_REPLAY_ANNOTATION', [ref.file, 'the image size is unknown (it did not decode), so normalised YOLO boxes cannot be placed']);
      return parseYolo(await readFile(ref.file, 'utf8'), o.yoloNames, o.size.width, o.size.height, ref.file);
    }
    const { maskBoxes } = await import('../../plugins/preprocess-image-decode/mask.js');
    // A good part's mask is empty: no boxes, which is its truth.
    return (await maskBoxes(ref.file)).boxes.map((b) => ({ label: o.truth, x: b.x, y: b.y, w: b.w, h: b.h }));
  } catch (e) {
    if (e instanceof LinegateError) throw e;
    throw new LinegateError('LG_ERR_REPLAY_ANNOTATION', [ref.file, messageOf(e)], { cause: e });
  }
}
