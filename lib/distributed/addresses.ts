// Where a gloo rank listens: the interface GLOO_SOCKET_IFNAME names,
// SYNCBN_GLOO_HOSTNAME, else the local address that routes to the master;
// checked before Gloo sees them, so that a mistake is an error naming it.
import * as dgram from 'node:dgram';
import * as dns from 'node:dns';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';

/** 'localhost', 127.0.0.0/8 or ::1, as written (names are not resolved). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || (net.isIPv4(host) && host.startsWith('127.')) || host === '::1';
}

/** The network interfaces of this machine, down ones included. */
function interfaceNames(): string[] {
  try {
    return fs.readdirSync('/sys/class/net');
  } catch {
    return Object.keys(os.networkInterfaces());
  }
}

/**
 * GLOO_SOCKET_IFNAME's first address; an interface that is missing, down,
 * without a link or without an address is an error saying which.
 */
function interfaceAddress(iface: string, where: string): string {
  const what = `GLOO_SOCKET_IFNAME=${iface}`;
  // Only interfaces that are up, with a link and an address, are listed.
  const listed = os.networkInterfaces()[iface];
  if (listed && listed.length > 0) return listed[0].address;
  const names = interfaceNames();
  if (!names.includes(iface)) throw new Error(`${where}: ${what} is not a network interface of this machine (it has ${names.join(', ')})`);
  const read = (file: string) => {
    try {
      return fs.readFileSync(`/sys/class/net/${iface}/${file}`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const IFF_UP = 0x1;
  if ((parseInt(read('flags'), 16) & IFF_UP) === 0) {
    const up = Object.keys(os.networkInterfaces());
    throw new Error(`${where}: ${what} is down (bring it up: ip link set ${iface} up; or name an interface that is up: ${up.join(', ')})`);
  }
  if (read('carrier') === '0') throw new Error(`${where}: ${what} is up but has no link (no carrier: its cable or the other end is down)`);
  throw new Error(`${where}: ${what} has no IP address`);
}

/**
 * The local address that routes to `master`: the one its packets leave from,
 * as the kernel picks it (a UDP socket's connect sends nothing).
 */
async function routedAddress(master: string, where: string): Promise<string> {
  let ip: string;
  let family: number;
  try {
    ({ address: ip, family } = await dns.promises.lookup(master));
  } catch (e) {
    throw new Error(`${where}: cannot resolve the master's address '${master}': ${(e as Error).message}`);
  }
  const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(9, ip, () => resolve());
    });
    return socket.address().address;
  } catch (e) {
    throw new Error(`${where}: this machine has no route to the master's address ${master}${ip === master ? '' : ` (${ip})`}: ` +
      `${(e as Error).message}; set GLOO_SOCKET_IFNAME to the network interface that reaches it`);
  } finally {
    socket.close();
  }
}

/**
 * The address Gloo listens on: the interface GLOO_SOCKET_IFNAME names, or
 * SYNCBN_GLOO_HOSTNAME, else the local address that routes to the master
 * (loopback only for a loopback master). Checked here (the native side
 * checks again) so that a typo is an error naming the variable. `address`:
 * what other ranks are told this rank's host is.
 */
export async function glooAddress(master: string, where: string): Promise<{ hostname: string; iface: string; address: string }> {
  const iface = process.env.GLOO_SOCKET_IFNAME ?? '';
  if (iface) return { hostname: '', iface, address: interfaceAddress(iface, where) };
  const fromEnv = process.env.SYNCBN_GLOO_HOSTNAME;
  if (!fromEnv) {
    const hostname = isLoopback(master) ? '127.0.0.1' : await routedAddress(master, where);
    return { hostname, iface: '', address: hostname };
  }
  const what = `SYNCBN_GLOO_HOSTNAME=${fromEnv}`;
  if (fromEnv.length > 253 || !/^[A-Za-z0-9._:%-]+$/.test(fromEnv)) {
    throw new TypeError(`${where}: ${what} is not a host name or IP address`);
  }
  try {
    await dns.promises.lookup(fromEnv);
  } catch (e) {
    throw new Error(`${where}: cannot resolve ${what}: ${(e as Error).message}`);
  }
  return { hostname: fromEnv, iface: '', address: fromEnv };
}
