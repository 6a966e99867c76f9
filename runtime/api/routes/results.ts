import { LinegateError } from '../../errors.js';
import type { HistoryFilter } from '../../history.js';
import { InspectionResult } from '../../result.js';
import type { ApiContext } from '../context.js';
import { drawOverlay } from '../overlay.js';
import { defineRoute, type RouteSpec } from '../route.js';
import { ErrorBody, IdParams, ImageQuery, NoQuery, ResultsPage, ResultsQuery } from '../schemas.js';

const read401 = { description: 'token needed (api.auth: all)', schema: ErrorBody };
const bad400 = { description: 'a bad query or id', schema: ErrorBody };

export function resultRoutes(c: ApiContext): RouteSpec[] {
  const find = async (id: string): Promise<InspectionResult> => {
    const r = (await c.history.get(id)) ?? (c.recent === c.history ? undefined : await c.recent?.get(id));
    if (r === undefined) throw new LinegateError('LG_ERR_API_NOT_FOUND', [`no result with id ${id}`]);
    return r;
  };
  return [
    defineRoute({
      method: 'GET',
      url: '/api/results',
      summary: 'Results, newest first, filtered by part id, verdict, reason code, reject code, defect label and decidedAt range; cursor paging.',
      access: 'read',
      query: ResultsQuery,
      responses: { 200: { description: 'a page of results', schema: ResultsPage }, 400: bad400, 401: read401 },
      handle: async ({ query }) => {
        const { limit, cursor, ...rest } = query;
        const filter: HistoryFilter = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
        if (filter.since !== undefined && filter.until !== undefined && Date.parse(filter.since) >= Date.parse(filter.until)) {
          throw new LinegateError('LG_ERR_API_BAD_REQUEST', ['GET /api/results', 'since must be before until']);
        }
        const page = await c.history.query(filter, cursor === undefined ? { limit } : { limit, cursor });
        return { status: 200, json: { items: page.items, ...(page.next === undefined ? {} : { next: page.next }) } };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/api/results/:id',
      summary: 'One result by its id (the record `linegate schema result` describes).',
      access: 'read',
      query: NoQuery,
      params: IdParams,
      responses: { 200: { description: 'the result', schema: InspectionResult }, 400: bad400, 401: read401, 404: { description: 'no such result', schema: ErrorBody } },
      handle: async ({ params }) => ({ status: 200, json: await find(params.id) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/api/results/:id/image',
      summary: "The result's image as kept (the archive, by its sha256; else its frame inside the station root); `?overlay=1`: PNG with the defects drawn on it.",
      access: 'read',
      query: ImageQuery,
      params: IdParams,
      responses: {
        200: { description: 'the image', contentType: 'image/*' },
        400: bad400,
        401: read401,
        404: { description: 'no such result, or its image is not kept', schema: ErrorBody },
      },
      handle: async ({ params, query }) => {
        const result = await find(params.id);
        const image = await c.images.read(result);
        const overlay = query.overlay === '1' || query.overlay === 'true';
        if (!overlay) return { status: 200, bytes: image.data, contentType: image.contentType, headers: { 'cache-control': 'private, max-age=3600' } };
        return { status: 200, bytes: await drawOverlay(image.data, result), contentType: 'image/png', headers: { 'cache-control': 'private, max-age=3600' } };
      },
    }),
  ];
}
