import { areaToSource, boxToSource, type InputTransform } from '../../runtime/contract.js';
import type { Region } from '../../runtime/result.js';
import { nms } from './nms.js';
import { connectedComponents } from './regions.js';

export interface ScoredRegion {
  readonly score: number;
  readonly region: Region;
}

/**
 * Blobs of `map >= threshold` (or of `mask`, when the model gives its own)
 * as regions in source pixels: box through the item's transform, area scaled
 * by the resize factor, and mm² when the station has a scale.
 */
export function mapRegions(
  map: ArrayLike<number>,
  mask: ArrayLike<number> | undefined,
  width: number,
  height: number,
  threshold: number,
  t: InputTransform,
  minAreaPx: number,
  mmPerPixel: number | undefined,
): ScoredRegion[] {
  const bin = mask ?? Uint8Array.from({ length: width * height }, (_, i) => (map[i]! >= threshold ? 1 : 0));
  const out: ScoredRegion[] = [];
  for (const blob of connectedComponents(bin, map, width, height, minAreaPx)) {
    const box = boxToSource(t, blob.x0, blob.y0, blob.x1 + 1, blob.y1 + 1);
    if (box === undefined) continue; // entirely in letterbox padding
    const areaPx = areaToSource(t, blob.area);
    out.push({
      score: Math.min(1, Math.max(0, blob.max)),
      region: { areaPx: round2(areaPx), ...(mmPerPixel === undefined ? {} : { areaMm2: round2(areaPx * mmPerPixel * mmPerPixel) }), box },
    });
  }
  return out;
}

/** Regions found twice by overlapping tiles are kept once (the higher score). */
export function dedupeRegions(regions: readonly ScoredRegion[], items: number): ScoredRegion[] {
  if (items <= 1) return [...regions];
  const boxes = regions.map((r) => ({ x1: r.region.box.x, y1: r.region.box.y, x2: r.region.box.x + r.region.box.w, y2: r.region.box.y + r.region.box.h, score: r.score, cls: 0, r }));
  return nms(boxes, 0.3, Number.MAX_SAFE_INTEGER).map((b) => b.r);
}

const round2 = (v: number): number => Math.round(v * 100) / 100;
