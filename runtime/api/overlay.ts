import type { InspectionResult } from '../result.js';

/*
 * sharp is loaded here only, when an overlay is asked for, and none of its types leave this file:
 * the runtime does not depend on a plugin's image library for anything else.
 */

type SharpFactory = (input: Buffer) => {
  metadata(): Promise<{ width?: number; height?: number }>;
  composite(layers: { input: Buffer; top: number; left: number }[]): { png(): { toBuffer(): Promise<Buffer> } };
};

let sharpLoaded: Promise<SharpFactory> | undefined;
const loadSharp = (): Promise<SharpFactory> => (sharpLoaded ??= import('sharp').then((m) => m.default as unknown as SharpFactory));

const esc = (s: string): string => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The defects' boxes, regions (box and outline) and labels drawn over the image, as PNG. */
export async function drawOverlay(image: Buffer, result: InspectionResult): Promise<Buffer> {
  const sharp = await loadSharp();
  const meta = await sharp(image).metadata();
  const width = meta.width ?? 1;
  const height = meta.height ?? 1;
  const stroke = Math.max(2, Math.round(Math.min(width, height) / 200));
  const font = Math.max(12, Math.round(Math.min(width, height) / 30));
  const color = result.verdict === 'pass' ? '#22c55e' : result.verdict === 'fail' ? '#ef4444' : '#f59e0b';
  const shapes: string[] = [];
  for (const d of result.defects) {
    const box = d.box ?? d.region?.box;
    if (d.region?.polygon !== undefined && d.region.polygon.length > 2) {
      shapes.push(`<polygon points="${d.region.polygon.map(([x, y]) => `${x},${y}`).join(' ')}" fill="${color}" fill-opacity="0.25" stroke="${color}" stroke-width="${stroke}"/>`);
    }
    if (box !== undefined) {
      shapes.push(`<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="none" stroke="${color}" stroke-width="${stroke}"/>`);
      shapes.push(`<text x="${box.x}" y="${Math.max(font, box.y - stroke)}" font-family="sans-serif" font-size="${font}" fill="${color}">${esc(`${d.label} ${d.score.toFixed(2)}`)}</text>`);
    }
  }
  shapes.push(`<text x="${stroke * 2}" y="${font + stroke}" font-family="sans-serif" font-size="${font}" fill="${color}">${esc(`${result.verdict} ${result.rejectCode} ${result.partId}`)}</text>`);
  const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${shapes.join('')}</svg>`);
  return sharp(image).composite([{ input: svg, top: 0, left: 0 }]).png().toBuffer();
}
