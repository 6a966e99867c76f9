// A third-party plugin written against the contract alone (plain JS, its own zod import).
import { z } from 'zod';

export const plugin = {
  manifest: {
    id: 'acme/invert@1',
    kind: 'preprocess',
    description: 'inverts 8-bit pixels',
    config: z.object({}).strict(),
    accepts: [{ type: 'image/raw' }],
    produces: [{ type: 'image/raw' }],
  },
  async init() {
    return {
      async run(part, ctx) {
        ctx.signal.throwIfAborted();
        const img = part.image;
        return { image: { ...img, data: img.data.map((v) => 255 - v) } };
      },
    };
  },
};
