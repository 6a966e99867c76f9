import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LinegateProcess, ROOT, cleanUp, tempRoot, writeStation } from './harness.js';

/**
 * Fault 6: broken model packages, as a botched deployment leaves them. Each
 * station is refused before the first frame, by `linegate check` and by
 * `linegate run` alike: exit 2 (bad input), the LG_ERR_MODEL_* code of every
 * problem the package has, naming the model, and no frame inspected.
 */

afterEach(cleanUp);

const CASTING = path.join(ROOT, 'models/casting-cls/1');

interface Broken {
  readonly model: string;
  /** Every code that must be reported, each with a pattern its message must match. */
  readonly expect: readonly { readonly code: RegExp; readonly says: RegExp }[];
}

/** The three packages in `<root>/models`, and the station files that use them (the station root is the temp root). */
function brokenPackages(root: string): Record<string, Broken> {
  // sha256 mismatch: model.onnx replaced by another model's file (casting-cls/2), model.json left as it was.
  const hash = path.join(root, 'models/casting-hash/1');
  mkdirSync(hash, { recursive: true });
  copyFileSync(path.join(ROOT, 'models/casting-cls/2/model.onnx'), path.join(hash, 'model.onnx'));
  copyFileSync(path.join(CASTING, 'model.json'), path.join(hash, 'model.json'));

  // Graph vs manifest: model.json says 224x224 input and three labels; the graph takes 300x300 and outputs two classes.
  const shape = path.join(root, 'models/casting-shape/1');
  mkdirSync(shape, { recursive: true });
  copyFileSync(path.join(CASTING, 'model.onnx'), path.join(shape, 'model.onnx'));
  const manifest = JSON.parse(readFileSync(path.join(CASTING, 'model.json'), 'utf8')) as { input: Record<string, unknown>; labels: string[] };
  manifest.input.width = 224;
  manifest.input.height = 224;
  manifest.labels = ['ok', 'defect', 'porosity'];
  writeFileSync(path.join(shape, 'model.json'), JSON.stringify(manifest, null, 2));

  return {
    missing: { model: 'models/casting-gone/1', expect: [{ code: /LG_ERR_MODEL_(MANIFEST|FILE|NOT_FOUND|MISSING)/, says: /casting-gone/ }] },
    hash: { model: 'models/casting-hash/1', expect: [{ code: /LG_ERR_MODEL_HASH/, says: /e2e83f7204ff41f4477841c81c20e5bcffbf062cb285c201a365eb55035c1e03|sha256/ }] },
    shape: {
      model: 'models/casting-shape/1',
      expect: [
        { code: /LG_ERR_MODEL_INPUT/, says: /224/ },
        { code: /LG_ERR_MODEL_OUTPUT/, says: /3 labels|classes|porosity|\b3\b/ },
      ],
    },
  };
}

function station(root: string, name: string, model: string): string {
  return writeStation(
    root,
    `station: { id: fault-model-${name}, cycleBudgetMs: 1000 }
source: { name: cam0, use: core/folder-source@1, config: { dir: ${path.join(ROOT, 'fixtures/casting')} } }
stages:
  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }
  - { name: model, use: core/onnx-model@1, config: { model: ${model} } }
  - { name: classify, use: core/classify-decode@1 }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ label: defect, rejectCode: 1 }] } }
sinks:
  - { name: results, use: core/jsonl-sink@1, config: { dir: ${path.join(root, `results-${name}`)} } }
`,
    `${name}.yaml`,
  );
}

/** The stderr lines that carry `code` (plain `CODE (...): message` lines or JSON lines alike). */
const linesWith = (stderr: string, code: RegExp): string[] => stderr.split('\n').filter((l) => code.test(l));

async function refused(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const p = new LinegateProcess(args);
  const exit = await p.exited;
  return { code: exit.code, stderr: p.stderr, stdout: p.stdout };
}

describe('fault: broken model packages', () => {
  it('refuses a missing package, a sha256 mismatch and a graph that contradicts its manifest: check and run both exit 2 listing every problem by its code, and run inspects nothing', async () => {
    const root = tempRoot('models');
    const cases = brokenPackages(root);
    const files = Object.fromEntries(Object.entries(cases).map(([name, b]) => [name, station(root, name, b.model)]));
    // All six commands at once: each only compiles and loads one model.
    const outcomes = await Promise.all(
      Object.keys(cases).flatMap((name) => [
        refused(['check', files[name]!]).then((o) => ({ name, cmd: 'check', ...o })),
        refused(['run', files[name]!, '--no-pretty']).then((o) => ({ name, cmd: 'run', ...o })),
      ]),
    );
    const problems: string[] = [];
    for (const o of outcomes) {
      const b = cases[o.name]!;
      const where = `linegate ${o.cmd} (${o.name}: ${b.model})`;
      if (o.code !== 2) problems.push(`${where} exited ${o.code}, not 2`);
      for (const want of b.expect) {
        const lines = linesWith(o.stderr, want.code);
        if (lines.length === 0) problems.push(`${where} did not report ${want.code.source}`);
        else if (!lines.some((l) => want.says.test(l))) problems.push(`${where} reported ${want.code.source} without ${want.says.source}: ${lines.join(' | ').slice(0, 400)}`);
      }
      if (o.cmd === 'run') {
        if (/"summary"/.test(o.stdout)) problems.push(`${where} printed a run summary: it ran frames with a broken model: ${o.stdout.trim().slice(0, 300)}`);
        if (/"msg":"station started"/.test(o.stderr)) problems.push(`${where} started the station`);
      }
      if (problems.some((p) => p.startsWith(where))) problems.push(`  ${where} stderr:\n${o.stderr.trim().split('\n').slice(-8).map((l) => `    ${l.slice(0, 400)}`).join('\n')}`);
    }
    expect(problems.join('\n'), 'what linegate check / run did with the broken packages').toBe('');
  });
});
