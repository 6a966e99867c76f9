export type Polygon = readonly (readonly [number, number])[];

/** Even-odd ray casting; a point on an edge may fall either way. */
export function insidePolygon([x, y]: readonly [number, number], poly: Polygon): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i]!;
    const [xj, yj] = poly[j]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

export const insideAny = (p: readonly [number, number], polys: readonly Polygon[]): boolean => polys.some((poly) => insidePolygon(p, poly));
