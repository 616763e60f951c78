// Suites that need something this machine may lack (Gloo, a GPU, NCCL,
// PyTorch for /usr/bin/python3, network namespaces: root and iproute2).
// Without it the suite is skipped, saying why; SYNCBN_REQUIRE=gloo,cuda,nccl,torch,netns
// (any subset) turns that skip into a failure. Any other name in
// SYNCBN_REQUIRE (a typo, 'CUDA') is an error, not a requirement silently dropped.

/** The features a suite can require. */
export const FEATURES = ['gloo', 'cuda', 'nccl', 'torch', 'netns'] as const;
export type Feature = (typeof FEATURES)[number];

/** The names in a SYNCBN_REQUIRE value; throws on an unknown one. */
export function parseRequire(value: string | undefined): Set<Feature> {
  const names = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(FEATURES as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new Error(`SYNCBN_REQUIRE=${value}: unknown ${unknown.length === 1 ? 'name' : 'names'} ${unknown.map((n) => `'${n}'`).join(', ')}; ` +
      `expected a comma-separated subset of ${FEATURES.join(', ')} (lower case)`);
  }
  return new Set(names as Feature[]);
}

const required = parseRequire(process.env.SYNCBN_REQUIRE);

export function requireOrSkip(feature: Feature, available: boolean, why: string): typeof describe {
  if (available) return describe;
  if (required.has(feature)) {
    return ((name: string) =>
      describe(name, () => {
        test(`requires ${feature}`, () => {
          throw new Error(`SYNCBN_REQUIRE includes '${feature}', but ${why}`);
        });
      })) as unknown as typeof describe;
  }
  process.stdout.write(`skipping suites that need ${feature}: ${why}\n`);
  return describe.skip;
}
