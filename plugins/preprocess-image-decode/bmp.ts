import type { RawImage } from '../../runtime/contract.js';

/** True when the bytes start like a Windows bitmap ("BM"). */
export const isBmp = (data: Uint8Array): boolean => data.length >= 2 && data[0] === 0x42 && data[1] === 0x4d;

const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;

/**
 * Decodes an uncompressed BMP (1/4/8-bit palette, 24-bit, 32-bit) to RGB, or
 * to grey when its palette is all grey. libvips (and so sharp) has no BMP
 * loader, yet industrial cameras and frame grabbers often write BMP. Throws
 * an Error that says what is wrong with a file it cannot read.
 */
export function decodeBmp(data: Uint8Array): RawImage {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const need = (end: number, what: string): void => {
    if (end > data.length) throw new Error(`BMP is truncated (${what} needs ${end} bytes, the file has ${data.length})`);
  };
  need(26, 'the headers');
  const pixelOffset = view.getUint32(10, true);
  const dib = view.getUint32(14, true);
  let width: number;
  let height: number;
  let bpp: number;
  let compression = BI_RGB;
  let colorsUsed = 0;
  if (dib === 12) {
    width = view.getUint16(18, true);
    height = view.getInt16(20, true);
    bpp = view.getUint16(24, true);
  } else if (dib >= 40) {
    need(14 + 40, 'the info header');
    width = view.getInt32(18, true);
    height = view.getInt32(22, true);
    bpp = view.getUint16(28, true);
    compression = view.getUint32(30, true);
    colorsUsed = view.getUint32(46, true);
  } else {
    throw new Error(`BMP header of ${dib} bytes is not a known kind`);
  }
  const topDown = height < 0;
  height = Math.abs(height);
  if (width <= 0 || height <= 0 || width * height > 100_000_000) throw new Error(`BMP size ${width}x${height} is not plausible`);
  const bitfields = compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS;
  if (!(compression === BI_RGB || (bitfields && bpp === 32))) throw new Error(`BMP compression ${compression} with ${bpp} bits is not supported (only uncompressed)`);
  if (![1, 4, 8, 24, 32].includes(bpp)) throw new Error(`BMP with ${bpp} bits per pixel is not supported`);
  if (bitfields) {
    // Only the usual BGRA/BGRX layout; other masks would need per-pixel shifts.
    const masksAt = 54; // right after the 40-byte info header, also inside the V4/V5 headers
    need(masksAt + 12, 'the colour masks');
    const [r, g, b] = [view.getUint32(masksAt, true), view.getUint32(masksAt + 4, true), view.getUint32(masksAt + 8, true)];
    if (r !== 0x00ff0000 || g !== 0x0000ff00 || b !== 0x000000ff) throw new Error('BMP colour masks other than 8-bit BGR(A) are not supported');
  }
  const stride = Math.ceil((width * bpp) / 32) * 4;
  need(pixelOffset + stride * height, 'the pixel rows');
  const rowStart = (y: number): number => pixelOffset + (topDown ? y : height - 1 - y) * stride;

  if (bpp <= 8) {
    const entries = colorsUsed > 0 ? colorsUsed : 1 << bpp;
    const entrySize = dib === 12 ? 3 : 4;
    const paletteAt = 14 + dib;
    need(paletteAt + entries * entrySize, 'the palette');
    const palette = new Uint8Array(entries * 3);
    let grey = true;
    for (let i = 0; i < entries; i++) {
      const o = paletteAt + i * entrySize;
      palette[i * 3] = data[o + 2]!;
      palette[i * 3 + 1] = data[o + 1]!;
      palette[i * 3 + 2] = data[o]!;
      if (data[o] !== data[o + 1] || data[o] !== data[o + 2]) grey = false;
    }
    const channels = grey ? 1 : 3;
    const out = new Uint8Array(width * height * channels);
    const perByte = 8 / bpp;
    const mask = (1 << bpp) - 1;
    for (let y = 0; y < height; y++) {
      const row = rowStart(y);
      for (let x = 0; x < width; x++) {
        const byte = data[row + Math.floor(x / perByte)]!;
        const shift = 8 - bpp * ((x % perByte) + 1);
        const index = (byte >> shift) & mask;
        if (index >= entries) throw new Error(`BMP pixel uses palette entry ${index} of ${entries}`);
        const o = (y * width + x) * channels;
        if (grey) out[o] = palette[index * 3]!;
        else {
          out[o] = palette[index * 3]!;
          out[o + 1] = palette[index * 3 + 1]!;
          out[o + 2] = palette[index * 3 + 2]!;
        }
      }
    }
    return { kind: 'raw', data: out, width, height, channels, colorOrder: grey ? 'GRAY' : 'RGB' };
  }

  const step = bpp / 8;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = rowStart(y);
    for (let x = 0, s = row, o = y * width * 3; x < width; x++, s += step, o += 3) {
      out[o] = data[s + 2]!;
      out[o + 1] = data[s + 1]!;
      out[o + 2] = data[s]!;
    }
  }
  return { kind: 'raw', data: out, width, height, channels: 3, colorOrder: 'RGB' };
}
