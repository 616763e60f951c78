// Types of netns.js (emulated hosts in network namespaces), for TypeScript tests.
import { ChildProcess, SpawnOptions } from 'node:child_process';

export interface Host {
  index: number;
  /** Its network namespace. */
  ns: string;
  /** Its address on the shared network. */
  address: string;
  /** Its interface on that network: 'eth0'. */
  iface: string;
  /** Its port on the switch (in the switch's namespace). */
  port: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface Hosts {
  readonly hosts: Host[];
  readonly subnet: string;
  ip(host: Host, args: string[]): string;
  spawn(host: Host, command: string, args?: string[], options?: SpawnOptions): ChildProcess;
  run(host: Host, command: string, args?: string[],
    options?: { env?: NodeJS.ProcessEnv; timeoutMs?: number; onLine?: (line: string, stream: 'stdout' | 'stderr') => void }): Promise<RunResult>;
  cut(host: Host): void;
  restore(host: Host): void;
  shape(host: Host, limits: { rate: string; burst?: string; latency?: string }): void;
  destroy(): void;
}

export function netnsSupport(): { ok: boolean; why: string };
export function createHosts(opts: { count: number; subnet?: string }): Hosts;
