import { LinegateError } from '../errors.js';

/*
 * multipart/form-data over a body that is already size-limited and buffered: a small parser over
 * the buffer beats a streaming dependency for the few upload routes. Parts are views into the body
 * (no copy).
 */

interface Part {
  readonly name: string | undefined;
  /** Present (maybe empty) when the part is a file. */
  readonly filename: string | undefined;
  readonly type: string | undefined;
  readonly data: Buffer;
}

/** At most this many files in one package upload, and this long a file name. */
export const MAX_PACKAGE_FILES = 32;
export const MAX_PACKAGE_NAME = 128;

/** Every part of the body, in order; a body that is not well-formed multipart (no boundary, cut short) is refused. */
function partsOf(body: Buffer, contentType: string, what: string): Part[] {
  const boundary = /boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))/i.exec(contentType);
  const b = boundary?.[1] ?? boundary?.[2];
  if (b === undefined) throw bad(what, 'multipart/form-data without a boundary');
  const delimiter = Buffer.from(`--${b}`);
  const next = Buffer.from(`\r\n--${b}`);
  const parts: Part[] = [];
  let at = body.indexOf(delimiter);
  if (at < 0) throw bad(what, 'the multipart body has no boundary line');
  for (;;) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString('latin1') === '--') return parts; // the closing delimiter
    const headersEnd = body.indexOf('\r\n\r\n', start);
    const end = body.indexOf(next, start);
    if (headersEnd < 0 || end < 0 || headersEnd > end) throw bad(what, `the multipart body is cut short after ${parts.length} part(s): no closing boundary`);
    // utf8: a browser's or undici's FormData writes a file name's bytes as UTF-8.
    const headers = body.subarray(start, headersEnd).toString('utf8');
    const disposition = /^content-disposition:([^\r\n]*)$/im.exec(headers)?.[1] ?? '';
    parts.push({
      name: /(?:^|;)\s*name="([^"]*)"/i.exec(disposition)?.[1],
      filename: /(?:^|;)\s*filename="([^"]*)"/i.exec(disposition)?.[1],
      type: /^content-type:\s*([^\r\n;]+)/im.exec(headers)?.[1]?.trim().toLowerCase(),
      data: body.subarray(headersEnd + 4, end),
    });
    at = end + 2;
  }
}

/** The first file part of a multipart/form-data body: field `image`, else the first with a filename. */
export function imageFromMultipart(body: Buffer, contentType: string, what: string): { readonly data: Buffer; readonly type: string | undefined } {
  const parts = partsOf(body, contentType, what);
  const part = parts.find((p) => p.name === 'image') ?? parts.find((p) => p.filename !== undefined);
  if (part === undefined) throw bad(what, 'the multipart body has no image part (a field named "image", or a file)');
  return { data: part.data, type: part.type };
}

/** An uploaded package: each file part by its file name, and the plain fields by name. */
export interface PackageUpload {
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly fields: ReadonlyMap<string, string>;
}

/**
 * Every file part of a multipart/form-data body, by file name: a model package as uploaded, flat.
 * Every problem with the names is refused at once (LG_ERR_API_BAD_REQUEST), before anything is
 * stored: a name is a file in the package folder, so nothing that could leave it or hide in it.
 */
export function filesFromMultipart(body: Buffer, contentType: string, what: string): PackageUpload {
  const parts = partsOf(body, contentType, what);
  const files = new Map<string, Uint8Array>();
  const fields = new Map<string, string>();
  const problems: string[] = [];
  for (const p of parts) {
    if (p.filename === undefined) {
      if (p.name === undefined) problems.push('a part without a name');
      else if (fields.has(p.name)) problems.push(`field "${shown(p.name)}" is sent twice`);
      else fields.set(p.name, p.data.toString('utf8'));
      continue;
    }
    const why = packageFileNameProblem(p.filename);
    if (why !== undefined) problems.push(why);
    else if (files.has(p.filename)) problems.push(`file "${p.filename}" is sent twice`);
    else files.set(p.filename, p.data);
  }
  if (files.size > MAX_PACKAGE_FILES) problems.push(`${files.size} files; a package has at most ${MAX_PACKAGE_FILES}`);
  if (files.size === 0 && problems.length === 0) problems.push('no file part: send each file of the package folder as a file part (its name the file name)');
  if (problems.length > 0) throw bad(what, problems.join('; '));
  return { files, fields };
}

/**
 * Why a name cannot be a file of an uploaded package, or undefined when it can: flat (no `/` or
 * `\`), no `..`, not hidden (no leading dot), no control characters, at most 128 characters. The
 * CLI checks the same before it uploads.
 */
export function packageFileNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'a file part with an empty file name';
  if (name.length > MAX_PACKAGE_NAME) return `file name "${shown(name)}..." is ${name.length} characters; at most ${MAX_PACKAGE_NAME}`;
  if (name.includes('/') || name.includes('\\')) return `file name "${shown(name)}" has a folder in it: a package is flat (model.json, model.onnx, ...)`;
  if (name.includes('..')) return `file name "${shown(name)}" has ".." in it`;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\x00-\x1f\x7f]/.test(name)) return `file name "${shown(name)}" has a control character (NUL, a line break, ...) in it`;
  if (name.startsWith('.')) return `file name "${shown(name)}" is hidden (starts with a dot)`;
  return undefined;
}

const bad = (what: string, why: string): LinegateError => new LinegateError('LG_ERR_API_BAD_REQUEST', [what, why]);

/** A client's name made safe to echo in one log line: control characters escaped (JSON), at most 64 characters. */
const shown = (s: string): string => JSON.stringify(s.slice(0, 64)).slice(1, -1);
