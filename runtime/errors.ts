/**
 * The one catalogue of linegate error codes. Every error linegate raises on
 * purpose is one of these; `runtime/errors.md` documents each and a test keeps
 * the two in step (the way fastify pins FST_ERR_*).
 *
 * `rejectCode` is the numeric code a PLC receives when this error turns a part
 * into an `error` verdict. Codes 900-999 are reserved for such errors so that
 * they never collide with decision-rule codes (1-899).
 */

export interface ErrorDef {
  readonly message: string;
  /** true when trying the same operation again later can succeed. */
  readonly retryable: boolean;
  readonly httpStatus: number;
  readonly rejectCode?: number;
}

const def = (message: string, retryable: boolean, httpStatus: number, rejectCode?: number): ErrorDef =>
  rejectCode === undefined ? { message, retryable, httpStatus } : { message, retryable, httpStatus, rejectCode };

export const ERRORS = {
  // Station files and their compilation.
  LG_ERR_STATION_READ: def('cannot read station file %s: %s', false, 400),
  LG_ERR_STATION_PARSE: def('station file %s is not valid YAML or JSON: %s', false, 400),
  LG_ERR_STATION_INVALID: def('station field %s: %s', false, 400),
  LG_ERR_STATION_STEP_CONFIG: def('step "%s" (%s): config field %s: %s', false, 400),
  LG_ERR_STATION_DUPLICATE_STEP: def('step name "%s" is used more than once', false, 400),
  LG_ERR_STATION_KIND_ORDER: def('step "%s" is a %s step and cannot come after "%s", a %s step', false, 400),
  LG_ERR_STATION_WRONG_KIND: def('step "%s" uses %s, a %s plugin, where a %s plugin is required', false, 400),
  LG_ERR_STATION_NO_DECISION: def('the station has no decision step: nothing would give a verdict', false, 400),
  LG_ERR_STATION_INCOMPATIBLE: def('step "%s" produces %s but the next step "%s" accepts %s', false, 400),
  LG_ERR_STATION_PATH: def('path "%s" in step "%s" leaves the allowed folders', false, 400),
  LG_ERR_STATION_DEPENDENCY: def('step "%s" (%s) needs %s from the step named in config field %s: %s', false, 400),
  LG_ERR_STATION_TIMING: def('step "%s" (%s): %s', false, 400),
  LG_ERR_STATION_RESOURCE: def('step "%s" (%s) names something it cannot use: %s', false, 400),
  LG_ERR_STATION_STATE: def('the station is %s: cannot %s (%s -> %s is not a transition)', false, 409),
  LG_ERR_CALIBRATION_INVALID: def('calibration file %s cannot be used: %s', false, 400),
  LG_ERR_CALIBRATION_MODEL: def(
    'calibration file %s was made for model %s (sha256 %s), but step "%s" runs %s (sha256 %s): calibrate again for this model, or set calibration: { file, allowModelMismatch: true } in the station file to apply it anyway',
    false,
    400,
  ),

  // Plugins and the registry.
  LG_ERR_PLUGIN_UNKNOWN: def('step "%s": no plugin with id %s is registered%s', false, 400),
  LG_ERR_PLUGIN_INVALID: def('plugin from %s does not match the linegate plugin contract: %s', false, 400),
  LG_ERR_PLUGIN_DUPLICATE: def('plugin id %s is registered twice (%s)', false, 400),
  LG_ERR_PLUGIN_LOAD: def('cannot load plugin module %s: %s', false, 400),
  LG_ERR_PLUGIN_INIT: def('step "%s" (%s) failed to start: %s', true, 500),
  LG_ERR_PLUGIN_INIT_TIMEOUT: def('step "%s" (%s) did not start within %d ms', true, 500),
  LG_ERR_PLUGIN_CLOSE_TIMEOUT: def('step "%s" (%s) did not close within %d ms', false, 500),
  LG_ERR_PLUGIN_CLOSED: def('step "%s" (%s) was used after close', false, 500),

  // The frame loop: each of these makes the part an `error` verdict.
  LG_ERR_STAGE_FAILED: def('step "%s" (%s) failed: %s', false, 500, 901),
  LG_ERR_STAGE_TIMEOUT: def('cycle budget of %d ms spent in step "%s"', false, 504, 902),
  LG_ERR_STAGE_OUTPUT: def('step "%s" (%s) returned no %s', false, 500, 903),
  LG_ERR_FRAME_DROPPED: def('frame dropped: %d frames already in flight and queued (drop policy %s)', true, 503, 904),
  LG_ERR_FRAME_SHUTDOWN: def('the station stopped before the part was inspected', true, 503, 905),
  LG_ERR_STAGE_HUNG: def('step "%s" (%s) is still running on part %s, %d ms after its budget ran out: its slot stays taken until it returns', false, 500),

  // Models.
  LG_ERR_MODEL_MANIFEST: def('model manifest %s is invalid: %s', false, 400),
  LG_ERR_MODEL_FILE: def('model file %s cannot be read: %s', false, 400),
  LG_ERR_MODEL_HASH: def('model file %s has sha256 %s but its manifest says %s', false, 400),
  LG_ERR_MODEL_LOAD: def('onnxruntime cannot load %s: %s', false, 400),
  LG_ERR_MODEL_INPUT: def('model %s: %s', false, 400),
  LG_ERR_MODEL_OUTPUT: def('model %s: %s', false, 400),
  LG_ERR_MODEL_UNSUPPORTED: def('model %s is not one linegate can decode: %s', false, 400),
  LG_ERR_MODEL_RUN: def('model %s failed on part %s: %s', false, 500, 907),
  LG_ERR_MODEL_DECODE: def('cannot decode the output of model %s: %s', false, 500, 908),
  LG_ERR_PARITY_REF: def('parity reference %s: %s', false, 400),

  // Sinks.
  LG_ERR_SINK_FAILED: def('sink "%s" (%s) could not deliver result %s: %s', true, 502),
  LG_ERR_SINK_TIMEOUT: def('sink "%s" (%s) did not deliver result %s within %d ms', true, 504),
  LG_ERR_SINK_OVERFLOW: def('sink "%s" (%s) is %d results behind; result %s was not handed to it', true, 503),
  LG_ERR_SINK_NOT_DURABLE: def('part %s: sink "%s" does not hold its result durably (%s); the source keeps the part for its next run', true, 503),
  LG_ERR_DISK_FULL: def('no space left for %s: %s', true, 507),
  LG_ERR_FILE_WRITE: def('cannot write %s: %s', true, 500),

  // The traceability history (an SQLite file per station).
  LG_ERR_HISTORY_WRITE: def('cannot write the history file %s: %s', true, 500),
  LG_ERR_HISTORY_MISSING: def('no history file at %s: the station has not run with its history on here, or history is off (history: false)', false, 404),
  LG_ERR_HISTORY_READ: def('cannot read the history file %s: %s', false, 500),
  LG_ERR_HISTORY_QUERY: def('history query %s: %s', false, 400),

  // Queues, the spool, the image archive and the workers.
  LG_ERR_QUEUE_REDIS: def('Redis at %s: %s', true, 503),
  LG_ERR_QUEUE_AUTH: def('Redis at %s refused the password (%s): correct it in the Redis URL or in LINEGATE_REDIS_URL', false, 401),
  LG_ERR_QUEUE_RECORD_TOO_LARGE: def('record %s for queue %s is %d bytes, more than the spool takes in one record (%d)', false, 413),
  LG_ERR_QUEUE_SPOOL_FULL: def('spool %s is full (%d of %d bytes): %s was not kept', true, 507),
  LG_ERR_QUEUE_SPOOL_LOCKED: def('spool %s is in use by process %d', false, 409),
  LG_ERR_QUEUE_SPOOL_CORRUPT: def('spool %s: %s', false, 500),
  LG_ERR_QUEUE_JOB_INVALID: def('job %s in queue %s does not parse: %s', false, 422),
  LG_ERR_ARCHIVE_WRITE: def('cannot store image %s in the archive %s: %s', true, 507),
  LG_ERR_ARCHIVE_MISSING: def('image %s is not in the archive %s', false, 404),
  LG_ERR_ARCHIVE_CORRUPT: def('archived image %s does not hash to %s', false, 500),
  LG_ERR_WORKER_UNKNOWN: def('no worker named "%s" (there are: %s)', false, 400),
  LG_ERR_WORKER_OPTIONS: def('worker "%s": option %s: %s', false, 400),
  LG_ERR_EXPORT_WRITE: def('cannot write dataset file %s: %s', true, 507),

  // Replay, comparison and calibration.
  LG_ERR_REPLAY_LABELS: def('labelled folder %s: %s', false, 400),
  LG_ERR_REPLAY_ANNOTATION: def('annotation %s: %s', false, 422),
  LG_ERR_REPLAY_STATION: def('station %s cannot be replayed: %s', false, 400),
  LG_ERR_REPLAY_GATE: def('gate "%s": %s', false, 400),
  LG_ERR_CALIBRATE_TARGET: def('calibration target "%s": %s', false, 400),

  // Images and sources.
  LG_ERR_IMAGE_DECODE: def('cannot decode image %s: %s', false, 422, 906),
  LG_ERR_IMAGE_FORMAT: def('image %s has an unsupported format or shape: %s', false, 422, 906),
  LG_ERR_IMAGE_TOO_SMALL: def('image %s is %dx%d pixels, below the %dx%d the model needs to judge a part', false, 422, 906),
  LG_ERR_SOURCE_NOT_FOUND: def('source folder %s does not exist', false, 400),
  LG_ERR_SOURCE_EMPTY: def('source folder %s holds no images (%s)', false, 400),
  LG_ERR_SOURCE_FAILED: def('source "%s" failed: %s', true, 500),
  LG_ERR_SOURCE_FILE: def('cannot take file %s from the hot folder: %s', true, 500),
  LG_ERR_SOURCE_FRAME: def('no frame for part %s: %s', true, 502, 910),

  // The PLC link and the simulated PLC.
  LG_ERR_PLC_CONNECT: def('cannot connect to the PLC at %s after %d tries: %s', true, 503),
  LG_ERR_PLC_SESSION: def('the PLC at %s refused the session: %s', false, 401),
  LG_ERR_PLC_CREDENTIALS: def('PLC %s: %s', false, 400),
  LG_ERR_PLC_TAG_TYPE: def('the tag map does not fit the PLC: %s', false, 400),
  LG_ERR_PLC_READ: def('cannot read PLC tag %s (%s): %s', true, 502),
  LG_ERR_PLC_WRITE: def('PLC write refused: %s', true, 502),
  LG_ERR_PLC_DOWN: def('the PLC link is down; %s refused, not queued', true, 503),
  LG_ERR_PLC_NOT_PENDING: def('no verdict written for part %s: %s', false, 409),
  LG_ERR_PLC_NAMESPACE: def('the PLC has no namespace %s (its namespaces: %s)', false, 400),
  LG_ERR_PLC_NO_TRIGGER_SOURCE: def('PLC step "%s" is in mode plc but no source takes its triggers: use core/opcua-trigger@1 with plc: %s, or mode free-run', false, 400),
  LG_ERR_PLC_NO_ACK: def('the PLC did not acknowledge the result for part %s within %d ms', true, 504),
  LG_ERR_PLC_PKI: def('PKI folder %s: %s', false, 400),
  LG_ERR_PLC_DEADLINE: def('no verdict for part %s within %d ms of its trigger: the PLC gets "not decidable"', false, 504, 909),
  LG_ERR_PLC_SIM_CONFIG: def('simulated PLC option %s: %s', false, 400),
  LG_ERR_PLC_SIM_START: def('the simulated PLC cannot start on %s: %s', true, 503),
  LG_ERR_PLC_SIM_STOPPED: def('the simulated PLC is down: %s', true, 503),

  // The station's HTTP API (runtime/api/).
  LG_ERR_API_BAD_REQUEST: def('%s: %s', false, 400),
  LG_ERR_API_NOT_FOUND: def('%s', false, 404),
  LG_ERR_API_UNAUTHORIZED: def('%s needs a valid bearer token (Authorization: Bearer <token>)', false, 401),
  LG_ERR_API_WRITES_OFF: def('%s is off: no API token is configured (set LINEGATE_API_TOKEN or api.tokenFile)', false, 403),
  LG_ERR_API_TOO_LARGE: def('the request body is larger than the %d bytes this route takes', false, 413),
  LG_ERR_API_MEDIA_TYPE: def('content type %s is not accepted by %s (it takes %s)', false, 415),
  LG_ERR_API_BUSY: def('%s is busy: %s', true, 429),
  LG_ERR_API_UNAVAILABLE: def('%s is unavailable: %s', true, 503),
  LG_ERR_API_NO_IMAGE: def('no image for result %s: %s', false, 404),
  LG_ERR_API_TOKEN: def('the API token from %s cannot be used: %s', false, 400),
  LG_ERR_API_LISTEN: def('the API cannot listen on %s: %s', true, 503),
  LG_ERR_API_OFF: def('step "%s" (%s) takes its frames over HTTP, but the station\'s API is off: add an api: block to the station file or pass --api-port', false, 400),
  LG_ERR_API_INTERNAL: def('%s failed: %s', false, 500),

  // Live model deployment (deploy, rollback, shadow).
  LG_ERR_DEPLOY_PACKAGE: def('the uploaded model package cannot be used: %s', false, 422),
  LG_ERR_DEPLOY_STEP: def('cannot deploy a model to this station: %s', false, 409),
  LG_ERR_DEPLOY_BUSY: def('%s: another deploy, rollback or shadow change is in progress', true, 409),
  LG_ERR_DEPLOY_STATE: def('cannot %s: the station is %s (models are deployed while it is READY or PLAYING)', true, 409),
  LG_ERR_DEPLOY_WARMUP: def('the warm-up run of %s failed: %s', false, 422),
  LG_ERR_DEPLOY_NO_PREVIOUS: def('nothing to roll back to: %s', false, 409),
  LG_ERR_DEPLOY_JOURNAL: def('the deploy journal %s cannot be written or read: %s', true, 503),
  LG_ERR_DEPLOY_RESTORE: def('the station cannot come back on its last activated model %s (%s): %s', false, 400),

  // The plant page (`linegate plant`).
  LG_ERR_PLANT_OPTIONS: def('plant page option %s: %s', false, 400),
  LG_ERR_PLANT_LISTEN: def('the plant page cannot listen on %s: %s', true, 503),

  // Command line.
  LG_ERR_CLI_USAGE: def('%s', false, 400),
  LG_ERR_CLI_TOKEN: def('%s needs the station\'s API token in the environment variable LINEGATE_API_TOKEN: %s', false, 400),
  LG_ERR_CLI_PACKAGE: def('model package %s cannot be uploaded: %s', false, 400),
  LG_ERR_CLI_UNREACHABLE: def('cannot reach the station at %s: %s', true, 503),
  LG_ERR_CLI_NO_ANSWER: def('no answer from the station at %s: %s', true, 504),
  LG_ERR_CLI_REPLY: def('the station at %s answered %s with %s, not a linegate reply: is it a linegate station API?', false, 502),
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;

export interface LinegateErrorJSON {
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryable: boolean;
  readonly step?: string;
  readonly path?: string;
}

/** Fills `%s` / `%d` placeholders in order; extra arguments are ignored. */
function format(template: string, args: readonly unknown[]): string {
  let i = 0;
  return template.replace(/%[sd]/g, () => {
    const v = args[i++];
    return v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  });
}

export interface ErrorDetail {
  /** The station step the error belongs to. */
  readonly step?: string;
  /** Dotted path of the offending field, e.g. `stages[1].config.model`. */
  readonly path?: string;
  readonly cause?: unknown;
}

export class LinegateError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly httpStatus: number;
  readonly rejectCode: number | undefined;
  readonly step: string | undefined;
  readonly path: string | undefined;

  constructor(code: ErrorCode, args: readonly unknown[] = [], detail: ErrorDetail = {}) {
    const d: ErrorDef = ERRORS[code];
    super(format(d.message, args), detail.cause === undefined ? undefined : { cause: detail.cause });
    this.name = 'LinegateError';
    this.code = code;
    this.retryable = d.retryable;
    this.httpStatus = d.httpStatus;
    this.rejectCode = d.rejectCode;
    this.step = detail.step;
    this.path = detail.path;
  }

  toJSON(): LinegateErrorJSON {
    return {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...(this.step === undefined ? {} : { step: this.step }),
      ...(this.path === undefined ? {} : { path: this.path }),
    };
  }
}

/** Several coded errors at once, e.g. every problem found in a station file. */
export class LinegateErrors extends Error {
  readonly errors: readonly LinegateError[];
  constructor(errors: readonly LinegateError[]) {
    super(errors.map((e) => `${e.code}: ${e.message}`).join('\n'));
    this.name = 'LinegateErrors';
    this.errors = errors;
  }
}

export const lgError = (code: ErrorCode, ...args: unknown[]): LinegateError => new LinegateError(code, args);

export const isLinegateError = (e: unknown): e is LinegateError => e instanceof LinegateError;

/** The message of anything thrown, for wrapping foreign errors. */
export const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The reject code a PLC gets for an error; 900 when the error is not a coded one. */
export const rejectCodeOf = (e: unknown): number => (isLinegateError(e) && e.rejectCode !== undefined ? e.rejectCode : 900);
