import { statfs } from 'node:fs/promises';
import type { ApiContext } from '../context.js';
import { defineRoute, type RouteSpec } from '../route.js';
import { AliveBody, ErrorBody, NoQuery, ReadyBody } from '../schemas.js';

/** Below this much free space on the station root's file system the station is not ready: results and spools would soon be refused. */
const MIN_FREE_BYTES = 64 * 1024 * 1024;

export function healthRoutes(c: ApiContext): RouteSpec[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/health',
      summary: 'The process is alive (liveness); never needs a token.',
      access: 'open',
      query: NoQuery,
      responses: { 200: { description: 'alive', schema: AliveBody } },
      handle: async () => ({ status: 200, json: { alive: true, station: c.station.plan.settings.id, uptimeS: Math.round((Date.now() - c.startedAt) / 1000) } }),
    }),
    defineRoute({
      method: 'GET',
      url: '/ready',
      summary: "The station's health record: 200 when it can inspect (steps up, none down, disk has room), else 503 with the same record.",
      access: 'read',
      query: NoQuery,
      responses: { 200: { description: 'ready', schema: ReadyBody }, 503: { description: 'not ready', schema: ReadyBody }, 401: { description: 'token needed (api.auth: all)', schema: ErrorBody } },
      handle: async () => {
        const body = await readyBody(c);
        return { status: body.ready ? 200 : 503, json: body };
      },
    }),
  ];
}

export async function readyBody(c: ApiContext): Promise<ReadyBody> {
  const h = c.station.health();
  const plan = c.station.plan;
  const disk = await statfs(plan.root).then(
    (s) => ({ path: plan.root, freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize, ok: s.bavail * s.bsize >= MIN_FREE_BYTES }),
    () => undefined,
  );
  const up = h.state === 'READY' || h.state === 'PLAYING';
  return {
    ready: up && h.status !== 'down' && disk?.ok !== false,
    station: plan.settings.id,
    status: h.status,
    state: h.state,
    frames: h.frames,
    steps: h.steps,
    models: (plan.models ?? []).map((m) => ({ step: m.step, name: m.model.name, version: m.model.version, sha256: m.model.sha256 })),
    ...(disk === undefined ? {} : { disk }),
  };
}
