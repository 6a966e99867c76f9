import { LinegateError } from '../../errors.js';
import { InspectionResult } from '../../result.js';
import type { ApiContext } from '../context.js';
import { sniff } from '../images.js';
import { imageFromMultipart } from '../multipart.js';
import { defineRoute, type RouteSpec } from '../route.js';
import { ErrorBody, InspectQuery } from '../schemas.js';

export function inspectRoutes(c: ApiContext): RouteSpec[] {
  const maxBytes = Math.floor(c.settings.maxUploadMiB * 1024 * 1024);
  return [
    defineRoute({
      method: 'POST',
      url: '/api/inspect',
      summary: "Inspects an uploaded image now through the station's own stages, with the sinks off (no PLC, no queue, no history), and returns the result. Needs the token.",
      access: 'write',
      query: InspectQuery,
      body: { contentTypes: ['image/*', 'multipart/form-data'], maxBytes, description: 'the image as the body (image/jpeg, image/png, ...), or multipart/form-data with a part named "image"' },
      responses: {
        200: { description: 'the result', schema: InspectionResult },
        400: { description: 'a bad query, or not an image', schema: ErrorBody },
        401: { description: 'missing or wrong token', schema: ErrorBody },
        403: { description: 'no token configured: the route is off', schema: ErrorBody },
        413: { description: 'larger than api.maxUploadMiB', schema: ErrorBody },
        415: { description: 'not image/* or multipart/form-data', schema: ErrorBody },
        429: { description: 'another on-demand inspection is running', schema: ErrorBody },
        503: { description: 'the station is not READY or PLAYING', schema: ErrorBody },
      },
      handle: async ({ query, body, contentType, signal }) => {
        const what = 'POST /api/inspect';
        const raw = body ?? Buffer.alloc(0);
        const data = (contentType ?? '').startsWith('multipart/form-data') ? imageFromMultipart(raw, contentType ?? '', what).data : raw;
        const format = sniff(data);
        if (data.length === 0 || format === undefined) throw new LinegateError('LG_ERR_API_BAD_REQUEST', [what, 'the body is not a JPEG, PNG, BMP, TIFF or WebP image']);
        const result = await c.station.inspectOnce({ kind: 'encoded', data, format }, { ...(query.partId === undefined ? {} : { partId: query.partId }), ref: `api:inspect/${format}`, signal });
        return { status: 200, json: result };
      },
    }),
  ];
}
