export interface Scored {
  readonly x1: number;
  readonly y1: number;
  readonly x2: number;
  readonly y2: number;
  readonly score: number;
  readonly cls: number;
}

export function iou(a: Scored, b: Scored): number {
  const w = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const h = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter);
}

/** Greedy class-wise non-maximum suppression, highest score first; at most `max` boxes kept. */
export function nms<T extends Scored>(boxes: readonly T[], iouThreshold: number, max: number): T[] {
  const sorted = [...boxes].sort((a, b) => b.score - a.score);
  const kept: T[] = [];
  for (const box of sorted) {
    if (kept.length >= max) break;
    if (kept.every((k) => k.cls !== box.cls || iou(k, box) <= iouThreshold)) kept.push(box);
  }
  return kept;
}
