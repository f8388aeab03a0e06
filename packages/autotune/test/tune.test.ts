import { describe, expect, it } from "vitest";
import { type CodegenBackend, type KernelConfig, resolveProblem } from "@flexattn/template";
import { MemoryTuningCache, TUNE_TIE_MARGIN, resolveConfig, tune } from "../src/index.js";

const cfg = (blockM: number): KernelConfig => ({ blockM, blockN: 64, numWarps: 4, numStages: 2, prescaleQk: false });
const candidates = [cfg(16), cfg(32), cfg(64), cfg(128)];
const fake: CodegenBackend = {
  name: "wgsl",
  sourceExtension: ".x",
  configCandidates: () => candidates,
  generate: () => {
    throw new Error("not used");
  },
};
const problem = resolveProblem({ batch: 1, qHeads: 1, kvHeads: 1, qLen: 512, kvLen: 512, qkHeadDim: 64, vHeadDim: 64, dtype: "f32" });
const request = { backend: fake, problem, sparseBlock: [128, 128] as const, mods: { mask: null, score: null }, target: { signature: "fake" } };

describe("tune", () => {
  it("picks the fastest candidate of known timings, skips one that fails, and records the pick", async () => {
    const times: Record<number, number> = { 16: 5, 32: 2, 64: 3 };
    const cache = new MemoryTuningCache("test");
    const seen: number[] = [];
    const result = await tune({
      ...request, cache,
      measure: (c) => {
        if (c.blockM === 128) throw new Error("does not fit");
        return times[c.blockM];
      },
      onProgress: (p) => seen.push(p.index),
    });
    expect(result.best.blockM).toBe(32);
    expect(result.ms).toBe(2);
    expect(result.trials.find((t) => t.config.blockM === 128)?.error).toMatch(/does not fit/);
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(resolveConfig({ ...request, cache })).toMatchObject({ source: "tuned", config: cfg(32) });
  });

  it("keeps the earlier candidate unless a later one is faster by more than TUNE_TIE_MARGIN", async () => {
    const within = { 16: 1, 32: 1 - TUNE_TIE_MARGIN / 2, 64: 1.2, 128: 1.3 } as Record<number, number>;
    expect((await tune({ ...request, measure: (c) => within[c.blockM] })).best.blockM).toBe(16);
    const beyond: Record<number, number> = { ...within, 64: 1 - 2 * TUNE_TIE_MARGIN };
    expect((await tune({ ...request, measure: (c) => beyond[c.blockM] })).best.blockM).toBe(64);
  });

  it("stops starting candidates past its budget, and fails clearly when none runs", async () => {
    let calls = 0;
    const slow = await tune({
      ...request, budgetMs: 0,
      measure: () => {
        calls++;
        return 1;
      },
    });
    expect(calls).toBe(1);
    expect(slow.trials).toHaveLength(1);
    await expect(tune({ ...request, measure: () => Number.NaN })).rejects.toThrow(/no candidate that runs/);
  });
});
