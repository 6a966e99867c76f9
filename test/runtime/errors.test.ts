import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERRORS, LinegateError, type ErrorCode } from '../../runtime/errors.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const doc = readFileSync(path.join(ROOT, 'runtime/errors.md'), 'utf8');

/** Rows of the tables in errors.md: code, retryable, reject code. */
const documented = new Map(
  [...doc.matchAll(/^\| `(LG_ERR_[A-Z_]+)` \| (yes|no) \|\s*(\d*)\s*\|/gm)].map((m) => [m[1]!, { retryable: m[2] === 'yes', rejectCode: m[3] === '' ? undefined : Number(m[3]) }]),
);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('the error catalogue', () => {
  it('documents every code in errors.md with the same retryable flag and reject code', () => {
    for (const [code, def] of Object.entries(ERRORS)) {
      expect(documented.get(code), `${code} is missing from runtime/errors.md`).toEqual({ retryable: def.retryable, rejectCode: 'rejectCode' in def ? def.rejectCode : undefined });
    }
  });

  it('documents no code that does not exist', () => {
    for (const code of documented.keys()) expect(Object.keys(ERRORS), `${code} is documented but not in errors.ts`).toContain(code);
  });

  it('names every code LG_ERR_<AREA>_<WHAT> and keeps reject codes in 900-999', () => {
    for (const [code, def] of Object.entries(ERRORS)) {
      expect(code).toMatch(/^LG_ERR_[A-Z]+_[A-Z_]+$/);
      if ('rejectCode' in def) expect(def.rejectCode).toBeGreaterThanOrEqual(900);
    }
  });

  it('uses every code somewhere in runtime/ or plugins/ (no dead entries)', () => {
    const code = [...sources(path.join(ROOT, 'runtime')), ...sources(path.join(ROOT, 'plugins'))]
      .filter((f) => !f.endsWith('errors.ts'))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    const unused = Object.keys(ERRORS).filter((c) => !code.includes(`'${c}'`));
    expect(unused).toEqual([]);
  });

  it('formats messages from their arguments and serialises code, step and path', () => {
    const e = new LinegateError('LG_ERR_STAGE_TIMEOUT' satisfies ErrorCode, [250, 'model'], { step: 'model' });
    expect(e.message).toBe('cycle budget of 250 ms spent in step "model"');
    expect(e.rejectCode).toBe(902);
    expect(JSON.parse(JSON.stringify(e))).toEqual({ code: 'LG_ERR_STAGE_TIMEOUT', message: e.message, retryable: false, step: 'model' });
  });
});
