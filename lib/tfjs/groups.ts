// The process group a tfjs layer or helper syncs over: a syncbn
// ProcessGroup given by the user, else the default (world) group, else none
// (a world of one), checked once here.
import { defaultGroup } from '../distributed/init';
import { ProcessGroup } from '../distributed/process_group';
import { ValueError } from './errors';

/** Throws unless `group` is null/undefined or a syncbn ProcessGroup. */
export function checkGroup(group: unknown, where: string, name = 'group'): ProcessGroup | null {
  if (group != null && !(group instanceof ProcessGroup)) {
    throw new ValueError(`${where}: ${name} must be a syncbn ProcessGroup (from distributed.initProcessGroup or newGroup), got ${Object.prototype.toString.call(group)}`);
  }
  return (group as ProcessGroup | null | undefined) ?? null;
}

/** `group`, else the default group, else null; this rank must be a member. */
export function groupOf(group: ProcessGroup | null | undefined, where: string): ProcessGroup | null {
  const g = checkGroup(group, where) ?? defaultGroup();
  if (g !== null && !g.isMember()) {
    throw new ValueError(`${where}: rank ${g.globalRank} is not a member of ${g.label} (ranks [${g.ranks.join(', ')}])`);
  }
  return g;
}
