import path from 'node:path';

/** Names uploaders give a file while they are still writing it. */
const TEMP_SUFFIXES = ['.part', '.tmp', '.filepart', '.crdownload'];

/** Whether a name in the inbox is an image to take: not hidden, not an upload's temp name, a listed extension. */
export function isCandidateName(name: string, extensions: ReadonlySet<string>): boolean {
  if (name.startsWith('.')) return false;
  const lower = name.toLowerCase();
  if (TEMP_SUFFIXES.some((s) => lower.endsWith(s))) return false;
  return extensions.has(path.extname(lower));
}

/** `a.b.JPG` -> `{ stem: 'a.b', ext: '.JPG' }`. */
export function splitName(name: string): { stem: string; ext: string } {
  const ext = path.extname(name);
  return { stem: name.slice(0, name.length - ext.length), ext };
}

/** The image format a file name suggests: its extension without the dot, lower-case; undefined when it has none. */
export function formatOf(name: string): string | undefined {
  const ext = path.extname(name).slice(1).toLowerCase();
  return ext === '' ? undefined : ext;
}
