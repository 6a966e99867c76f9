import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';

/*
 * The API's own route table: every route is data (method, url, access, zod schemas for its query,
 * params and responses) plus a handler that never sees fastify. The server mounts the table, and
 * the OpenAPI document is generated from the same table, so the two cannot drift.
 */

export type Access = 'open' | 'read' | 'write';

export interface RouteInput<Q, P> {
  readonly query: Q;
  readonly params: P;
  readonly body: Buffer | undefined;
  readonly contentType: string | undefined;
  /** Aborted when the client goes away or the server closes. */
  readonly signal: AbortSignal;
  /** The name of the token that passed the gate (for a deploy's "who"); undefined when the route needed none. */
  readonly caller?: string;
}

export type RouteReply =
  | { readonly status: number; readonly json: unknown }
  | { readonly status: number; readonly bytes: Buffer; readonly contentType: string; readonly headers?: Readonly<Record<string, string>> }
  | { readonly status: number; readonly text: string; readonly contentType: string }
  /** The route takes the raw response over (server-sent events). */
  | { readonly stream: (req: IncomingMessage, res: ServerResponse) => void };

export interface ResponseSpec {
  readonly description: string;
  /** JSON body schema; responses are validated against it before they are sent. */
  readonly schema?: z.ZodType;
  /** For non-JSON bodies: `text/plain`, `image/*`, `text/event-stream`. */
  readonly contentType?: string;
}

export interface BodySpec {
  /** `image/*` matches any image type. */
  readonly contentTypes: readonly string[];
  readonly maxBytes: number;
  readonly description: string;
  /** For multipart/form-data: the form's JSON Schema, when its parts are not one `image` (the OpenAPI document's request body). */
  readonly form?: Readonly<Record<string, unknown>>;
}

export interface RouteSpec<Q = unknown, P = unknown> {
  readonly method: 'GET' | 'POST';
  /** fastify syntax, `/api/results/:id`. */
  readonly url: string;
  readonly summary: string;
  readonly access: Access;
  readonly query?: z.ZodType<Q>;
  readonly params?: z.ZodType<P>;
  readonly body?: BodySpec;
  readonly responses: Readonly<Record<number, ResponseSpec>>;
  handle(input: RouteInput<Q, P>): Promise<RouteReply>;
}

/** Keeps each route's query and params types precise inside its definition, then erases them for the table. */
export function defineRoute<Q, P>(spec: RouteSpec<Q, P>): RouteSpec {
  return spec as unknown as RouteSpec;
}
