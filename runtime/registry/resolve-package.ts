import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

type Exports = string | { [key: string]: Exports } | null | undefined;

/** The file a bare ESM import of `spec` would load when made from `fromDir` (Node 20 cannot resolve from another folder). */
export function resolvePackage(spec: string, fromDir: string): string | undefined {
  const parts = spec.split('/');
  const nameLength = spec.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameLength).join('/');
  const subpath = parts.length > nameLength ? `./${parts.slice(nameLength).join('/')}` : '.';
  for (let dir = path.resolve(fromDir); ; dir = path.dirname(dir)) {
    const pkgDir = path.join(dir, 'node_modules', name);
    const pkgJson = path.join(pkgDir, 'package.json');
    if (existsSync(pkgJson)) {
      const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as { exports?: Exports; main?: string };
      const target = pkg.exports !== undefined ? fromExports(pkg.exports, subpath) : subpath === '.' ? (pkg.main ?? 'index.js') : subpath;
      return target === undefined ? undefined : path.join(pkgDir, target);
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

const CONDITIONS = ['import', 'node', 'default'];

function fromExports(exports: Exports, subpath: string): string | undefined {
  if (typeof exports === 'string') return subpath === '.' ? exports : undefined;
  if (exports === null || exports === undefined) return undefined;
  const keys = Object.keys(exports);
  // Either a map of subpaths ('.', './x') or, for '.', a map of conditions.
  const entry = keys.some((k) => k.startsWith('.')) ? exports[subpath] : subpath === '.' ? exports : undefined;
  return pickCondition(entry);
}

function pickCondition(entry: Exports): string | undefined {
  if (typeof entry === 'string') return entry;
  if (entry === null || entry === undefined) return undefined;
  for (const c of CONDITIONS) {
    const hit = pickCondition(entry[c]);
    if (hit !== undefined) return hit;
  }
  return undefined;
}
