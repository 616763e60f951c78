// The places of a program that sync at fixed points (SyncBatchNorm layers,
// tfjs layers, distributed optimizers), by id, so that a divergence error can
// name where every rank is. A site's id rides in each of its syncs'
// fingerprints ([id * 2 + pass, size, sequence]); ids are handed out in
// construction order, so ranks that build the same model agree on them. The
// registry holds sites weakly and drops a collected site's entry, so models
// built and dropped in a long run leave nothing behind.
import type { Fingerprint } from './process_group';

/** Something that syncs at fixed points: it says what each of its syncs is. */
export interface SyncSite {
  /** E.g. `'features.bn1' forward (64 channels, sync #3)`; pass is 0 (forward) or 1 (backward). */
  describeSync(pass: number, size: number, seq: number): string;
}

let nextId = 0;
const sites = new Map<number, WeakRef<SyncSite>>();
const forget = new FinalizationRegistry<number>((id) => sites.delete(id));

/** Registers `site` and returns its id (the next in construction order). */
export function registerSyncSite(site: SyncSite): number {
  const id = nextId++;
  sites.set(id, new WeakRef(site));
  forget.register(site, id);
  return id;
}

/** @internal How many sites the registry holds (for its test). */
export function registeredSites(): number {
  return sites.size;
}

/** What a sync's fingerprint means, named by its site when this process holds it. */
export function describeFingerprint(fp: Fingerprint): string {
  const [tag, size, seq] = fp;
  const id = Math.floor(tag / 2);
  const site = sites.get(id)?.deref();
  if (site) return site.describeSync(tag % 2, size, seq);
  return `sync site #${id} ${tag % 2 === 0 ? 'forward' : 'backward'} (size ${size}, sync #${seq})`;
}
