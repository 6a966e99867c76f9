/**
 * Third-party plugin modules the fault cases load through a station's
 * `plugins:` list, written into the case's temp root as a plant engineer
 * would drop them there: plain JavaScript against the plugin contract.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../helpers/station.js';

/** `import { z } from 'zod'` would not resolve from a temp folder: the plugins import linegate's own copy by URL. */
const ZOD_URL = pathToFileURL(path.join(ROOT, 'node_modules/zod/index.js')).href;

/**
 * A third-party postprocess stage, `faults/slow@1`: passes the findings on
 * after `delayMs`, and holds any part that arrives while the file `holdWhile`
 * exists until it is deleted (at most `maxHoldMs`). The hold ignores the
 * part's abort signal, as an ONNX run does. It logs each hold and release
 * with the part's identity, so a case can act while a part is in inspection.
 */
export function writeSlowPlugin(root: string): string {
  const file = path.join(root, 'faults-slow.mjs');
  writeFileSync(
    file,
    `import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from ${JSON.stringify(ZOD_URL)};

export const plugin = {
  manifest: {
    id: 'faults/slow@1',
    kind: 'postprocess',
    description: 'delays each part; holds parts while a flag file exists (fault suite)',
    config: z.object({ delayMs: z.number().min(0).default(0), holdWhile: z.string().optional(), maxHoldMs: z.number().min(0).default(60000) }).strict(),
    accepts: [{ type: 'findings' }],
    produces: [{ type: 'findings' }],
  },
  async init(config) {
    return {
      async run(part, ctx) {
        const who = { partId: part.frame.partId, sequence: part.frame.sequence, trigger: part.frame.trigger ?? null };
        if (config.holdWhile !== undefined && existsSync(config.holdWhile)) {
          ctx.log.warn(who, 'faults/slow: holding part');
          const end = Date.now() + config.maxHoldMs;
          while (existsSync(config.holdWhile) && Date.now() < end) await sleep(10);
          ctx.log.warn(who, 'faults/slow: released part');
        }
        if (config.delayMs > 0) await sleep(config.delayMs);
        return { findings: part.findings };
      },
    };
  },
};
`,
  );
  return './faults-slow.mjs';
}

/**
 * A third-party sink, `faults/hang@1`, whose init never resolves and keeps a
 * timer running whatever its abort signal says: a connect that never answers,
 * holding its socket.
 */
export function writeHangPlugin(root: string): string {
  const file = path.join(root, 'faults-hang.mjs');
  writeFileSync(
    file,
    `import { z } from ${JSON.stringify(ZOD_URL)};

export const plugin = {
  manifest: {
    id: 'faults/hang@1',
    kind: 'sink',
    description: 'an init that never resolves and holds a timer (fault suite)',
    config: z.object({}).strict(),
  },
  init() {
    setInterval(() => undefined, 1000);
    return new Promise(() => undefined);
  },
};
`,
  );
  return './faults-hang.mjs';
}
