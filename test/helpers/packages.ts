import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './station.js';

/** Every model package folder under models/ (`models/<name>/<version>`) that holds `file`, e.g. its parity.json. */
export function packagesWith(file: string): string[] {
  return readdirSync(path.join(ROOT, 'models'), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => readdirSync(path.join(ROOT, 'models', e.name)).map((v) => `models/${e.name}/${v}`))
    .filter((p) => existsSync(path.join(ROOT, p, file)));
}
