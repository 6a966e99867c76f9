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
    throw new LinegateError('LG_ERR_STATION_READ', [abs, whyUnreadable(e)], { cause: e });
  }
  try {
    // YAML 1.2 is a superset of JSON, but JSON's own parser gives better messages for .json files.
    const data: unknown = abs.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { prettyErrors: true, uniqueKeys: true });
    return { file: abs, data };
  } catch (e) {
    throw new LinegateError('LG_ERR_STATION_PARSE', [abs, messageOf(e)], { cause: e });
  }
}

/** What the operator can act on: the file is missing, is a folder, or may not be read. */
function whyUnreadable(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'it is a folder, not a station file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOTDIR') return 'a part of the path is not a folder';
  return messageOf(e);
}

/** Relative paths in a station file resolve here: its `root`, else the parent of a `stations/` folder, else its own folder. */
export function stationRoot(file: string, root: string | undefined): string {
  const dir = path.dirname(file);
  if (root !== undefined) return path.resolve(dir, root);
  return path.basename(dir) === 'stations' ? path.dirname(dir) : dir;
}
