// The rendezvous says what went wrong, on one machine (the two-host suite
// shows the same across namespaces): a rank with another secret is named by
// the master's ranks; the secret is blamed only when the store refused a
// request, never when rank 0 closed the store; SYNCBN_TIMEOUT_MS is the
// default timeout.
import { distributed as dist } from '../../lib';
import { native } from '../../lib/native';
import { REFUSED_KEY } from '../../lib/distributed/store';
import { requireOrSkip } from '../support/require';
import { freePort } from './support';

const SECRET = 'rendezvous-faults-secret';
const describeGloo = requireOrSkip('gloo', native.features.gloo, `${native.features.file} was built without Gloo`);

describe('the store tells a refused secret from a closed store', () => {
  test('a client with another secret is reset at its first request, told why, and its address is recorded for the job', async () => {
    const server = await dist.TCPStore.create({ host: '127.0.0.1', port: 0, isServer: true, timeoutMs: 5000, secret: SECRET });
    const stranger = await dist.TCPStore.create({ host: '127.0.0.1', port: server.port, isServer: false, timeoutMs: 5000, secret: 'another' });
    await expect(stranger.set('syncbn/join/1', 'x')).rejects.toThrow(
      `lost the connection to the rendezvous store at 127.0.0.1:${server.port} (the store refused this rank's first request (reset the connection), ` +
      "as it does when a request fails authentication: this rank's SYNCBN_SECRET (or secret option) differs from rank 0's)");
    expect((await server.get(REFUSED_KEY, 1000)).toString()).toBe('127.0.0.1');
    await stranger.close();
    await server.close();
  });

  test('a store that rank 0 closed is not blamed on the secret, before or after the first reply', async () => {
    const server = await dist.TCPStore.create({ host: '127.0.0.1', port: 0, isServer: true, timeoutMs: 5000, secret: SECRET });
    const member = await dist.TCPStore.create({ host: '127.0.0.1', port: server.port, isServer: false, timeoutMs: 5000, secret: SECRET });
    const fresh = await dist.TCPStore.create({ host: '127.0.0.1', port: server.port, isServer: false, timeoutMs: 5000, secret: SECRET });
    await member.set('k', 'v');
    const outcome = (p: Promise<unknown>) => p.then(() => new Error('resolved'), (err: Error) => err);
    const waiting = outcome(member.get('never', 5000));
    await server.close();
    for (const e of [await waiting, await outcome(fresh.get('k', 1000))]) {
      expect(e.message).toBe(`lost the connection to the rendezvous store at 127.0.0.1:${server.port} (the store closed it: rank 0 exited or closed the store)`);
    }
    await member.close();
    await fresh.close();
  });
});

describeGloo('the rendezvous names a refused rank and honours SYNCBN_TIMEOUT_MS', () => {
  jest.setTimeout(30000);

  test('a rank with another secret: rank 0 fails long before its timeout, naming its address and SYNCBN_SECRET', async () => {
    const port = await freePort();
    const start = Date.now();
    const init = dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 2, initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 8000, secret: SECRET });
    const stranger = await dist.TCPStore.create({ host: '127.0.0.1', port, isServer: false, timeoutMs: 5000, secret: 'another' });
    await expect(stranger.set('syncbn/join/1', '127.0.0.1')).rejects.toThrow(/SYNCBN_SECRET \(or secret option\) differs from rank 0's/);
    await expect(init).rejects.toThrow(
      "initProcessGroup: a rank from 127.0.0.1 was refused: its SYNCBN_SECRET differs from this rank's (the rendezvous store authenticates every request with it; ranks [1] of 2 have not reached 'join')");
    expect(Date.now() - start).toBeLessThan(5000);
    await stranger.close();
  });

  test('the native client: another secret is named, a closed store is not blamed on it', async () => {
    const server = await dist.TCPStore.create({ host: '127.0.0.1', port: 0, isServer: true, timeoutMs: 5000, secret: SECRET });
    await expect(native.glooConnect('127.0.0.1', server.port, '', 'p', '127.0.0.1', '', 0, 2, 3000, 'another'))
      .rejects.toThrow(/it refused this rank's first request \(reset the connection\), which it does when the request fails authentication: this rank's SYNCBN_SECRET differs from rank 0's/);
    const waiting = native.glooConnect('127.0.0.1', server.port, '', 'q', '127.0.0.1', '', 0, 2, 5000, SECRET).then(() => new Error('resolved'), (err: Error) => err);
    await new Promise((r) => setTimeout(r, 300));
    await server.close();
    const e = await waiting;
    expect(e.message).toMatch(/^gloo rendezvous of rank 0 of 2: .*lost the connection to the rendezvous store at 127\.0\.0\.1:\d+: the store closed it \(rank 0 exited or closed the store\)/);
    expect(e.message).not.toMatch(/SECRET/);
  });

  test('SYNCBN_TIMEOUT_MS is the default timeoutMs, checked', async () => {
    const saved = process.env.SYNCBN_TIMEOUT_MS;
    try {
      process.env.SYNCBN_TIMEOUT_MS = 'soon';
      await expect(dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 2, initMethod: 'tcp://127.0.0.1:1' }))
        .rejects.toThrow('initProcessGroup: environment variable SYNCBN_TIMEOUT_MS=soon is not a positive integer (milliseconds)');
      process.env.SYNCBN_TIMEOUT_MS = '700';
      await expect(dist.initProcessGroup({ backend: 'gloo', rank: 0, worldSize: 2, initMethod: `tcp://127.0.0.1:${await freePort()}`, secret: SECRET }))
        .rejects.toThrow("initProcessGroup: rendezvous timed out after 700 ms: ranks [1] of 2 never reached 'join'");
    } finally {
      if (saved === undefined) delete process.env.SYNCBN_TIMEOUT_MS;
      else process.env.SYNCBN_TIMEOUT_MS = saved;
    }
  });
});
