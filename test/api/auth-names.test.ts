import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Gate, loadToken, parseTokenFile } from '../../runtime/api/auth.js';
import { LinegateErrors, type LinegateError } from '../../runtime/errors.js';
import { scratch } from '../helpers/scratch.js';

const ALICE = 'alice-token-0123456789abcdef';
const MES = 'mes-token-0123456789abcdefgh';
const BARE = 'bare-token-0123456789abcdefg';

/** Every coded error a refusal carries (one LinegateError, or several). */
function refusal(fn: () => unknown): LinegateError[] {
  try {
    fn();
  } catch (e) {
    return e instanceof LinegateErrors ? [...e.errors] : [e as LinegateError];
  }
  throw new Error('expected a refusal');
}

describe('named API tokens', () => {
  it('reads "<name> <token>" lines, a bare token as "default", and skips comments and blank lines', () => {
    const tokens = parseTokenFile(`# who may change the station\n\nalice ${ALICE}\n  mes\t${MES}  \r\n${BARE}\n# end\n`, 'api.tokenFile t');
    expect(tokens).toEqual([
      { name: 'alice', token: ALICE },
      { name: 'mes', token: MES },
      { name: 'default', token: BARE },
    ]);
  });

  it('refuses every bad line at once, naming the line and never the token', () => {
    const secret = 'shortsecret';
    const text = [`bad/name ${ALICE}`, `alice ${ALICE}`, `alice ${MES}`, `bob ${ALICE}`, `carol ${secret}`, `dave ${MES} extra`, `erin ${'x'.repeat(16)}é`].join('\n');
    const errors = refusal(() => parseTokenFile(text, 'api.tokenFile t'));
    expect(errors.map((e) => e.code)).toEqual(Array(6).fill('LG_ERR_API_TOKEN'));
    const messages = errors.map((e) => e.message);
    expect(messages[0]).toMatch(/line 1 cannot be used: the name "bad\/name" is not/);
    expect(messages[1]).toMatch(/line 3 cannot be used: the name "alice" is used twice/);
    expect(messages[2]).toMatch(/line 4 cannot be used: token "bob" is the same as token "alice"/);
    expect(messages[3]).toMatch(/line 5 cannot be used: the token is 11 characters; at least 16/);
    expect(messages[4]).toMatch(/line 6 cannot be used: 3 fields/);
    expect(messages[5]).toMatch(/line 7 cannot be used: .*printable ASCII/);
    for (const m of messages) for (const t of [ALICE, MES, secret]) expect(m).not.toContain(t);
  });

  it('refuses a file with no token, and a bare token beside a token named "default"', () => {
    expect(refusal(() => parseTokenFile('# nothing yet\n\n', 'f'))[0]!.message).toContain('it holds no token');
    expect(refusal(() => parseTokenFile(`${BARE}\ndefault ${ALICE}\n`, 'f'))[0]!.message).toMatch(/line 2 cannot be used: the name "default" is used twice/);
  });

  it('names LINEGATE_API_TOKEN "env", and prefers it to the file', async () => {
    const dir = scratch('lg-auth-names-');
    writeFileSync(path.join(dir, 'tokens'), `alice ${ALICE}\n`);
    expect(await loadToken({ LINEGATE_API_TOKEN: ` ${MES} ` }, 'tokens', dir)).toEqual({ tokens: [{ name: 'env', token: MES }], from: 'LINEGATE_API_TOKEN' });
    expect(await loadToken({}, 'tokens', dir)).toEqual({ tokens: [{ name: 'alice', token: ALICE }], from: 'api.tokenFile' });
    await expect(loadToken({ LINEGATE_API_TOKEN: 'has a space in it, 1234' }, undefined, dir)).rejects.toMatchObject({ code: 'LG_ERR_API_TOKEN' });
  });

  it('writes a generated token as a bare line that reads back as "default"', async () => {
    const dir = scratch('lg-auth-gen-');
    const first = await loadToken({}, 'secrets/token', dir, true);
    expect(first.generated).toBe(path.join(dir, 'secrets/token'));
    expect(first.tokens.map((t) => t.name)).toEqual(['default']);
    const again = await loadToken({}, 'secrets/token', dir, true);
    expect(again.generated).toBeUndefined();
    expect(again.tokens).toEqual(first.tokens);
    expect(readFileSync(path.join(dir, 'secrets/token'), 'utf8')).toBe(`${first.tokens[0]!.token}\n`);
  });

  it('says which token passed, and none for routes that need no token', () => {
    const gate = new Gate(parseTokenFile(`alice ${ALICE}\nmes ${MES}\n${BARE}\n`, 'f'), 'writes');
    expect(gate.names).toEqual(['alice', 'mes', 'default']);
    expect(gate.check('write', `Bearer ${ALICE}`, 'POST /x')).toBe('alice');
    expect(gate.check('write', `Bearer ${MES}`, 'POST /x')).toBe('mes');
    expect(gate.check('write', `Bearer ${BARE}`, 'POST /x')).toBe('default');
    expect(gate.check('read', undefined, 'GET /x')).toBeUndefined();
    expect(gate.check('open', undefined, 'GET /health')).toBeUndefined();
    for (const h of [undefined, `Bearer ${ALICE}x`, `Bearer ${ALICE.slice(0, -1)}`, `Basic ${ALICE}`, `Bearer ${ALICE} `]) {
      expect(() => gate.check('write', h, 'POST /x'), String(h)).toThrow(expect.objectContaining({ code: 'LG_ERR_API_UNAUTHORIZED' }));
    }
    const all = new Gate([{ name: 'mes', token: MES }], 'all');
    expect(all.check('read', `Bearer ${MES}`, 'GET /x')).toBe('mes');
    expect(() => all.check('read', undefined, 'GET /x')).toThrow(expect.objectContaining({ code: 'LG_ERR_API_UNAUTHORIZED' }));
    const none = new Gate([], 'writes');
    expect(none.writesOn).toBe(false);
    expect(() => none.check('write', `Bearer ${MES}`, 'POST /x')).toThrow(expect.objectContaining({ code: 'LG_ERR_API_WRITES_OFF' }));
  });
});
