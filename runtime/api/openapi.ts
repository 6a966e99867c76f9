import { z } from 'zod';
import { InspectionResult, resultJsonSchema } from '../result.js';
import type { RouteSpec } from './route.js';

/*
 * The OpenAPI 3.1 document, generated from the route table's own zod schemas (OpenAPI 3.1 speaks
 * JSON Schema 2020-12, what z.toJSONSchema writes). The result record is one component, the same
 * schema `linegate schema result` prints; every operation that returns it refers to it.
 */

type Json = Record<string, unknown>;

const jsonSchema = (s: z.ZodType, io: 'input' | 'output'): Json => {
  if (s === InspectionResult) return { $ref: '#/components/schemas/InspectionResult' };
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Json;
  return rest;
};

function parameters(schema: z.ZodType | undefined, where: 'query' | 'path'): Json[] {
  if (schema === undefined) return [];
  const js = jsonSchema(schema, 'input') as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (js.required ?? []).includes(name),
    ...(typeof s.description === 'string' ? { description: s.description } : {}),
    schema: s,
  }));
}

function requestBody(r: RouteSpec): Json | undefined {
  if (r.body === undefined) return undefined;
  const content: Json = {};
  for (const t of r.body.contentTypes) {
    const imageForm = { type: 'object', properties: { image: { type: 'string', contentMediaType: 'image/*' } }, required: ['image'] };
    // A route whose form is not one image (a model package upload) states its own.
    content[t] = t === 'multipart/form-data' ? { schema: r.body.form ?? imageForm } : { schema: { type: 'string', contentMediaType: t } };
  }
  return { required: true, description: `${r.body.description}; at most ${r.body.maxBytes} bytes`, content };
}

export function openApiDocument(routes: readonly RouteSpec[], o: { readonly title: string; readonly version: string; readonly readsNeedToken: boolean }): Json {
  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const url = r.url.replace(/:([A-Za-z_]\w*)/g, '{$1}');
    const responses: Json = {};
    for (const [status, spec] of Object.entries(r.responses)) {
      const content = spec.schema !== undefined ? { 'application/json': { schema: jsonSchema(spec.schema, 'output') } } : spec.contentType !== undefined ? { [spec.contentType]: {} } : undefined;
      responses[status] = { description: spec.description, ...(content === undefined ? {} : { content }) };
    }
    responses['500'] ??= { description: 'internal error (LG_ERR_API_INTERNAL)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    const secured = r.access === 'write' || (r.access === 'read' && o.readsNeedToken);
    const body = requestBody(r);
    (paths[url] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      operationId: `${r.method.toLowerCase()}${url.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      parameters: [...parameters(r.params, 'path'), ...parameters(r.query, 'query')],
      ...(body === undefined ? {} : { requestBody: body }),
      responses,
      security: secured ? [{ bearer: [] }] : [],
    };
  }
  const { $schema: _drop, ...result } = resultJsonSchema();
  return {
    openapi: '3.1.0',
    info: { title: o.title, version: o.version, description: 'The linegate station API. Errors are JSON: { error: { code, message, retryable } }, codes in runtime/errors.md.' },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'LINEGATE_API_TOKEN or the file api.tokenFile names' } },
      schemas: {
        InspectionResult: result,
        Error: { type: 'object', properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, retryable: { type: 'boolean' } }, required: ['code', 'message', 'retryable'] } }, required: ['error'] },
      },
    },
  };
}
