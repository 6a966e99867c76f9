#!/usr/bin/env node
// Compiles runtime/ and plugins/ to dist/ (one .js per .ts, esbuild's transform: the same
// transpilation tsx does at run time, done once). `npm install` runs it (prepare), `npm start` and
// the test suite run it first; with nothing changed it only checks and returns.
//
// Safe to run from several processes at once (parallel test runs, a demo starting): every file is
// written to a temporary name and renamed, an unchanged file is not rewritten, and the manifest that
// says "this build is complete" is removed first and written last.
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BUILD_FORMAT, DIST, MANIFEST, ROOT, freshness, listSources, outputOf, sha256, stamp } from './dist.mjs';

const writeIfChanged = (file, data) => {
  try {
    if (readFileSync(file).equals(Buffer.from(data))) return;
  } catch {
    // not there yet
  }
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
};

/**
 * Removes the outputs of sources that are gone (a module deleted or renamed): otherwise its old
 * JavaScript stays importable from dist/ and runs where the sources would fail to resolve it.
 * Another build running at the same time keeps the same sources, so it removes the same files.
 */
function removeOrphans(outputs) {
  for (const f of readdirSync(DIST, { recursive: true, encoding: 'utf8' })) {
    const js = f.endsWith('.js.map') ? f.slice(0, -'.map'.length) : f;
    if (js.endsWith('.js') && !outputs.has(js.split(path.sep).join('/'))) rmSync(path.join(DIST, f), { force: true });
  }
}

/** Builds dist/ unless it is fresh; resolves with what it did. */
export async function build() {
  const before = freshness();
  if (before.fresh) return { built: false };
  const t0 = performance.now();
  const { transform, version } = await import('esbuild');
  const tsconfig = JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8'));
  rmSync(MANIFEST, { force: true });
  const files = {};
  for (const source of listSources()) {
    const abs = path.join(ROOT, source);
    const code = readFileSync(abs);
    const sourceStamp = { ...stamp(abs), sha256: sha256(code) };
    const out = await transform(code.toString('utf8'), {
      loader: 'ts',
      format: 'esm',
      target: 'node20',
      sourcefile: path.relative(path.dirname(path.join(DIST, source)), abs),
      sourcemap: 'external',
      tsconfigRaw: { compilerOptions: tsconfig.compilerOptions },
    });
    const js = path.join(DIST, outputOf(source));
    writeIfChanged(`${js}.map`, out.map);
    writeIfChanged(js, `${out.code}//# sourceMappingURL=${path.basename(js)}.map\n`);
    files[source] = { source: sourceStamp, output: { ...stamp(js), sha256: sha256(readFileSync(js)) } };
  }
  removeOrphans(new Set(Object.keys(files).map(outputOf)));
  const tmp = `${MANIFEST}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ format: BUILD_FORMAT, esbuild: version, files }, null, 1)}\n`);
  renameSync(tmp, MANIFEST);
  return { built: true, why: before.why, files: Object.keys(files).length, ms: Math.round(performance.now() - t0) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    await build();
  } catch (e) {
    process.stderr.write(`linegate build failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  }
}
