/**
 * The one config path: flexAttention and compile resolve configs through @flexattn/autotune,
 * never merging defaults twice; tuning on first call; fallbacks that say why.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { wgslConfigCandidates, wgslDefaultConfig } from "@flexattn/codegen-wgsl";
import {
  MemoryTuningCache, type Tensor, causal, compile, createBlockMask, findExecutor, flexAttention, lastFlexAttentionRun,
  randomTensor, referenceAttention, resetAutoBackend, resolveProblem, resolveSpec, setTuningCache, setWebgpuImporter, softcap,
  traceScoreMod,
} from "../src/index.js";

const MATRIX_LIMITS = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024, subgroupMinSize: 32, subgroupMatrix: true };
const problem = { batch: 1, qHeads: 2, kvHeads: 2, qLen: 256, kvLen: 256, qkHeadDim: 64, vHeadDim: 64, dtype: "f32" } as const;

function maxErr(got: Tensor, q: Tensor, k: Tensor, v: Tensor, o: { blockMask?: ReturnType<typeof createBlockMask>; score?: Parameters<typeof traceScoreMod>[0] }) {
  const [B, Hq, qLen, D] = q.shape;
  const p = resolveProblem({ batch: B, qHeads: Hq, kvHeads: k.shape[1], qLen, kvLen: k.shape[2], qkHeadDim: D, vHeadDim: v.shape[3], dtype: "f32" });
  const blockMask = o.blockMask ?? createBlockMask(() => true, { qLen, kvLen: k.shape[2] });
  const ref = referenceAttention({ problem: p, q, k, v, mask: o.blockMask?.maskGraph ?? null, score: o.score ? traceScoreMod(o.score) : null, blockMask }).out;
  let e = 0;
  for (let i = 0; i < ref.length; i++) e = Math.max(e, Math.abs((got.data as Float32Array)[i] - ref[i]));
  return e;
}

beforeEach(() => setTuningCache(new MemoryTuningCache("test")));
afterEach(() => {
  setWebgpuImporter(() => import("@flexattn/webgpu"));
  resetAutoBackend();
});

describe("config resolution", () => {
  it("takes a subgroupMatrix config as given: the backend's static default is not merged under it", () => {
    const config = wgslDefaultConfig(resolveProblem(problem), [128, 128], { limits: MATRIX_LIMITS });
    expect(config.options?.subgroupMatrix).toBe(true);
    const artifact = compile({ maskMod: causal() }, problem, { backend: "wgsl", config });
    expect(artifact.config).toEqual(config);
    expect(artifact.config.options).not.toHaveProperty("qGlobal");
  });

  it("resolves the subgroupMatrix kernel for a device that offers it, with no config at all", () => {
    const target = { signature: "test-gpu", limits: { ...MATRIX_LIMITS, vec4: true } };
    const { spec, source } = resolveSpec({ backend: "wgsl", mask: null, score: null, problem: resolveProblem(problem), sparseBlock: [128, 128], target });
    expect(source).toBe("heuristic");
    expect(spec.config).toEqual(wgslConfigCandidates(resolveProblem(problem), [128, 128], { limits: MATRIX_LIMITS })[0]);
    expect(spec.config.options?.subgroupMatrix).toBe(true);
  });

  it("completes partial user configs from a candidate that agrees, and names a bad option", () => {
    const target = { signature: "test-gpu", limits: { ...MATRIX_LIMITS, vec4: true } };
    const resolve = (config: object) => resolveSpec({ backend: "wgsl", mask: null, score: null, problem: resolveProblem(problem), sparseBlock: [128, 128], target, config });
    // Turning the matrix kernel off gives a whole plain config, not a matrix config with one flag flipped.
    const plain = resolve({ options: { subgroupMatrix: false } }).spec.config;
    expect(plain.options).toMatchObject({ subgroupMatrix: false, rowsPerThread: expect.any(Number) });
    expect(resolve({ options: { qGlobal: true } }).spec.config.options).toMatchObject({ qGlobal: true });
    expect(() => compile({}, problem, { backend: "wgsl", config: { options: { qGlobl: true } } })).toThrow(/unknown WGSL option "qGlobl"/);
    expect(() => compile({}, problem, { backend: "triton", config: { numWarp: 4 } as object })).toThrow(/config has unknown key numWarp; known: /);
  });
});

describe("tuning", () => {
  it("tunes the JS kernel on first call, then reuses the result without measuring again", async () => {
    const n = 128;
    const blockMask = createBlockMask(causal(), { qLen: n, kvLen: n, blockSize: 64 });
    const [q, k, v] = [1, 2, 3].map((seed) => randomTensor([1, 2, n, 32], { seed }));
    const progress: number[] = [];
    const out = await flexAttention(q, k, v, { blockMask, scoreMod: softcap(20), backend: "js", tune: { onProgress: (p) => progress.push(p.index) } });
    expect(progress.length).toBeGreaterThan(1);
    expect(lastFlexAttentionRun()).toMatchObject({ backend: "js", configSource: "tuned" });
    expect(maxErr(out, q, k, v, { blockMask, score: softcap(20) })).toBeLessThan(1e-5);
    progress.length = 0;
    await flexAttention(q, k, v, { blockMask, scoreMod: softcap(20), backend: "js", tune: { onProgress: (p) => progress.push(p.index) } });
    expect(progress).toEqual([]);
    expect(lastFlexAttentionRun()?.configSource).toBe("tuned");
    // Without tune the recorded result is still used; a user config still wins.
    await flexAttention(q, k, v, { blockMask, scoreMod: softcap(20), backend: "js" });
    expect(lastFlexAttentionRun()?.configSource).toBe("tuned");
    await flexAttention(q, k, v, { blockMask, scoreMod: softcap(20), backend: "js", config: { blockM: 16 } });
    expect(lastFlexAttentionRun()).toMatchObject({ configSource: "user", config: { blockM: 16 } });
  });

  it("tunes on WebGPU where an adapter exists (CI: llvmpipe)", async (ctx) => {
    if (!(await findExecutor("wgsl"))) {
      if (process.env.CI === "true" || process.env.FLEXATTN_REQUIRE_WEBGPU === "1") throw new Error("no WebGPU adapter in CI");
      ctx.skip();
    }
    const n = 64;
    const [q, k, v] = [4, 5, 6].map((seed) => randomTensor([1, 1, n, 16], { seed }));
    const blockMask = createBlockMask(causal(), { qLen: n, kvLen: n, blockSize: 32 });
    const seen: { ms?: number; error?: string }[] = [];
    const out = await flexAttention(q, k, v, { blockMask, backend: "wgsl", tune: { maxCandidates: 2, onProgress: (p) => seen.push(p) } });
    expect(seen).toHaveLength(2);
    expect(seen.some((p) => p.ms !== undefined && p.ms > 0)).toBe(true);
    expect(lastFlexAttentionRun()).toMatchObject({ backend: "wgsl", configSource: "tuned" });
    expect(maxErr(out, q, k, v, { blockMask })).toBeLessThan(1e-5);
  });
});

describe("fallbacks say why", () => {
  it("auto on a CPU rasterizer runs JS, reports the reason in lastFlexAttentionRun and prints it once", async () => {
    const limits = { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
    const unused = () => {
      throw new Error("not reached");
    };
    setWebgpuImporter(async () => ({
      defaultFlexDevice: async () => ({ description: "llvmpipe (LLVM 15) / opengles", limits }),
      wgslTarget: () => ({ signature: "llvmpipe", limits }), runWgsl: unused, prepareWgsl: unused, timeWgsl: unused,
    }));
    resetAutoBackend();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const q = randomTensor([1, 1, 32, 16], { seed: 9 });
    await flexAttention(q, q, q);
    await flexAttention(q, q, q);
    expect(lastFlexAttentionRun()).toMatchObject({ backend: "js", fellBack: expect.stringMatching(/CPU rasterizer \(WebGPU: llvmpipe/) });
    expect(warn.mock.calls.filter(([m]) => String(m).includes("CPU rasterizer"))).toHaveLength(1);
    warn.mockRestore();
  });
});
