/**
 * How a step adds routes to the station's HTTP API without seeing fastify: it `provides`
 * HTTP_ROUTES_SERVICE and its `service(HTTP_ROUTES_SERVICE)` returns an `HttpRoutes`. The server
 * mounts each route under `/api/steps/<step>/<path>`, after the steps started and before the first
 * request, and unmounts them by closing before the steps close. It validates the query with the
 * route's zod schema, applies the bearer-token rules of its `access`, limits and types the body,
 * and maps a thrown LinegateError to its JSON error; the route's schemas appear in the OpenAPI
 * document like the server's own.
 */
import type { z } from 'zod';

export const HTTP_ROUTES_SERVICE = 'linegate/http-routes@1';

export interface PluginRouteRequest {
  /** The query, parsed by the route's `query` schema. */
  readonly query: unknown;
  /** The raw body (already size-limited), for routes that declare `body`. */
  readonly body: Buffer | undefined;
  readonly contentType: string | undefined;
  /** Aborted when the client goes away or the server closes. */
  readonly signal: AbortSignal;
}

export interface PluginRouteReply {
  readonly status: number;
  /** Validated against `responses[status].schema` before it is sent. */
  readonly json: unknown;
}

export interface PluginRoute {
  readonly method: 'GET' | 'POST';
  /** Below `/api/steps/<step>/`; letters, digits, - and _ only. */
  readonly path: string;
  readonly summary: string;
  /** write: changes state (needs the token, off without one); read: needs it with `api.auth: all`. */
  readonly access: 'read' | 'write';
  readonly query?: z.ZodType;
  /** The content types the body may have (`image/*` matches any image), and its largest size (default: api.maxUploadMiB). */
  readonly body?: { readonly contentTypes: readonly string[]; readonly maxBytes?: number; readonly description: string };
  readonly responses: Readonly<Record<number, { readonly description: string; readonly schema?: z.ZodType }>>;
  handle(req: PluginRouteRequest): Promise<PluginRouteReply>;
}

export interface HttpRoutes {
  routes(): readonly PluginRoute[];
}

/** Whether a service object is an HttpRoutes (services are `unknown` to the runtime). */
export function isHttpRoutes(v: unknown): v is HttpRoutes {
  return typeof v === 'object' && v !== null && typeof (v as { routes?: unknown }).routes === 'function';
}
