import { LinegateError } from '../../errors.js';
import type { ApiContext } from '../context.js';
import { defineRoute, type RouteSpec } from '../route.js';
import { ErrorBody, NoQuery } from '../schemas.js';

export function observeRoutes(c: ApiContext): RouteSpec[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/metrics',
      summary: 'Prometheus metrics (text exposition format 0.0.4): results by verdict, reject code and label, stage and cycle latency, drops, in-flight parts, sink lanes, spool, PLC link, model identity.',
      access: 'read',
      query: NoQuery,
      responses: { 200: { description: 'the metrics', contentType: 'text/plain; version=0.0.4' }, 401: { description: 'token needed (api.auth: all)', schema: ErrorBody } },
      handle: async () => {
        const { text, contentType } = await c.metrics.text();
        return { status: 200, text, contentType };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/events',
      summary: "Server-sent events: each result as the station decides it (`event: result`, `id:` the result id, `data:` the result record); a comment line as heartbeat. A client that reads too slowly is dropped.",
      access: 'read',
      query: NoQuery,
      responses: { 200: { description: 'the event stream', contentType: 'text/event-stream' }, 401: { description: 'token needed (api.auth: all)', schema: ErrorBody }, 429: { description: 'too many clients', schema: ErrorBody } },
      handle: async () => {
        if (c.events.full) throw new LinegateError('LG_ERR_API_BUSY', ['GET /api/events', 'too many event-stream clients']);
        return { stream: (req, res) => c.events.attach(req, res) };
      },
    }),
  ];
}
