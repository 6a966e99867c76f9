// Where linegate's compiled JavaScript lives, and whether it is the build of the TypeScript beside it.
// Plain JavaScript with no dependencies: bin/linegate.mjs asks this before it loads anything else.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const DIST = path.join(ROOT, 'dist');
export const MANIFEST = path.join(DIST, 'build.json');
/** The folders that ship as code; tests and benches run from source through vitest and tsx. */
export const SOURCE_DIRS = ['runtime', 'plugins'];
/** Bumped when the build's output changes for the same sources (an esbuild option, the layout). */
export const BUILD_FORMAT = 1;

/** Every TypeScript source that ships, as paths relative to the repository, sorted. */
export function listSources() {
  const out = [];
  const walk = (rel) => {
    for (const e of readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      const child = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(child);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(child);
    }
  };
  for (const dir of SOURCE_DIRS) walk(dir);
  return out.sort();
}

/** `runtime/cli.ts` -> `runtime/cli.js`, relative to dist/. */
export const outputOf = (source) => source.replace(/\.ts$/, '.js');

export const sha256 = (data) => createHash('sha256').update(data).digest('hex');

/** A file's size and mtime as recorded at build time: equal means unchanged without reading it. */
export function stamp(file) {
  const s = statSync(file);
  return { size: s.size, mtimeMs: s.mtimeMs };
}

/**
 * Whether `file` still holds what the build recorded. The size and mtime decide when they match;
 * otherwise the content does (a checkout or a copy touches files without changing them), so an
 * edit is never missed and an untouched file never forces the slow path.
 */
function unchanged(file, recorded) {
  let now;
  try {
    now = stamp(file);
  } catch {
    return false;
  }
  if (now.size === recorded.size && now.mtimeMs === recorded.mtimeMs) return true;
  return now.size === recorded.size && sha256(readFileSync(file)) === recorded.sha256;
}

/**
 * `{ fresh: true }` when dist/ was built from exactly the sources there are now (same files, same
 * content) and holds what that build wrote; otherwise `{ fresh: false, why }`. A few milliseconds:
 * stats, and a hash only of a file whose stat changed.
 */
export function freshness() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(MANIFEST, 'utf8'));
  } catch {
    return { fresh: false, why: 'there is no build in dist/' };
  }
  if (manifest.format !== BUILD_FORMAT) return { fresh: false, why: 'dist/ was built by another version of the build' };
  const sources = listSources();
  const built = Object.keys(manifest.files ?? {});
  const added = sources.filter((s) => !(s in manifest.files));
  const removed = built.filter((s) => !sources.includes(s));
  if (added.length > 0 || removed.length > 0) return { fresh: false, why: `sources were added or removed since the build (${[...added, ...removed].slice(0, 3).join(', ')})` };
  for (const source of sources) {
    const entry = manifest.files[source];
    if (!unchanged(path.join(ROOT, source), entry.source)) return { fresh: false, why: `${source} changed since the build` };
    if (!unchanged(path.join(DIST, outputOf(source)), entry.output)) return { fresh: false, why: `dist/${outputOf(source)} is not what the build wrote` };
  }
  return { fresh: true };
}
