/**
 * Kernel caches compare full structural keys, never a hash alone: with every hash made to
 * collide, different mods still get their own kernels (the caches used to key by hash).
 */
import { describe, expect, it, vi } from "vitest";

vi.mock("../../ir/src/hash.js", () => ({ stableHash: () => "0000000000000000" }));

import {
  type Tensor, DEFAULT_CACHE_CAPACITY, causal, clearCompileCache, compile, compileCacheStats, createBlockMask, flexAttention, randomTensor,
  referenceAttention, resolveProblem, slidingWindow, stableHash, traceMaskMod,
} from "../src/index.js";
import { isWebGpuAvailable } from "@flexattn/webgpu";

const REQUIRE_WEBGPU = process.env.FLEXATTN_REQUIRE_WEBGPU === "1" || process.env.CI === "true";
const problem = { batch: 1, qHeads: 1, kvHeads: 1, qLen: 40, kvLen: 40, qkHeadDim: 16, vHeadDim: 16, dtype: "f32" as const };

function maxError(out: Tensor, ref: Float64Array): number {
  let e = 0;
  for (let i = 0; i < ref.length; i++) e = Math.max(e, Math.abs((out.data as Float32Array)[i] - ref[i]));
  return e;
}

async function checkTwoMasks(backend: "js" | "wgsl"): Promise<void> {
  const q = randomTensor([1, 1, 40, 16], { seed: 1 });
  const k = randomTensor([1, 1, 40, 16], { seed: 2 });
  const v = randomTensor([1, 1, 40, 16], { seed: 3 });
  for (const mask of [causal(), slidingWindow(3)]) {
    const blockMask = createBlockMask(mask, { qLen: 40, kvLen: 40, blockSize: 16 });
    const out = await flexAttention(q, k, v, { blockMask, backend });
    const ref = referenceAttention({ problem: resolveProblem(problem), q, k, v, mask: blockMask.maskGraph ?? null, score: null, blockMask });
    expect(maxError(out, ref.out)).toBeLessThan(1e-4);
  }
}

describe("caches key by structure, not by hash", () => {
  it("the hash really collides here", () => {
    expect(stableHash("a")).toBe(stableHash("b"));
    expect(traceMaskMod(causal()).key).toBe(traceMaskMod(slidingWindow(3)).key);
  });

  it("compile() gives different mods different kernels", () => {
    clearCompileCache();
    const a = compile({ maskMod: causal() }, problem, { backend: "js", blockSize: 16 });
    const b = compile({ maskMod: slidingWindow(3) }, problem, { backend: "js", blockSize: 16 });
    expect(b.source).not.toBe(a.source);
    expect(compileCacheStats().generated).toBe(2);
  });

  it("flexAttention on JS runs each mask's own kernel", async () => {
    await checkTwoMasks("js");
  });

  it("flexAttention on WGSL runs each mask's own pipeline", async (ctx) => {
    if (!(await isWebGpuAvailable())) {
      if (REQUIRE_WEBGPU) throw new Error("no WebGPU adapter, and CI requires one");
      return ctx.skip();
    }
    await checkTwoMasks("wgsl");
  }, 120_000);

  it("the compile cache is bounded", () => {
    clearCompileCache();
    for (let w = 0; w < DEFAULT_CACHE_CAPACITY + 8; w++) compile({ maskMod: slidingWindow(w) }, problem, { backend: "js", blockSize: 16 });
    expect(compileCacheStats().generated).toBe(DEFAULT_CACHE_CAPACITY + 8);
    expect(compileCacheStats().size).toBe(DEFAULT_CACHE_CAPACITY);
  });
});
