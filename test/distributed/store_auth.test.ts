// The rendezvous store answers only its job: every request and reply carries
// an HMAC-SHA256 under the job's secret, bound to the connection's nonce and
// the request's sequence number. A request that fails authentication, is
// malformed or oversized closes that connection only; the store goes on.
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { distributed as dist } from '../../lib';
import { native } from '../../lib/native';

const SECRET = 'job-secret-0123456789abcdef';

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

function mac(secret: string, nonce: Buffer, seq: number, dir: string, body: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeBigUInt64LE(BigInt(seq));
  head.write(dir, 8, 'latin1');
  return crypto.createHmac('sha256', secret).update(nonce).update(head).update(body).digest();
}

function body(op: number, key: string, value: Buffer, timeoutMs = 0): Buffer {
  const k = Buffer.from(key);
  return Buffer.concat([Buffer.from([op]), u32(k.length), k, u32(value.length), value, u32(timeoutMs)]);
}

/** A raw connection: its nonce, and a promise that resolves when the store closes it. */
async function raw(port: number): Promise<{ socket: net.Socket; nonce: Buffer; closed: Promise<number>; received: () => Buffer }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  let got = Buffer.alloc(0);
  socket.on('data', (c) => (got = Buffer.concat([got, c])));
  const t0 = Date.now();
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - t0)));
  socket.on('error', () => undefined);
  for (let i = 0; i < 200 && got.length < 16; i++) await new Promise((r) => setTimeout(r, 5));
  return { socket, nonce: got.subarray(0, 16), closed, received: () => got.subarray(16) };
}

async function storeWorks(client: dist.TCPStore, key: string): Promise<void> {
  await client.set(key, 'v');
  expect((await client.get(key, 1000)).toString()).toBe('v');
}

describe('HMAC-SHA256 of the native store client', () => {
  const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
  const text = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
  // RFC 4231, test cases 1, 2, 3, 4, 6 and 7 (5 truncates the output).
  const vectors: [Uint8Array, Uint8Array, string][] = [
    [hex('0b'.repeat(20)), text('Hi There'), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    [text('Jefe'), text('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    [hex('aa'.repeat(20)), hex('dd'.repeat(50)), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'],
    [hex('0102030405060708090a0b0c0d0e0f10111213141516171819'), hex('cd'.repeat(50)), '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b'],
    [hex('aa'.repeat(131)), text('Test Using Larger Than Block-Size Key - Hash Key First'), '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
    [hex('aa'.repeat(131)), text('This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.'), '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2'],
  ];

  test('RFC 4231 test vectors', () => {
    for (const [key, data, want] of vectors) expect(Buffer.from(native.hmacSha256(key, data)).toString('hex')).toBe(want);
  });

  test("agrees with Node's crypto on every length around the block boundaries", () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000]) {
      const key = crypto.randomBytes(n % 97);
      const data = crypto.randomBytes(n);
      expect(Buffer.from(native.hmacSha256(new Uint8Array(key), new Uint8Array(data))).toString('hex'))
        .toBe(crypto.createHmac('sha256', key).update(data).digest('hex'));
    }
  });
});

describe('the TCP store refuses what is not its job', () => {
  jest.setTimeout(30000);
  let server: dist.TCPStore;
  let good: dist.TCPStore;

  beforeAll(async () => {
    server = await dist.TCPStore.create({ host: '127.0.0.1', port: 0, isServer: true, timeoutMs: 5000, secret: SECRET, maxConnections: 12 });
    good = await dist.TCPStore.create({ host: '127.0.0.1', port: server.port, isServer: false, timeoutMs: 5000, secret: SECRET });
    await server.set('rank/0', 'addr0');
  });
  afterAll(async () => {
    await good.close();
    await server.close();
  });

  test('a client with another secret cannot read, set or join; the store goes on', async () => {
    const stranger = await dist.TCPStore.create({ host: '127.0.0.1', port: server.port, isServer: false, timeoutMs: 5000, secret: 'guess' });
    await expect(stranger.get('rank/0', 500)).rejects.toThrow(/lost the connection to the rendezvous store .*SYNCBN_SECRET/);
    await expect(stranger.set('rank/0', 'forged')).rejects.toThrow(/lost the connection/);
    await stranger.close();
    expect((await good.get('rank/0', 1000)).toString()).toBe('addr0');
  });

  test('a request signed for another connection (a replay) is refused', async () => {
    const a = await raw(server.port);
    const b = await raw(server.port);
    const req = body(1, 'rank/0', Buffer.from('forged'));
    b.socket.write(Buffer.concat([u32(req.length), req, mac(SECRET, a.nonce, 0, 'Q', req)]));
    expect(await b.closed).toBeLessThan(2000);
    expect(b.received().length).toBe(0);
    a.socket.destroy();
    expect((await good.get('rank/0', 1000)).toString()).toBe('addr0');
  });

  test('garbage, a short check, a key count of 0xFFFFFFFF and an oversized length close that connection only', async () => {
    const cases: [string, (nonce: Buffer) => Buffer][] = [
      ['an HTTP request', () => Buffer.from('GET / HTTP/1.0\r\n\r\n')],
      ['a length prefix below the smallest request', () => Buffer.concat([u32(5), crypto.randomBytes(40)])],
      ['a length prefix of 0xFFFFFFF0', () => Buffer.concat([u32(0xfffffff0), crypto.randomBytes(64)])],
      ['an authenticated check with an empty value', (n) => {
        const req = body(5, '', Buffer.alloc(0));
        return Buffer.concat([u32(req.length), req, mac(SECRET, n, 0, 'Q', req)]);
      }],
      ['an authenticated wait for 0xFFFFFFFF keys', (n) => {
        const req = body(4, '', u32(0xffffffff), 1000);
        return Buffer.concat([u32(req.length), req, mac(SECRET, n, 0, 'Q', req)]);
      }],
      ['an authenticated unknown op', (n) => {
        const req = body(9, 'k', Buffer.alloc(0));
        return Buffer.concat([u32(req.length), req, mac(SECRET, n, 0, 'Q', req)]);
      }],
      ['an authenticated add of a non-number', (n) => {
        const req = body(3, 'k', Buffer.from('1e999'));
        return Buffer.concat([u32(req.length), req, mac(SECRET, n, 0, 'Q', req)]);
      }],
    ];
    for (const [what, make] of cases) {
      const c = await raw(server.port);
      c.socket.write(make(c.nonce));
      const ms = await c.closed;
      expect([what, ms < 2000]).toEqual([what, true]);
      await storeWorks(good, `after ${what}`);
    }
  });

  test('connections beyond the limit are closed at once; the job still connects when they go', async () => {
    const extra = await Promise.all(Array.from({ length: 30 }, () => raw(server.port)));
    const open = extra.filter((c) => c.nonce.length === 16 && !c.socket.destroyed).length;
    // 12 in all: the server's own client and `good` hold two.
    expect(open).toBeLessThanOrEqual(10);
    for (const c of extra) c.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const late = await dist.TCPStore.create({ host: '127.0.0.1', port: server.port, isServer: false, timeoutMs: 5000, secret: SECRET });
    await storeWorks(late, 'late');
    await late.close();
  });

  test('a forged reply (a process that took the port answers without the secret) is refused by the client', async () => {
    const impostor = net.createServer((s) => {
      s.write(crypto.randomBytes(16));
      // "ok", a forged address, and a MAC made without the secret.
      s.on('data', () => s.write(Buffer.concat([Buffer.from([0]), u32(6), Buffer.from('forged'), crypto.randomBytes(32)])));
    });
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
    const port = (impostor.address() as net.AddressInfo).port;
    const victim = await dist.TCPStore.create({ host: '127.0.0.1', port, isServer: false, timeoutMs: 5000, secret: SECRET });
    await expect(victim.get('rank/0', 500)).rejects.toThrow(/a reply failed authentication/);
    await victim.close();
    await new Promise((r) => impostor.close(r));
  });
});
