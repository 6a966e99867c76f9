import path from 'node:path';
import type { Box, Defect } from '../../../runtime/result.js';
import type { ArchivedImage, SampleJob } from '../jobs.js';

/*
 * Where a sample goes in the exported dataset, decided without touching the
 * disk. Three layouts side by side so each tool reads its own folder as is:
 *   classification/<label>/<file>            (torchvision ImageFolder, Ultralytics classify)
 *   yolo/images/<file> + yolo/labels/<stem>.txt   (Ultralytics detect)
 *   anomalib/train/good/<file>, anomalib/test/<label>/<file>   (anomalib Folder)
 * Samples labelled `error` have no label to learn from: they go to review/.
 */

export const GOOD = 'good';
export const ERROR_LABEL = 'error';

/** Only [A-Za-z0-9._-]; a name of dots alone would climb folders, so its dots become `_` too. */
export function safeName(s: string): string {
  const t = s.replace(/[^A-Za-z0-9._-]/g, '_');
  return /^\.*$/.test(t) ? t.replace(/\./g, '_') || '_' : t;
}

/** `<station>_<partId>_<first 12 of sha256>.<ext>`: unique per image, readable by a person sorting a folder. */
export function exportFileName(stationId: string, partId: string, image: ArchivedImage): string {
  const ext = path.posix.extname(image.key).slice(1) || 'bin';
  return safeName(`${stationId}_${partId}_${image.sha256.slice(0, 12)}.${ext}`);
}

/** A box in YOLO terms: centre and size, each 0..1 of the image. */
export interface YoloBox {
  readonly label: string;
  readonly cx: number;
  readonly cy: number;
  readonly w: number;
  readonly h: number;
}

/** Clipped to the image first: a box that spills over the edge would make training tools refuse the file. */
export function toYolo(label: string, box: Box, width: number, height: number): YoloBox {
  const x1 = Math.min(Math.max(box.x, 0), width);
  const y1 = Math.min(Math.max(box.y, 0), height);
  const x2 = Math.min(Math.max(box.x + box.w, 0), width);
  const y2 = Math.min(Math.max(box.y + box.h, 0), height);
  return { label, cx: (x1 + x2) / 2 / width, cy: (y1 + y2) / 2 / height, w: (x2 - x1) / width, h: (y2 - y1) / height };
}

export const yoloLine = (cls: number, b: YoloBox): string => `${cls} ${b.cx.toFixed(6)} ${b.cy.toFixed(6)} ${b.w.toFixed(6)} ${b.h.toFixed(6)}`;

export type YoloPlan =
  /** A good part: the image with an empty label file, YOLO's way of saying "background". */
  | { readonly kind: 'background' }
  | { readonly kind: 'boxes'; readonly defects: readonly (Defect & { readonly box: Box })[] }
  | { readonly kind: 'skipped'; readonly why: string };

export interface ExportPlan {
  readonly file: string;
  /** Paths relative to the output folder (posix) that receive the image bytes. */
  readonly images: readonly string[];
  /** Absent for review samples. */
  readonly yolo?: { readonly labelFile: string; readonly plan: YoloPlan };
}

export function planExport(job: SampleJob & { image: ArchivedImage }): ExportPlan {
  const r = job.result;
  const file = exportFileName(r.station.id, r.partId, job.image);
  if (job.label === ERROR_LABEL) return { file, images: [`review/${file}`] };
  const label = safeName(job.label);
  const good = job.label === GOOD;
  const images = [`classification/${label}/${file}`, good ? `anomalib/train/good/${file}` : `anomalib/test/${label}/${file}`];
  const yolo = yoloPlan(job);
  const labelFile = `yolo/labels/${path.posix.parse(file).name}.txt`;
  if (yolo.kind !== 'skipped') images.push(`yolo/images/${file}`);
  return { file, images, yolo: { labelFile, plan: yolo } };
}

/**
 * Every defect with a box becomes a line. A part labelled good is background
 * even when the model saw something below its thresholds: the label is what
 * the sample asserts. A defective part without boxes (a classifier, or a
 * defect the model missed) is left out rather than shown to YOLO as background.
 */
function yoloPlan(job: SampleJob): YoloPlan {
  if (job.label === GOOD) return { kind: 'background' };
  const boxed = job.result.defects.filter((d): d is Defect & { box: Box } => d.box !== undefined && d.box.w > 0 && d.box.h > 0);
  if (boxed.length > 0) return { kind: 'boxes', defects: boxed };
  return {
    kind: 'skipped',
    why: job.result.defects.length === 0 ? `labelled "${job.label}" but the result lists no defect to draw a box from` : 'no defect carries a box (a classifier)',
  };
}
