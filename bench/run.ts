/**
 * Named benchmark scenarios; each prints one JSON line. Figures that are
 * compared are measured in the same run and reported as ratios, never against
 * a number from another day or machine. `--save` writes bench/baselines/.
 *
 *   npm run bench [-- <scenario>...] [-- --save]
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { SCENARIOS } from './scenarios.js';

const args = process.argv.slice(2);
const save = args.includes('--save');
const wanted = args.filter((a) => !a.startsWith('--'));
const unknown = wanted.filter((w) => !(w in SCENARIOS));
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario(s): ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}\n`);
  process.exit(2);
}
for (const name of wanted.length > 0 ? wanted : Object.keys(SCENARIOS)) {
  const result = { scenario: name, node: process.version, at: new Date().toISOString(), ...(await SCENARIOS[name]!()) };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (save) writeFileSync(path.join(import.meta.dirname, 'baselines', `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
}
