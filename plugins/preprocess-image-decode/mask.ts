import sharp from 'sharp';
import { connectedComponents } from '../lib/regions.js';

/**
 * The defect regions of a ground-truth mask PNG (any non-zero pixel is defect,
 * as in MVTec AD and Magnetic-tile) as boxes, one per 8-connected component.
 * Plain types out: replay in runtime/ uses it without knowing sharp.
 */
export async function maskBoxes(file: string): Promise<{ width: number; height: number; boxes: { x: number; y: number; w: number; h: number; areaPx: number }[] }> {
  const { data, info } = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
  const blobs = connectedComponents(data, data, info.width, info.height);
  return {
    width: info.width,
    height: info.height,
    boxes: blobs.map((b) => ({ x: b.x0, y: b.y0, w: b.x1 - b.x0 + 1, h: b.y1 - b.y0 + 1, areaPx: b.area })),
  };
}
