import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import type { ModelDescription } from '../../runtime/contract.js';
import { ModelManifest, loadModelPackage } from './manifest.js';
import { checkGraph, readGraph, sha256File } from './session.js';

/**
 * Every reason the model package at `dir` could not be run, without running it: a missing folder or
 * file, each schema issue of model.json, a model file that is not the one model.json names by
 * sha256, and each way model.json and the ONNX graph disagree. `ref` is the package as the station
 * names it; each error names `step`.
 */
export async function packageProblems(dir: string, ref: string, step: string): Promise<LinegateError[]> {
  const at = { step };
  if (!(await isFolder(dir))) return [new LinegateError('LG_ERR_MODEL_FILE', [dir, `no model package folder there (config.model: ${ref})`], at)];
  const manifestFile = path.join(dir, 'model.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(manifestFile, 'utf8'));
  } catch (e) {
    return [new LinegateError('LG_ERR_MODEL_MANIFEST', [manifestFile, messageOf(e)], at)];
  }
  const parsed = ModelManifest.safeParse(raw);
  if (!parsed.success) {
    return parsed.error.issues.map((issue) => new LinegateError('LG_ERR_MODEL_MANIFEST', [manifestFile, `${issue.path.join('.') || '(top level)'}: ${issue.message}`], at));
  }
  const manifest = parsed.data;
  const onnxFile = path.join(dir, manifest.file);
  const problems: LinegateError[] = [];
  try {
    const actual = await sha256File(onnxFile);
    if (actual !== manifest.sha256) problems.push(new LinegateError('LG_ERR_MODEL_HASH', [onnxFile, actual, manifest.sha256], at));
  } catch (e) {
    return [new LinegateError('LG_ERR_MODEL_FILE', [onnxFile, messageOf(e)], at)];
  }
  let graph;
  try {
    graph = await readGraph(onnxFile);
  } catch (e) {
    return [...problems, new LinegateError('LG_ERR_MODEL_LOAD', [onnxFile, messageOf(e instanceof LinegateError && e.cause !== undefined ? e.cause : e)], at)];
  }
  const { input, output } = checkGraph(manifest, graph);
  const name = `${ref} (${manifest.name}@${manifest.version})`;
  problems.push(...input.map((p) => new LinegateError('LG_ERR_MODEL_INPUT', [name, p], at)));
  problems.push(...output.map((p) => new LinegateError('LG_ERR_MODEL_OUTPUT', [name, p], at)));
  return problems;
}

async function isFolder(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}

/** The package's identity, preprocessing, decoding and thresholds, as model.json states them (no hashing: `verify` checks the file). */
export async function describePackage(dir: string): Promise<ModelDescription> {
  const { manifest: m } = await loadModelPackage(dir);
  return { name: m.name, version: m.version, sha256: m.sha256, task: m.task, thresholds: m.thresholds, preprocessing: m.input, decode: m.decode };
}
