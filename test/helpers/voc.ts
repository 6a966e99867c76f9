import { readFileSync } from 'node:fs';

export interface VocBox {
  readonly label: string;
  readonly x1: number;
  readonly y1: number;
  readonly x2: number;
  readonly y2: number;
}

/** The objects of a Pascal VOC annotation file (enough of VOC for bounding boxes). */
export function readVoc(file: string): VocBox[] {
  const xml = readFileSync(file, 'utf8');
  return [...xml.matchAll(/<object>([\s\S]*?)<\/object>/g)].map((m) => {
    const body = m[1]!;
    const tag = (t: string): string => {
      const v = new RegExp(`<${t}>\\s*([^<]*?)\\s*</${t}>`).exec(body)?.[1];
      if (v === undefined) throw new Error(`${file}: object without <${t}>`);
      return v;
    };
    return { label: tag('name'), x1: Number(tag('xmin')), y1: Number(tag('ymin')), x2: Number(tag('xmax')), y2: Number(tag('ymax')) };
  });
}

export function iou(a: VocBox, b: { x: number; y: number; w: number; h: number }): number {
  const w = Math.min(a.x2, b.x + b.w) - Math.max(a.x1, b.x);
  const h = Math.min(a.y2, b.y + b.h) - Math.max(a.y1, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + b.w * b.h - inter);
}
