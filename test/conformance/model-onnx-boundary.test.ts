import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The model-output contract keeps core/onnx-model's internals its own: what a
 * decoder or a rule needs is in runtime/, so any model plugin can feed them.
 * These tests read the import statements of the source tree.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const MODEL_ONNX = 'plugins/model-onnx/';

/** Where linegate's own code and the helpers other plugins' tests share live. */
const SCANNED = ['runtime', 'plugins', 'test/helpers', 'test/conformance'];

/**
 * The only files outside the plugin allowed to reach into it: the built-in list, and the CLI's
 * `models` commands (inspect, parity), which work on ONNX packages themselves. A new entry here is a
 * decision, not a fix for a red test.
 */
const ALLOWED = new Set(['runtime/registry/builtins.ts', 'runtime/cli/inspect.ts', 'runtime/cli/parity.ts']);

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sourceFiles(rel);
    return /\.(ts|mts|mjs|js)$/.test(e.name) ? [rel] : [];
  });
}

/** Every module a file imports, re-exports or loads dynamically, as a path from the root (relative specifiers only). */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)['"]([^'"]+)['"]/g)].map((m) => m[1]!);
  return specs.filter((s) => s.startsWith('.')).map((s) => path.posix.normalize(path.posix.join(path.posix.dirname(file), s)));
}

const files = SCANNED.flatMap(sourceFiles);

describe('the model-onnx boundary', () => {
  it('no file outside plugins/model-onnx/ imports from it, but the built-in registry and the CLI models commands', () => {
    const offenders = files
      .filter((f) => !f.startsWith(MODEL_ONNX) && !ALLOWED.has(f))
      .flatMap((f) => importsOf(f).filter((i) => i.startsWith(MODEL_ONNX)).map((i) => `${f} -> ${i}`));
    expect(offenders).toEqual([]);
  });

  it('finds the imports it allows (so an empty list above means something)', () => {
    expect(importsOf('runtime/registry/builtins.ts')).toContain('plugins/model-onnx/index.js');
  });

  it('decoders and threshold rules depend only on runtime/, plugins/lib/ and their own folder', () => {
    const readers = files.filter((f) => /^plugins\/(postprocess-[a-z-]+-decode|decision-threshold-rules)\//.test(f));
    expect(readers.length).toBeGreaterThanOrEqual(5);
    const offenders = readers.flatMap((f) => {
      const own = `${path.posix.dirname(f)}/`;
      return importsOf(f)
        .filter((i) => !i.startsWith('runtime/') && !i.startsWith('plugins/lib/') && !i.startsWith(own))
        .map((i) => `${f} -> ${i}`);
    });
    expect(offenders).toEqual([]);
  });
});
