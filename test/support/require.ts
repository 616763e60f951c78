// Suites that need something this machine may lack (Gloo, a GPU, NCCL).
// Without it the suite is skipped, saying why; SYNCBN_REQUIRE=gloo,cuda,nccl
// (any subset) turns that skip into a failure.
const required = new Set((process.env.SYNCBN_REQUIRE ?? '').split(',').map((s) => s.trim()).filter(Boolean));

export function requireOrSkip(feature: string, available: boolean, why: string): typeof describe {
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
