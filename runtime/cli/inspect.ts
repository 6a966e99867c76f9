import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LinegateError } from '../errors.js';
import { draftManifest, formatInspection, inspectModel, modelFileSize, type Draft } from '../../plugins/model-onnx/inspect.js';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';

export interface InspectOptions extends LogOptions {
  readonly out?: string;
  readonly force?: boolean;
  readonly size?: { width: number; height: number };
  readonly json?: boolean;
}

/** `models inspect`: the report on stdout, the draft model.json on disk, what to review in the log. */
export async function inspectCommand(file: string, opts: InspectOptions, ctx: CommandContext): Promise<number> {
  const log = ctx.logger(opts);
  const onnx = path.resolve(file);
  const out = path.resolve(opts.out ?? path.join(path.dirname(onnx), 'model.json'));
  await modelFileSize(onnx);
  if (out === onnx) throw new LinegateError('LG_ERR_CLI_USAGE', [`--out ${out} is the model file itself`]);
  if (opts.force !== true && existsSync(out)) throw new LinegateError('LG_ERR_CLI_USAGE', [`${out} already exists: pass --force to overwrite it, or --out to write elsewhere`]);
  const inspection = await inspectModel(onnx);
  const rel = path.relative(path.dirname(out), inspection.file).split(path.sep).join('/');
  let draft: Draft;
  try {
    draft = draftManifest(inspection, { file: rel, ...(opts.size === undefined ? {} : { size: opts.size }) });
  } catch (e) {
    // What the file says is still worth seeing when no draft can be made.
    if (opts.json !== true) ctx.io.stdout.write(formatInspection(inspection));
    throw e;
  }
  try {
    await writeFile(out, `${JSON.stringify(draft.manifest, null, 2)}\n`, { flag: opts.force === true ? 'w' : 'wx' });
  } catch (e) {
    throw new LinegateError('LG_ERR_CLI_USAGE', [`cannot write the draft to ${out}: ${e instanceof Error ? e.message : String(e)}`], { cause: e });
  }
  if (opts.json === true) {
    ctx.io.stdout.write(`${JSON.stringify({ inspection, draft: { file: out, recognisedAs: draft.recognisedAs, manifest: draft.manifest, assumptions: draft.assumptions, review: draft.review } }, null, 2)}\n`);
  } else {
    ctx.io.stdout.write(formatInspection(inspection, { draft, out }));
    log.warn({ draft: out, review: draft.review }, `${out} is a DRAFT; review before use: ${draft.review.join('; ')}`);
  }
  return EXIT.ok;
}
