// The JSON header of a safetensors file, parsed within bounds: nested no
// deeper than the format nests ({name: {shape: [...]}}), each value paid for
// from the load's budget before it is made, in one pass over the bytes.
// Objects have no prototype, so any name ('__proto__' included) is just a key.
// JSON.parse would build whatever the header nests (a 100 MB header of arrays
// held gigabytes before its shape could be checked).
import { COST, LoadBudget } from './budget';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

const NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;

/** Digits, signs, the point and exponents: what a JSON number is made of (the token is checked whole). */
function isNumberByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x45 || c === 0x65;
}

class HeaderParser {
  private pos = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly budget: LoadBudget,
    private readonly maxDepth: number,
    private readonly fail: (message: string) => never,
  ) {}

  parse(): JsonValue {
    const v = this.value(0);
    this.space();
    if (this.pos < this.buf.length) this.unexpected();
    return v;
  }

  private unexpected(): never {
    if (this.pos >= this.buf.length) this.fail('header is not JSON (it ends early)');
    const c = this.buf[this.pos];
    this.fail(`header is not JSON (unexpected ${c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16)}`} at byte ${this.pos})`);
  }

  private space(): void {
    const b = this.buf;
    while (this.pos < b.length && (b[this.pos] === 0x20 || b[this.pos] === 0x0a || b[this.pos] === 0x0d || b[this.pos] === 0x09)) this.pos++;
  }

  private expect(c: number): void {
    this.space();
    if (this.buf[this.pos] !== c) this.unexpected();
    this.pos++;
  }

  private value(depth: number): JsonValue {
    this.space();
    const c = this.buf[this.pos];
    if (c === 0x7b || c === 0x5b) {
      if (depth >= this.maxDepth) this.fail(`header nests deeper than the format's ${this.maxDepth} levels (at byte ${this.pos})`);
      return c === 0x7b ? this.object(depth + 1) : this.array(depth + 1);
    }
    if (c === 0x22) return this.string();
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.buf.toString('latin1', this.pos, this.pos + word.length) === word) {
        this.pos += word.length;
        return v;
      }
    }
    return this.unexpected();
  }

  /** The items of an object or array from its opening byte to `close`, each read by `item`. */
  private items(close: number, item: () => void): void {
    this.pos++;
    this.space();
    if (this.buf[this.pos] === close) {
      this.pos++;
      return;
    }
    for (;;) {
      item();
      this.space();
      if (this.buf[this.pos] !== 0x2c) break;
      this.pos++;
    }
    this.expect(close);
  }

  private object(depth: number): JsonValue {
    this.budget.bytes(COST.container, 'the safetensors header');
    const out = Object.create(null) as { [key: string]: JsonValue };
    this.items(0x7d, () => {
      this.space();
      if (this.buf[this.pos] !== 0x22) this.unexpected();
      const key = this.string();
      this.expect(0x3a);
      const v = this.value(depth);
      this.budget.bytes(COST.entry, 'the safetensors header');
      out[key] = v;
    });
    return out;
  }

  private array(depth: number): JsonValue {
    this.budget.bytes(COST.container, 'the safetensors header');
    const out: JsonValue[] = [];
    this.items(0x5d, () => {
      const v = this.value(depth);
      this.budget.bytes(COST.slot, 'the safetensors header');
      out.push(v);
    });
    return out;
  }

  private string(): string {
    const b = this.buf;
    const start = this.pos;
    let escaped = false;
    let i = start + 1;
    while (i < b.length && b[i] !== 0x22) {
      if (b[i] < 0x20) {
        this.pos = i;
        this.unexpected();
      }
      if (b[i] === 0x5c) {
        escaped = true;
        i++;
      }
      i++;
    }
    if (i >= b.length) this.fail(`header is not JSON (a string from byte ${start} is not closed)`);
    this.budget.bytes(COST.string(i - start), 'the safetensors header');
    this.pos = i + 1;
    if (!escaped) return b.toString('utf8', start + 1, i);
    try {
      // One string literal, escapes and all: nothing nests in it.
      return JSON.parse(b.toString('utf8', start, i + 1)) as string;
    } catch (e) {
      return this.fail(`header is not JSON (the string at byte ${start}: ${(e as Error).message})`);
    }
  }

  private number(): number {
    const b = this.buf;
    const start = this.pos;
    while (this.pos < b.length && isNumberByte(b[this.pos])) this.pos++;
    this.budget.bytes(COST.string(this.pos - start), 'the safetensors header');
    const token = b.toString('latin1', start, this.pos);
    if (!NUMBER.test(token)) this.fail(`header is not JSON (the number at byte ${start})`);
    return Number(token);
  }
}

/**
 * Parses a safetensors header (UTF-8 JSON) nested at most `maxDepth` levels
 * deep, paying for what it builds from `budget`; `fail` throws naming the file.
 */
export function parseHeader(buf: Buffer, budget: LoadBudget, maxDepth: number, fail: (message: string) => never): JsonValue {
  // One pass over the bytes; each step below consumes them.
  budget.allowSteps(buf.length);
  budget.step(buf.length, 'the safetensors header');
  return new HeaderParser(buf, budget, maxDepth, fail).parse();
}
