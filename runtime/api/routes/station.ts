import path from 'node:path';
import type { PlannedStep } from '../../compile/compile.js';
import type { ApiContext } from '../context.js';
import { redact } from '../redact.js';
import { defineRoute, type RouteSpec } from '../route.js';
import { ErrorBody, NoQuery, StationBody } from '../schemas.js';

export function stationRoutes(c: ApiContext): RouteSpec[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/api/station',
      summary: 'The compiled plan and the effective config (defaults applied), secrets redacted.',
      access: 'read',
      query: NoQuery,
      responses: { 200: { description: 'the station', schema: StationBody }, 401: { description: 'token needed (api.auth: all)', schema: ErrorBody } },
      handle: async () => ({ status: 200, json: stationBody(c) }),
    }),
  ];
}

function stationBody(c: ApiContext): unknown {
  const plan = c.station.plan;
  const step = (s: PlannedStep, sink = false) => ({ name: s.name, use: s.plugin.manifest.id, kind: s.kind, ...(sink ? { critical: s.critical } : {}), config: redact(s.config) ?? {} });
  const cal = plan.calibrationUse;
  return {
    id: plan.settings.id,
    file: path.relative(plan.root, plan.file) || plan.file,
    root: plan.root,
    settings: redact(plan.settings),
    source: step(plan.source),
    stages: plan.stages.map((s) => step(s)),
    sinks: plan.sinks.map((s) => step(s, true)),
    models: (plan.models ?? []).map((m) => ({ step: m.step, name: m.model.name, version: m.model.version, sha256: m.model.sha256 })),
    ...(cal === undefined ? {} : { calibration: redact({ ...cal, file: path.relative(plan.root, cal.file) }) }),
    api: { host: c.settings.host, port: c.boundPort(), auth: c.settings.auth, writes: c.writesOn, maxUploadBytes: Math.floor(c.settings.maxUploadMiB * 1024 * 1024) },
  };
}
