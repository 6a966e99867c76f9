/** An image's encoding from its first bytes: a file name or a Content-Type can lie, the magic numbers do not. */
export function sniffImageFormat(data: Uint8Array): 'jpeg' | 'png' | 'bmp' | 'tiff' | 'webp' | undefined {
  const b = (i: number): number => data[i] ?? -1;
  if (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return 'jpeg';
  if (b(0) === 0x89 && b(1) === 0x50 && b(2) === 0x4e && b(3) === 0x47) return 'png';
  if (b(0) === 0x42 && b(1) === 0x4d) return 'bmp';
  if ((b(0) === 0x49 && b(1) === 0x49 && b(2) === 0x2a && b(3) === 0) || (b(0) === 0x4d && b(1) === 0x4d && b(2) === 0 && b(3) === 0x2a)) return 'tiff';
  if (b(0) === 0x52 && b(1) === 0x49 && b(2) === 0x46 && b(3) === 0x46 && b(8) === 0x57 && b(9) === 0x45 && b(10) === 0x42 && b(11) === 0x50) return 'webp';
  return undefined;
}
