// Which backend runs an op: the device of its tensors decides, here and
// nowhere else.
import type { Device, Tensor } from '../tensor';
import type { Backend } from './backend';
import { cpu } from './cpu';
import { cuda } from './cuda';

export type * from './backend';

/** The CUDA backend when any of `devices` is a CUDA device, else the CPU's. */
export function backendWhere(...devices: (Device | undefined)[]): Backend {
  return devices.some((d) => d !== undefined && d !== 'cpu') ? cuda : cpu;
}

/** The backend of a tensor's device. */
export function backendOf(t: Tensor): Backend {
  return t.isCuda ? cuda : cpu;
}
