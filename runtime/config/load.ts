import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { LinegateError, messageOf } from '../errors.js';

export interface LoadedFile {
  readonly file: string;
  readonly data: unknown;
}

/** Reads a YAML or JSON file into plain data; nothing is validated here. */
export async function loadDataFile(file: string): Promise<LoadedFile> {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (e) {
    throw new LinegateError('LG_ERR_STATION_READ', [abs], { cause: e });
  }
  try {
    // YAML 1.2 is a superset of JSON, but JSON's own parser gives better messages for .json files.
    const data: unknown = abs.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { prettyErrors: true, uniqueKeys: true });
    return { file: abs, data };
  } catch (e) {
    throw new LinegateError('LG_ERR_STATION_PARSE', [abs, messageOf(e)], { cause: e });
  }
}

/** Relative paths in a station file resolve here: its `root`, else the parent of a `stations/` folder, else its own folder. */
export function stationRoot(file: string, root: string | undefined): string {
  const dir = path.dirname(file);
  if (root !== undefined) return path.resolve(dir, root);
  return path.basename(dir) === 'stations' ? path.dirname(dir) : dir;
}
