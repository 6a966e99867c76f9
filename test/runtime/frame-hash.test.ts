import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { withFrameHash } from '../../runtime/execute/outcome.js';
import { sampleResult } from '../helpers/samples.js';

describe("the frame's content address on the result record", () => {
  const sha = (d: Uint8Array): string => createHash('sha256').update(d).digest('hex');

  it('is the sha256 of the encoded bytes the source gave, the key the image archive stores them under, also past the size hashed off the event loop', async () => {
    for (const bytes of [50 * 1024, 3 * 1024 * 1024]) {
      const data = Buffer.from(new Uint8Array(bytes).map((_, i) => i % 251));
      const r = await withFrameHash(sampleResult(), { kind: 'encoded', data, format: 'jpeg' });
      expect(r.frame.sha256).toBe(sha(data));
    }
  });

  it('is left out for a raw frame (archived as a PNG only the queue sink encodes) and for a frame without its image', async () => {
    const result = sampleResult();
    expect(await withFrameHash(result, { kind: 'raw', data: new Uint8Array(4), width: 2, height: 2, channels: 1, colorOrder: 'GRAY' })).toBe(result);
    expect(await withFrameHash(result, undefined)).toBe(result);
  });
});
