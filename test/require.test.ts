// SYNCBN_REQUIRE names only features a suite can require; anything else is an
// error, so a typo cannot turn a required suite into a silent skip.
import { parseRequire, FEATURES } from './support/require';

describe('SYNCBN_REQUIRE', () => {
  test('accepts any subset of gloo, cuda, nccl, torch and netns', () => {
    expect(FEATURES).toEqual(['gloo', 'cuda', 'nccl', 'torch', 'netns']);
    expect([...parseRequire(undefined)]).toEqual([]);
    expect([...parseRequire('')]).toEqual([]);
    expect([...parseRequire('gloo')]).toEqual(['gloo']);
    expect([...parseRequire(' cuda, gloo ,nccl')]).toEqual(['cuda', 'gloo', 'nccl']);
  });

  test('refuses an unknown name, saying which and what it expected', () => {
    expect(() => parseRequire('CUDA')).toThrow("SYNCBN_REQUIRE=CUDA: unknown name 'CUDA'; expected a comma-separated subset of gloo, cuda, nccl, torch, netns (lower case)");
    expect(() => parseRequire('gloo,mpi,gpu')).toThrow("unknown names 'mpi', 'gpu'");
  });
});
