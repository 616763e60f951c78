// Rendezvous key-value stores, as torch.distributed has them: a TCP store
// hosted by rank 0 and a file store on a shared file system. Every operation
// is asynchronous and every wait has a timeout.
//
// The TCP wire format is shared with the native client
// (native/comm/store_client.cpp), which Gloo's rendezvous uses from a worker
// thread. All integers little endian. On connect the server sends a 16-byte
// random nonce. Request: u32 body length, body (u8 op, u32 key length, key,
// u32 value length, value, u32 timeout ms), then HMAC-SHA256(secret, nonce ||
// u64 sequence || 'Q' || body). Reply: body (u8 status: 0 ok, 1 timeout; u32
// length, payload), then HMAC-SHA256(secret, nonce || u64 sequence || 'A' ||
// body). The sequence counts requests on the connection from 0, so a request
// or reply cannot be replayed, reordered or moved to another connection.
// The server closes a connection (only that one) on a request that fails
// authentication, is malformed or larger than MAX_BODY, or on more than
// MAX_QUEUED requests waiting; it holds at most `maxConnections`, and drops
// one that has not authenticated within AUTH_DEADLINE_MS. A connection whose
// first request fails authentication is reset (RST), any other closed (FIN),
// so that a client blames its secret only for the first; the server also
// sets REFUSED_KEY to that client's address, for the job's ranks to report
// (see initProcessGroup). A client gives a reply up to the request's own
// wait plus REPLY_SLACK_MS, then counts the store as unreachable.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

const enum Op {
  Set = 1,
  Get = 2,
  Add = 3,
  Wait = 4,
  Check = 5,
}

const enum Status {
  Ok = 0,
  Timeout = 1,
}

/** Limits of the TCP store (see the header comment); the server's copy lives in serveStore. */
export const STORE_LIMITS = { maxBody: 4 << 20, maxQueued: 64, authDeadlineMs: 10_000, nonceBytes: 16, macBytes: 32, replySlackMs: 2000 } as const;

/** The key under which the TCP store records the address of the first client it refused for a wrong secret. */
export const REFUSED_KEY = 'syncbn/refused';

function mac(secret: string, nonce: Buffer, seq: number, dir: 'Q' | 'A', body: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeBigUInt64LE(BigInt(seq));
  head.write(dir, 8, 'latin1');
  return crypto.createHmac('sha256', secret).update(nonce).update(head).update(body).digest();
}

/** A store wait that ran out of time; `missing` names the keys not yet set. */
export class StoreTimeoutError extends Error {
  constructor(message: string, readonly missing: string[]) {
    super(message);
    this.name = 'StoreTimeoutError';
  }
}

/** What the process groups need from a rendezvous store. Cf. `torch.distributed.Store`. */
export interface Store {
  readonly timeoutMs: number;
  set(key: string, value: string | Buffer): Promise<void>;
  /** Waits until `key` is set, then returns its value. */
  get(key: string, timeoutMs?: number): Promise<Buffer>;
  /** Adds to an integer counter (created at 0) and returns the new value. */
  add(key: string, amount: number): Promise<number>;
  wait(keys: string[], timeoutMs?: number): Promise<void>;
  check(keys: string[]): Promise<boolean>;
  /**
   * Lets the process exit while the store is idle (after initialization), as
   * a Python program exits with its TCPStore open. Waits in flight still keep it.
   */
  unref(): void;
  close(): Promise<void>;
}

function encodeKeys(keys: string[]): Buffer {
  const parts: Buffer[] = [u32(keys.length)];
  for (const k of keys) {
    const b = Buffer.from(k);
    parts.push(u32(b.length), b);
  }
  return Buffer.concat(parts);
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

/** Pulls complete frames of `parse`'s shape out of a byte stream. */
class FrameReader<T> {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly parse: (buf: Buffer) => [T, number] | null) {}
  push(chunk: Buffer): T[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: T[] = [];
    for (;;) {
      const r = this.parse(this.buf);
      if (!r) break;
      out.push(r[0]);
      this.buf = this.buf.subarray(r[1]);
    }
    return out;
  }
}

// A reply: [status, payload, the body its MAC covers, the MAC].
type Reply = [Status, Buffer, Buffer, Buffer];

function parseReply(b: Buffer): [Reply, number] | null {
  if (b.length < 5) return null;
  const len = b.readUInt32LE(1);
  const end = 5 + len + STORE_LIMITS.macBytes;
  if (b.length < end) return null;
  const body = Buffer.from(b.subarray(0, 5 + len));
  return [[b[0] as Status, body.subarray(5), body, Buffer.from(b.subarray(5 + len, end))], end];
}

/**
 * The TCP store's server, hosted by rank 0 on a worker thread of its own:
 * rank 0's main thread blocks inside collectives, and the store must still
 * answer the other ranks then. Requests of one connection are answered in
 * order; a blocking get/wait holds only its own connection.
 */
export class StoreServer {
  private constructor(private readonly worker: Worker, readonly port: number) {}

  /**
   * Listens on host:port (port 0 picks a free one; see `port`), answering
   * only requests authenticated with `secret`, with at most `maxConnections` open.
   */
  static listen(host: string, port: number, secret: string, maxConnections: number): Promise<StoreServer> {
    const worker = new Worker(`(${serveStore.toString()})();`, {
      eval: true,
      workerData: { host, port, secret, maxConnections, limits: STORE_LIMITS, refusedKey: REFUSED_KEY },
    });
    return new Promise((resolve, reject) => {
      worker.once('message', (m: { port?: number; error?: string }) => {
        if (m.port !== undefined) resolve(new StoreServer(worker, m.port));
        else {
          void worker.terminate();
          reject(new Error(`rendezvous store could not listen on ${host}:${port}: ${m.error}`));
        }
      });
      worker.once('error', reject);
    });
  }

  /** Whether the server keeps the process alive; see `Store.unref`. */
  setReferenced(on: boolean): void {
    if (on) this.worker.ref();
    else this.worker.unref();
  }

  /** Ends every connection with a FIN (a client blames its secret only for a reset), then stops the thread. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 500);
      this.worker.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      this.worker.postMessage('close');
    });
    await this.worker.terminate();
  }
}

/**
 * The server's thread. Self-contained (it runs as eval'd code in a Worker):
 * no imports from this module.
 */
function serveStore(): void {
  /* eslint-disable @typescript-eslint/no-var-requires */
  const net = require('node:net') as typeof import('node:net');
  const crypto = require('node:crypto') as typeof import('node:crypto');
  const { parentPort, workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
  const data = new Map<string, Buffer>();
  const secret: string = workerData.secret;
  const limits: typeof STORE_LIMITS = workerData.limits;
  const waiters = new Set<() => void>();
  const OK = 0;
  const TIMEOUT = 1;
  const ERROR = 2;

  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return b;
  };
  const frame = (status: number, payload: Buffer = Buffer.alloc(0)) => Buffer.concat([Buffer.from([status]), u32(payload.length), payload]);
  const decodeKeys = (buf: Buffer): string[] | null => {
    if (buf.length < 4) return null;
    const n = buf.readUInt32LE(0);
    if (n > (buf.length - 4) / 4) return null;
    const keys: string[] = [];
    let off = 4;
    for (let i = 0; i < n; i++) {
      if (off + 4 > buf.length) return null;
      const len = buf.readUInt32LE(off);
      if (off + 4 + len > buf.length) return null;
      keys.push(buf.subarray(off + 4, off + 4 + len).toString());
      off += 4 + len;
    }
    return off === buf.length ? keys : null;
  };
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  // Resolves once every key is present (true) or the timeout passes (false).
  const until = (keys: string[], timeoutMs: number) => {
    const ready = () => keys.every((k) => data.has(k));
    if (ready()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const check = () => {
        if (!ready()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(true);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        resolve(ready());
      }, timeoutMs);
      waiters.add(check);
    });
  };
  const handle = async (op: number, key: string, value: Buffer, timeoutMs: number): Promise<Buffer> => {
    switch (op) {
      case 1: // set
        data.set(key, value);
        wake();
        return frame(OK);
      case 2: // get
        if (!(await until([key], timeoutMs))) return frame(TIMEOUT, Buffer.from(`key '${key}'`));
        return frame(OK, data.get(key));
      case 3: { // add
        const next = Number(data.get(key)?.toString() ?? '0') + Number(value.toString());
        data.set(key, Buffer.from(String(next)));
        wake();
        return frame(OK, Buffer.from(String(next)));
      }
      case 4: { // wait
        const keys = decodeKeys(value)!;
        if (await until(keys, timeoutMs)) return frame(OK);
        return frame(TIMEOUT, Buffer.from(keys.filter((k) => !data.has(k)).map((k) => `'${k}'`).join(', ')));
      }
      case 5: // check
        return frame(OK, Buffer.from([decodeKeys(value)!.every((k) => data.has(k)) ? 1 : 0]));
      case 6: // delete
        return frame(OK, Buffer.from([data.delete(key) ? 1 : 0]));
      default:
        return frame(ERROR, Buffer.from(`unknown store operation ${op}`));
    }
  };

  // Strict parse of a request body: every length within the body, nothing
  // left over, a known op; null when malformed.
  const parseRequest = (body: Buffer): [number, string, Buffer, number] | null => {
    if (body.length < 13) return null;
    const op = body[0];
    const klen = body.readUInt32LE(1);
    if (op < 1 || op > 6 || 9 + klen > body.length) return null;
    const vlen = body.readUInt32LE(5 + klen);
    if (13 + klen + vlen !== body.length) return null;
    const value = Buffer.from(body.subarray(9 + klen, 9 + klen + vlen));
    if ((op === 4 || op === 5) && decodeKeys(value) === null) return null;
    if (op === 3 && !/^-?\d{1,15}$/.test(value.toString('latin1'))) return null;
    return [op, body.subarray(5, 5 + klen).toString(), value, body.readUInt32LE(body.length - 4)];
  };

  const sockets = new Set<import('node:net').Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.setNoDelay(true);
    const nonce = crypto.randomBytes(limits.nonceBytes);
    let inSeq = 0;
    let outSeq = 0;
    let authenticated = false;
    let buf: Buffer = Buffer.alloc(0);
    const queue: Array<[number, string, Buffer, number]> = [];
    let busy = false;
    const drop = () => {
      queue.length = 0;
      socket.destroy();
    };
    // A first request that fails authentication: another secret. Recorded
    // for the job, and told to the client by a reset.
    const refuse = () => {
      queue.length = 0;
      if (!data.has(workerData.refusedKey)) {
        data.set(workerData.refusedKey, Buffer.from(String(socket.remoteAddress).replace(/^::ffff:/, '')));
        wake();
      }
      socket.resetAndDestroy();
    };
    const deadline = setTimeout(() => {
      if (!authenticated) drop();
    }, limits.authDeadlineMs);
    socket.on('close', () => clearTimeout(deadline));
    const sign = (seq: number, dir: string, body: Buffer) => {
      const head = Buffer.alloc(9);
      head.writeBigUInt64LE(BigInt(seq));
      head.write(dir, 8, 'latin1');
      return crypto.createHmac('sha256', secret).update(nonce).update(head).update(body).digest();
    };
    const next = async () => {
      if (busy) return;
      busy = true;
      while (queue.length > 0 && !socket.destroyed) {
        const body = await handle(...queue.shift()!);
        if (!socket.destroyed) socket.write(Buffer.concat([body, sign(outSeq++, 'A', body)]));
      }
      busy = false;
    };
    socket.write(nonce);
    socket.on('data', (chunk: Buffer) => {
      if (socket.destroyed) return;
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (buf.length < 4) break;
        const len = buf.readUInt32LE(0);
        // Oversized: closed before its bytes are buffered.
        if (len > limits.maxBody || len < 13) return drop();
        const end = 4 + len + limits.macBytes;
        if (buf.length < end) break;
        const body = buf.subarray(4, 4 + len);
        const expected = sign(inSeq, 'Q', body);
        if (!crypto.timingSafeEqual(expected, buf.subarray(4 + len, end))) return authenticated ? drop() : refuse();
        const req = parseRequest(body);
        if (req === null) return drop();
        inSeq++;
        authenticated = true;
        if (queue.length >= limits.maxQueued) return drop();
        queue.push(req);
        buf = buf.subarray(end);
      }
      void next();
    });
    socket.on('error', () => socket.destroy());
  });
  server.maxConnections = workerData.maxConnections;
  server.once('error', (e: Error) => parentPort!.postMessage({ error: e.message }));
  parentPort!.on('message', (m) => {
    if (m !== 'close') return;
    server.close();
    const ends = [...sockets].map((s) => new Promise<void>((resolve) => s.end(() => resolve())));
    void Promise.all(ends).then(() => parentPort!.postMessage('closed'));
  });
  server.listen(workerData.port, workerData.host, () => {
    parentPort!.postMessage({ port: (server.address() as import('node:net').AddressInfo).port });
  });
}

/** Client of a `StoreServer`. Cf. `torch.distributed.TCPStore`. */
export class TCPStore implements Store {
  private readonly reader = new FrameReader(parseReply);
  private readonly pending: Array<{ resolve: (r: [Status, Buffer]) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }> = [];
  private chain: Promise<unknown> = Promise.resolve();
  private closedError: Error | null = null;
  private keepAlive = true;
  private outSeq = 0;
  private inSeq = 0;

  private constructor(
    private readonly socket: net.Socket,
    readonly host: string,
    readonly port: number,
    readonly timeoutMs: number,
    private readonly server: StoreServer | null,
    private readonly secret: string,
    private readonly nonce: Buffer,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      for (const [status, payload, body, tag] of this.reader.push(chunk)) {
        if (!crypto.timingSafeEqual(tag, mac(secret, nonce, this.inSeq++, 'A', body))) {
          this.fail('a reply failed authentication: another process answers on this port, or its SYNCBN_SECRET differs');
          socket.destroy();
          return;
        }
        const p = this.pending.shift();
        if (p) {
          clearTimeout(p.timer);
          p.resolve([status, payload]);
        }
      }
      if (this.pending.length === 0 && !this.keepAlive) socket.unref();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      // The store resets a connection whose first request fails
      // authentication (and ends others with a FIN); once a reply has
      // authenticated, the secrets agree.
      const reset = e.code === 'ECONNRESET';
      const refused = reset && this.inSeq === 0 && this.outSeq > 0;
      this.fail(refused ? "the store refused this rank's first request (reset the connection), as it does when a request fails " +
        "authentication: this rank's SYNCBN_SECRET (or secret option) differs from rank 0's" :
        reset ? 'the store reset it: rank 0 exited or closed the store' : e.message);
    });
    const closed = () => this.fail('the store closed it: rank 0 exited or closed the store');
    socket.on('end', closed);
    socket.on('close', closed);
  }

  private fail(why: string): void {
    this.closedError ??= new Error(`lost the connection to the rendezvous store at ${this.host}:${this.port} (${why})`);
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(this.closedError);
    }
  }

  /**
   * Connects to the store at host:port, first starting it when `isServer`
   * (rank 0). Retries until `timeoutMs`, since rank 0 may come up last.
   * Every request and reply is authenticated with `secret` (HMAC-SHA256).
   */
  static async create(opts: { host: string; port: number; isServer: boolean; timeoutMs: number; secret?: string; maxConnections?: number }): Promise<TCPStore> {
    const secret = opts.secret ?? '';
    const server = opts.isServer ? await StoreServer.listen(opts.host, opts.port, secret, opts.maxConnections ?? 1024) : null;
    const port = server ? server.port : opts.port;
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      try {
        const [socket, nonce] = await new Promise<[net.Socket, Buffer]>((resolve, reject) => {
          const s = net.connect({ host: opts.host, port });
          let got = Buffer.alloc(0);
          const timer = setTimeout(() => {
            s.destroy();
            reject(new Error('the store sent no greeting'));
          }, Math.max(1, Math.min(5000, deadline - Date.now())));
          const onData = (chunk: Buffer) => {
            got = Buffer.concat([got, chunk]);
            if (got.length < STORE_LIMITS.nonceBytes) return;
            clearTimeout(timer);
            s.off('data', onData);
            s.off('error', onError);
            s.off('close', onClose);
            if (got.length > STORE_LIMITS.nonceBytes) {
              s.destroy();
              return reject(new Error('the store greeted with more than its nonce'));
            }
            resolve([s, got]);
          };
          const onError = (e: Error) => {
            clearTimeout(timer);
            reject(e);
          };
          const onClose = () => {
            clearTimeout(timer);
            reject(new Error('the store closed the connection (at its connection limit?)'));
          };
          s.on('data', onData);
          s.once('error', onError);
          s.once('close', onClose);
        });
        return new TCPStore(socket, opts.host, port, opts.timeoutMs, server, secret, nonce);
      } catch (e) {
        if (Date.now() >= deadline) {
          await server?.close();
          throw new Error(`could not reach the rendezvous store at ${opts.host}:${port} within ${opts.timeoutMs} ms ` +
            `(${(e as Error).message}); is rank 0 running with the same MASTER_ADDR/MASTER_PORT?`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private request(op: Op, key: string, value: Buffer, timeoutMs: number): Promise<[Status, Buffer]> {
    const run = () =>
      new Promise<[Status, Buffer]>((resolve, reject) => {
        if (this.closedError) return reject(this.closedError);
        const k = Buffer.from(key);
        const body = Buffer.concat([Buffer.from([op]), u32(k.length), k, u32(value.length), value, u32(timeoutMs)]);
        if (body.length > STORE_LIMITS.maxBody) {
          return reject(new RangeError(`rendezvous store request of ${body.length} bytes is over the limit of ${STORE_LIMITS.maxBody}`));
        }
        // A store whose host drops packets never answers: the kernel would
        // retry for minutes, the request gives up after its own wait and a slack.
        const limit = timeoutMs + STORE_LIMITS.replySlackMs;
        const timer = setTimeout(() => {
          this.fail(`no reply within ${limit} ms: its host is unreachable from here, or rank 0 is stalled`);
          this.socket.destroy();
        }, limit);
        this.pending.push({ resolve, reject, timer });
        this.socket.ref();
        this.socket.write(Buffer.concat([u32(body.length), body, mac(this.secret, this.nonce, this.outSeq++, 'Q', body)]));
      });
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  async set(key: string, value: string | Buffer): Promise<void> {
    await this.request(Op.Set, key, Buffer.from(value), 0);
  }

  async get(key: string, timeoutMs = this.timeoutMs): Promise<Buffer> {
    const [status, payload] = await this.request(Op.Get, key, Buffer.alloc(0), timeoutMs);
    if (status === Status.Timeout) throw new StoreTimeoutError(`store get timed out after ${timeoutMs} ms waiting for key '${key}'`, [key]);
    return payload;
  }

  async add(key: string, amount: number): Promise<number> {
    const [, payload] = await this.request(Op.Add, key, Buffer.from(String(amount)), 0);
    return Number(payload.toString());
  }

  async wait(keys: string[], timeoutMs = this.timeoutMs): Promise<void> {
    const [status, payload] = await this.request(Op.Wait, '', encodeKeys(keys), timeoutMs);
    if (status === Status.Timeout) {
      // The reply names the keys still missing, each quoted.
      const named = payload.toString();
      const missing = keys.filter((k) => named.includes(`'${k}'`));
      throw new StoreTimeoutError(`store wait timed out after ${timeoutMs} ms waiting for keys ${missing.map((k) => `'${k}'`).join(', ')}`, missing);
    }
  }

  async check(keys: string[]): Promise<boolean> {
    const [, payload] = await this.request(Op.Check, '', encodeKeys(keys), 0);
    return payload[0] === 1;
  }

  unref(): void {
    this.keepAlive = false;
    if (this.pending.length === 0) this.socket.unref();
    this.server?.setReferenced(false);
  }

  async close(): Promise<void> {
    this.closedError ??= new Error(`the client of the rendezvous store at ${this.host}:${this.port} was closed`);
    this.socket.destroy();
    await this.server?.close();
  }
}

/**
 * A store in a directory on a shared file system (init method file://):
 * one file per key, written atomically by rename. Cf. `torch.distributed.FileStore`.
 * Use a fresh path per job: keys of an earlier job would be seen as set.
 */
export class FileStore implements Store {
  constructor(readonly dir: string, readonly timeoutMs: number) {
    fs.mkdirSync(dir, { recursive: true });
  }

  private file(key: string): string {
    return path.join(this.dir, encodeURIComponent(key));
  }

  async set(key: string, value: string | Buffer): Promise<void> {
    const tmp = `${this.file(key)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await fs.promises.writeFile(tmp, value);
    await fs.promises.rename(tmp, this.file(key));
  }

  private async poll<T>(ready: () => Promise<T | null>, timeoutMs: number, onTimeout: () => Promise<Error>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await ready();
      if (v !== null) return v;
      if (Date.now() >= deadline) throw await onTimeout();
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async get(key: string, timeoutMs = this.timeoutMs): Promise<Buffer> {
    return this.poll(
      () => fs.promises.readFile(this.file(key)).catch(() => null),
      timeoutMs,
      async () => new StoreTimeoutError(`store get timed out after ${timeoutMs} ms waiting for key '${key}'`, [key]),
    );
  }

  async add(key: string, amount: number): Promise<number> {
    const lock = `${this.file(key)}.lock`;
    await this.poll(() => fs.promises.mkdir(lock).then(() => true, () => null), this.timeoutMs,
      async () => new Error(`file store: could not lock '${key}' within ${this.timeoutMs} ms (stale ${lock}?)`));
    try {
      const current = Number((await fs.promises.readFile(this.file(key)).catch(() => Buffer.from('0'))).toString());
      const next = current + amount;
      await this.set(key, String(next));
      return next;
    } finally {
      await fs.promises.rmdir(lock);
    }
  }

  async wait(keys: string[], timeoutMs = this.timeoutMs): Promise<void> {
    await this.poll(async () => ((await this.check(keys)) ? true : null), timeoutMs, async () => {
      const missing: string[] = [];
      for (const k of keys) if (!(await this.check([k]))) missing.push(k);
      return new StoreTimeoutError(`store wait timed out after ${timeoutMs} ms waiting for keys ${missing.map((k) => `'${k}'`).join(', ')}`, missing);
    });
  }

  async check(keys: string[]): Promise<boolean> {
    for (const k of keys) {
      try {
        await fs.promises.access(this.file(k));
      } catch {
        return false;
      }
    }
    return true;
  }

  unref(): void {
    // Holds no handles.
  }

  async close(): Promise<void> {
    // Files stay for ranks still reading them.
  }
}
