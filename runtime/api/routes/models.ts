import { LinegateError } from '../../errors.js';
import { CalibrationChoice, DeployReport, ModelsStatus, ShadowStatus, type ModelControl } from '../../deploy/types.js';
import type { ApiContext } from '../context.js';
import { MAX_PACKAGE_FILES, filesFromMultipart, type PackageUpload } from '../multipart.js';
import { defineRoute, type RouteInput, type RouteSpec } from '../route.js';
import { ErrorBody, NoQuery } from '../schemas.js';

/*
 * Live model deployment (issue 14): what the station's ModelControl offers, over HTTP. The routes
 * only parse and check the request and say who asked (the token's name); storing, checking,
 * loading, warming up and switching between two parts are the station's.
 */

/** Room for the multipart framing around the files (a boundary and headers per part), over the package limit itself. */
const FRAMING_BYTES = 64 * 1024;

const FORM = {
  type: 'object',
  properties: {
    file: { type: 'array', items: { type: 'string', contentMediaType: 'application/octet-stream' }, maxItems: MAX_PACKAGE_FILES, description: "one file part per file of the package folder, its filename the file's name: model.json, model.onnx, README.md, ... (flat)" },
    calibration: { type: 'string', enum: CalibrationChoice.options, description: 'deploy only. leave (default): a calibration made for another model is not applied; keep: applied anyway (said in the report)' },
  },
  required: ['file'],
} as const;

const refusals = {
  400: { description: 'a bad request: not multipart, a bad file name, a file sent twice; or the package fails a check (its coded errors, every one in `issues`)', schema: ErrorBody },
  401: { description: 'missing or wrong token', schema: ErrorBody },
  403: { description: 'no token configured: the route is off', schema: ErrorBody },
  409: { description: 'the station cannot do it now (e.g. nothing to roll back to, another deploy running)', schema: ErrorBody },
  422: { description: 'not a model package (LG_ERR_DEPLOY_PACKAGE), or its warm-up run failed (LG_ERR_DEPLOY_WARMUP)', schema: ErrorBody },
  507: { description: 'no room on the station for the package (LG_ERR_DISK_FULL): retry once there is', schema: ErrorBody },
  503: { description: 'the station is not up, or offers no model deployment', schema: ErrorBody },
} as const;

export function modelRoutes(c: ApiContext): RouteSpec[] {
  const maxBytes = Math.floor(c.station.plan.settings.deploy.maxPackageMiB * 1024 * 1024) + FRAMING_BYTES;
  const upload = { contentTypes: ['multipart/form-data'], maxBytes, form: FORM, description: `the package's files as multipart/form-data (at most ${MAX_PACKAGE_FILES}, station.deploy.maxPackageMiB in all)` };
  const tooLarge = { 413: { description: 'larger than station.deploy.maxPackageMiB', schema: ErrorBody }, 415: { description: 'not multipart/form-data', schema: ErrorBody } };
  return [
    defineRoute({
      method: 'GET',
      url: '/api/models',
      summary: 'The model judging parts now, the activations before it (who and when), the thresholds and calibration it runs with, and the shadow model.',
      access: 'read',
      query: NoQuery,
      responses: { 200: { description: 'the models', schema: ModelsStatus }, 401: refusals[401], 503: refusals[503] },
      handle: async () => ({ status: 200, json: control(c, 'GET /api/models').models() }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/models/deploy',
      summary: 'Uploads a model package; the station checks it (sha256, manifest, graph), loads and warms it up beside the serving model, then switches between two parts. A refused package leaves the serving model untouched. Needs the token.',
      access: 'write',
      query: NoQuery,
      body: upload,
      responses: { 200: { description: 'deployed: what runs now, what ran before, the thresholds it runs with', schema: DeployReport }, ...refusals, ...tooLarge },
      handle: async (input) => {
        const what = 'POST /api/models/deploy';
        const { files, fields } = packageOf(input, what, ['calibration']);
        const raw = fields.get('calibration');
        const calibration = raw === undefined ? undefined : CalibrationChoice.safeParse(raw.trim());
        if (calibration !== undefined && !calibration.success) throw new LinegateError('LG_ERR_API_BAD_REQUEST', [what, `field calibration must be ${CalibrationChoice.options.join(' or ')}`]);
        const report = await control(c, what).deployModel(files, { by: callerOf(input), signal: input.signal, ...(calibration === undefined ? {} : { calibration: calibration.data }) });
        return { status: 200, json: report };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/models/rollback',
      summary: 'Back to the model active before the current one, in one call (no body). Needs the token.',
      access: 'write',
      query: NoQuery,
      responses: { 200: { description: 'rolled back: what runs now, and what ran before', schema: DeployReport }, ...refusals },
      handle: async (input) => ({ status: 200, json: await control(c, 'POST /api/models/rollback').rollbackModel({ by: callerOf(input), signal: input.signal }) }),
    }),
    defineRoute({
      method: 'POST',
      url: '/api/models/shadow',
      summary: "Runs a candidate package beside the active model on the same frames, after each verdict is out (never on the critical path; its verdict never reaches the PLC); replaces a running shadow. Needs the token.",
      access: 'write',
      query: NoQuery,
      body: upload,
      responses: { 200: { description: 'the shadow, running', schema: ShadowStatus }, ...refusals, ...tooLarge },
      handle: async (input) => {
        const what = 'POST /api/models/shadow';
        const { files } = packageOf(input, what, []);
        return { status: 200, json: await control(c, what).startShadow(files, { by: callerOf(input), signal: input.signal }) };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/api/models/shadow/stop',
      summary: 'Stops the shadow model (no body). Needs the token.',
      access: 'write',
      query: NoQuery,
      responses: { 200: { description: 'the shadow, off', schema: ShadowStatus }, ...refusals },
      handle: async (input) => ({ status: 200, json: await control(c, 'POST /api/models/shadow/stop').stopShadow({ by: callerOf(input) }) }),
    }),
  ];
}

/** The package of an upload: the body checked before the station is asked, so a bad request costs the station nothing. */
function packageOf(input: RouteInput<unknown, unknown>, what: string, allowed: readonly string[]): PackageUpload {
  const upload = filesFromMultipart(input.body ?? Buffer.alloc(0), input.contentType ?? '', what);
  const unknown = [...upload.fields.keys()].filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw new LinegateError('LG_ERR_API_BAD_REQUEST', [what, `unknown field(s) ${unknown.map((k) => JSON.stringify(k.slice(0, 64))).join(', ')}; ${allowed.length === 0 ? 'only file parts are taken' : `it takes file parts and ${allowed.join(', ')}`}`]);
  return upload;
}

function control(c: ApiContext, what: string): ModelControl {
  if (c.models === undefined) throw new LinegateError('LG_ERR_API_UNAVAILABLE', [what, 'this station does not offer live model deployment']);
  return c.models;
}

/** Write routes pass the gate only with a token, so a name is always there; the fallback keeps the journal's `by` non-empty regardless. */
const callerOf = (input: RouteInput<unknown, unknown>): string => input.caller ?? 'unknown';
