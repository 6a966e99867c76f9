/**
 * Parses Python literal reprs, as Ultralytics writes its ONNX metadata with
 * `str()`: `{0: 'crazing', 1: 'inclusion'}`, `[640, 640]`, `32`, `True`.
 * Dicts become plain objects with string keys (`0` -> "0"), lists and tuples
 * arrays, None null. Anything that is not a literal (a call, a name, a set, an
 * expression, bytes) is refused with an Error naming the character.
 */

export type PyValue = null | boolean | number | string | PyValue[] | { [key: string]: PyValue };

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

const isDigit = (ch: string | undefined): boolean => ch !== undefined && ch >= '0' && ch <= '9';
const isIdent = (ch: string | undefined): boolean => ch !== undefined && /[A-Za-z0-9_]/.test(ch);
const isSpace = (ch: string | undefined): boolean => ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r';

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  fail(message: string, at = this.i): never {
    const near = this.s.slice(Math.max(0, at - 10), at + 10);
    throw new Error(`not a Python literal: ${message} at character ${at} (near ${JSON.stringify(near)})`);
  }

  private ws(): void {
    while (isSpace(this.s[this.i])) this.i++;
  }

  private peek(): string | undefined {
    this.ws();
    return this.s[this.i];
  }

  private eat(ch: string): boolean {
    if (this.peek() === ch) {
      this.i++;
      return true;
    }
    return false;
  }

  parseAll(): PyValue {
    if (this.s.trim() === '') this.fail('empty text', 0);
    const v = this.value();
    this.ws();
    if (this.i < this.s.length) this.fail('unexpected text after the value');
    return v;
  }

  private value(depth = 0): PyValue {
    if (depth > 100) this.fail('nesting deeper than 100 levels');
    const ch = this.peek();
    if (ch === undefined) this.fail('the text ends where a value should be');
    if (ch === '{') return this.dict(depth);
    if (ch === '[') return this.sequence(']', depth);
    if (ch === '(') return this.tuple(depth);
    if (ch === "'" || ch === '"') return this.string(false);
    if (ch === '-' || ch === '+' || ch === '.' || isDigit(ch)) return this.number();
    if (/[A-Za-z_]/.test(ch)) return this.word();
    return this.fail(`unexpected ${JSON.stringify(ch)}`);
  }

  private dict(depth: number): { [key: string]: PyValue } {
    this.i++; // {
    const entries: [string, PyValue][] = [];
    while (!this.eat('}')) {
      const at = this.i;
      const key = this.value(depth + 1);
      if (!this.eat(':')) {
        if (this.peek() === ',' || this.peek() === '}') this.fail('a set is not supported (only dicts, lists, tuples and scalars)', at);
        this.fail('expected ":" after a dict key');
      }
      const v = this.value(depth + 1);
      entries.push([keyString(key, () => this.fail('a dict key must be a string, number, bool or None', at)), v]);
      if (!this.eat(',')) {
        if (this.eat('}')) break;
        this.fail('expected "," or "}" in a dict');
      }
    }
    // fromEntries: own properties even for "__proto__"; a repeated key keeps its last value, as in Python.
    return Object.fromEntries(entries);
  }

  private sequence(close: string, depth: number): PyValue[] {
    this.i++; // [ or (
    const items: PyValue[] = [];
    while (!this.eat(close)) {
      items.push(this.value(depth + 1));
      if (!this.eat(',')) {
        if (this.eat(close)) break;
        this.fail(`expected "," or "${close}"`);
      }
    }
    return items;
  }

  /** `()`, `(1,)`, `(1, 2)`; `(x)` is just x, as in Python. */
  private tuple(depth: number): PyValue {
    const start = this.i;
    this.i++;
    if (this.eat(')')) return [];
    const first = this.value(depth + 1);
    if (this.eat(')')) return first;
    this.i = start;
    return this.sequence(')', depth);
  }

  private word(): PyValue {
    const start = this.i;
    while (isIdent(this.s[this.i])) this.i++;
    const w = this.s.slice(start, this.i);
    if (w === 'True') return true;
    if (w === 'False') return false;
    if (w === 'None') return null;
    if (w === 'inf') return Infinity;
    if (w === 'nan') return NaN;
    // String prefixes: u'' (Python 2 repr) and r'' are text; b'' is bytes, refused.
    const q = this.s[this.i];
    if ((q === "'" || q === '"') && /^[uUrR]$/.test(w)) return this.string(w === 'r' || w === 'R');
    if (q === "'" || q === '"') this.fail(`string prefix ${w} is not supported`, start);
    if (this.peek() === '(') this.fail(`a call to ${w}(...) is not a literal`, start);
    return this.fail(`unknown name ${w}`, start);
  }

  private number(): number {
    const start = this.i;
    let sign = 1;
    if (this.s[this.i] === '-' || this.s[this.i] === '+') {
      if (this.s[this.i] === '-') sign = -1;
      this.i++;
      this.ws();
      if (this.s.startsWith('inf', this.i) && !isIdent(this.s[this.i + 3])) {
        this.i += 3;
        return sign * Infinity;
      }
    }
    const m = /^(?:\d(?:_?\d)*)?(?:\.(?:\d(?:_?\d)*)?)?(?:[eE][+-]?\d(?:_?\d)*)?/.exec(this.s.slice(this.i));
    const text = m?.[0] ?? '';
    if (!/\d/.test(text.replace(/[eE].*$/, ''))) this.fail('expected a number', start);
    this.i += text.length;
    if (isIdent(this.s[this.i]) || this.s[this.i] === '.') this.fail('not a plain int or float (complex, hex or a malformed number)', start);
    const clean = text.replace(/_/g, '');
    const isInt = /^\d+$/.test(clean);
    if (isInt && clean.length > 1 && clean[0] === '0' && /[1-9]/.test(clean)) this.fail('an int with leading zeros', start);
    const n = sign * Number(clean);
    if (isInt && !Number.isSafeInteger(n)) this.fail('an int too large for a JavaScript number', start);
    return n === 0 ? 0 : n;
  }

  private string(raw: boolean): string {
    const start = this.i;
    const quote = this.s[this.i]!;
    this.i++;
    let out = '';
    for (;;) {
      const ch = this.s[this.i];
      if (ch === undefined) this.fail('unterminated string', start);
      if (ch === '\n') this.fail('a newline inside a string', this.i);
      this.i++;
      if (ch === quote) break;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const e = this.s[this.i];
      if (e === undefined) this.fail('unterminated string', start);
      this.i++;
      if (raw) {
        out += `\\${e}`;
        continue;
      }
      if (e === '\n') continue; // line continuation
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
      } else if (e >= '0' && e <= '7') {
        let digits = e;
        while (digits.length < 3 && /[0-7]/.test(this.s[this.i] ?? '')) digits += this.s[this.i++];
        out += String.fromCodePoint(parseInt(digits, 8));
      } else if (e === 'x' || e === 'u' || e === 'U') {
        const len = e === 'x' ? 2 : e === 'u' ? 4 : 8;
        const hex = this.s.slice(this.i, this.i + len);
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) this.fail(`a \\${e} escape needs ${len} hex digits`, this.i - 2);
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff) this.fail(`\\${e}${hex} is beyond Unicode`, this.i - 2);
        out += String.fromCodePoint(cp);
        this.i += len;
      } else if (e === 'N') {
        this.fail('\\N{...} named escapes are not supported', this.i - 2);
      } else {
        out += `\\${e}`; // Python keeps unknown escapes as they are
      }
    }
    return out;
  }
}

function keyString(key: PyValue, bad: () => never): string {
  if (typeof key === 'string') return key;
  if (typeof key === 'number') return String(key);
  if (key === true) return 'True';
  if (key === false) return 'False';
  if (key === null) return 'None';
  return bad();
}

/** Parses one Python literal (the text of `str(value)` for dicts, lists, tuples, numbers, strings, bools, None). */
export function parsePyLiteral(text: string): PyValue {
  return new Parser(text).parseAll();
}

/** parsePyLiteral, or undefined when the text is not a literal (metadata that is plain text, like `task = detect`). */
export function tryPyLiteral(text: string): PyValue | undefined {
  try {
    return parsePyLiteral(text);
  } catch {
    return undefined;
  }
}
