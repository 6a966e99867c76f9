/** A connected blob of set pixels in a mask, with statistics of the value map under it. */
export interface Blob {
  readonly area: number;
  readonly x0: number;
  readonly y0: number;
  /** Inclusive. */
  readonly x1: number;
  readonly y1: number;
  readonly max: number;
  readonly mean: number;
}

/**
 * 8-connected components of `mask` (non-zero = set) over a `width` x `height`
 * grid, in one raster pass with union-find, then one pass of statistics over
 * `values` (the score map). Blobs smaller than `minArea` are left out.
 */
export function connectedComponents(mask: ArrayLike<number>, values: ArrayLike<number>, width: number, height: number, minArea = 1): Blob[] {
  const labels = new Int32Array(width * height);
  const parent: number[] = [0];
  const find = (a: number): number => {
    let r = a;
    while (parent[r] !== r) r = parent[r]!;
    while (parent[a] !== r) {
      const next = parent[a]!;
      parent[a] = r;
      a = next;
    }
    return r;
  };
  const union = (a: number, b: number): number => {
    const ra = find(a);
    const rb = find(b);
    if (ra === rb) return ra;
    const [lo, hi] = ra < rb ? [ra, rb] : [rb, ra];
    parent[hi] = lo;
    return lo;
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (!mask[i]) continue;
      let label = 0;
      // Neighbours already visited: W, NW, N, NE.
      const neighbours = [x > 0 ? i - 1 : -1, x > 0 && y > 0 ? i - width - 1 : -1, y > 0 ? i - width : -1, x < width - 1 && y > 0 ? i - width + 1 : -1];
      for (const n of neighbours) {
        if (n < 0) continue;
        const l = labels[n]!;
        if (l !== 0) label = label === 0 ? find(l) : union(label, l);
      }
      if (label === 0) {
        label = parent.length;
        parent.push(label);
      }
      labels[i] = label;
    }
  }
  const stats = new Map<number, { area: number; x0: number; y0: number; x1: number; y1: number; max: number; sum: number }>();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const l = labels[i]!;
      if (l === 0) continue;
      const root = find(l);
      const v = values[i]!;
      const s = stats.get(root);
      if (s === undefined) stats.set(root, { area: 1, x0: x, y0: y, x1: x, y1: y, max: v, sum: v });
      else {
        s.area++;
        if (x < s.x0) s.x0 = x;
        if (x > s.x1) s.x1 = x;
        if (y > s.y1) s.y1 = y;
        if (v > s.max) s.max = v;
        s.sum += v;
      }
    }
  }
  return [...stats.values()].filter((s) => s.area >= minArea).map((s) => ({ area: s.area, x0: s.x0, y0: s.y0, x1: s.x1, y1: s.y1, max: s.max, mean: s.sum / s.area }));
}
