/** Median wall time in ms of `runs` calls of `f` after one warm-up call (the upper middle for an even count). */
export async function medianWallMs(runs: number, f: () => unknown): Promise<number> {
  await f();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[runs >> 1];
}
