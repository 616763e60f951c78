// What one load() may spend, charged before the work is done, so that no
// file, however crafted, can hang the process or take it down:
// - bytes: everything the reader allocates, the tensors it returns and its
//   own working memory (pickle objects, the safetensors header), by a
//   conservative estimate of V8's sizes; never refunded, so garbage counts too;
// - steps: opcodes, items moved, header bytes, in proportion to the pickle
//   or header being read, so that work stays linear in what the file holds.
// Nesting depth is bounded on its own (MAX_DEPTH), and every refusal names
// the file. Cf. the limits of torch.load and safetensors' 100 MB header cap.

/** The bytes load may allocate beyond twice the file's size, by default. */
export const DEFAULT_EXTRA_BYTES = 64 << 20;

/**
 * Deepest nesting read (containers in containers, MARKs in MARKs): Python's
 * own recursion limit, so deeper pickles cannot come from torch.save.
 */
export const MAX_DEPTH = 1000;

/** Most dimensions a tensor read may have: a bound on work per tensor; checkpoints hold a handful. */
export const MAX_DIMS = 64;

/** Estimated bytes of V8 objects, generous so that real use stays below what is charged. */
export const COST = {
  /** A stack or array slot (8 bytes), with the copies its backing store leaves behind as it grows. */
  slot: 24,
  /** An empty array, Map or object before its first growth. */
  container: 160,
  /** One entry of a Map or dictionary-mode object. */
  entry: 64,
  /** A small object (a tensor reference, a heap number, a view). */
  object: 128,
  /** A string of `n` bytes (two-byte when not Latin-1). */
  string: (n: number): number => 2 * n + 32,
} as const;

function mib(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${n} bytes`;
}

/** A file's allowance for one load; `fail` throws naming the file. */
export class LoadBudget {
  /** The most bytes this load may allocate. */
  readonly maxBytes: number;
  private used = 0;
  private steps = 0;
  private maxSteps = 1 << 24;

  /** `maxBytes` is the caller's limit; by default twice the file's size plus DEFAULT_EXTRA_BYTES. */
  constructor(readonly file: string, readonly fileSize: number, maxBytes?: number) {
    this.maxBytes = maxBytes ?? 2 * fileSize + DEFAULT_EXTRA_BYTES;
  }

  /** Throws `${file}: message` (RangeError unless told otherwise). */
  fail(message: string, kind: new (m: string) => Error = RangeError): never {
    throw new kind(`${this.file}: ${message}`);
  }

  /** Bytes charged so far. */
  get spent(): number {
    return this.used;
  }

  /** Bytes still allowed. */
  get left(): number {
    return this.maxBytes - this.used;
  }

  /** How the limit was set, for messages. */
  describeLimit(): string {
    return `maxBytes is ${mib(this.maxBytes)}` +
      (this.maxBytes === 2 * this.fileSize + DEFAULT_EXTRA_BYTES ? ' (the default: twice the file\'s size plus 64 MiB)' : '');
  }

  /** Charges `n` bytes about to be allocated; `what` says for what (called only on refusal). */
  bytes(n: number, what: string | (() => string)): void {
    if (n <= this.maxBytes - this.used) {
      this.used += n;
      return;
    }
    const said = typeof what === 'string' ? what : what();
    this.fail(`${said} would take load past the memory it may use for this file: ${mib(n)} more after ${mib(this.used)}, ` +
      `and ${this.describeLimit()}. If the file is trusted, pass load(path, { maxBytes }) with a larger limit`);
  }

  /** Work in proportion to `size` bytes of pickle or header: at most 8 steps a byte, plus 2^24. */
  allowSteps(size: number): void {
    this.maxSteps = 8 * size + (1 << 24);
  }

  /** Counts `n` steps of work about to be done in `what`. */
  step(n: number, what: string): void {
    this.steps += n;
    if (this.steps > this.maxSteps) {
      this.fail(`reading ${what} takes more than ${this.maxSteps} steps (8 per byte read, plus 2^24): ` +
        'a crafted file repeating work on shared objects?');
    }
  }
}

/** At most `max` characters of a name from the file, for messages. */
export function shown(s: string, max = 100): string {
  return s.length <= max ? s : `${s.slice(0, max)}... (${s.length} characters)`;
}
