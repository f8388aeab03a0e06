import { afterEach, describe, expect, it } from "vitest";
import { isWebGpuAvailable } from "@flexattn/webgpu";
import type { BackwardInvocation, KernelConfig } from "@flexattn/template";
import {
  FlexAttnError, type ScoreMod, type Tensor, buffer, causal, createBlockMask, flexAttention, flexAttentionBackward, randomTensor, referenceBackward,
  resetAutoBackend, resolveProblem, setWebgpuImporter, softcap, tensor, toF32, traceScoreMod,
} from "../src/index.js";

const REQUIRE_WEBGPU = process.env.FLEXATTN_REQUIRE_WEBGPU === "1" || process.env.CI === "true";

/** Max |got − ref| / max |ref|. */
function relErr(got: Tensor, ref: Float64Array): number {
  let m = 1e-12;
  for (const x of ref) m = Math.max(m, Math.abs(x));
  let e = 0;
  ref.forEach((r, i) => { e = Math.max(e, Math.abs((got.data as Float32Array)[i] - r) / m); });
  return e;
}

describe("flexAttentionBackward", () => {
  it("GQA, a causal BlockMask and a learnable relative-position bias: gradients match the float64 reference backward", async () => {
    const n = 72;
    const table = buffer(Float32Array.from({ length: 2 * n - 1 }, (_, i) => Math.sin(i) * 0.5), { name: "relBias" });
    const scoreMod = traceScoreMod((s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(n - 1))));
    const blockMask = createBlockMask(causal(), { qLen: n, kvLen: n, blockSize: 32 });
    const q = randomTensor([2, 4, n, 32], { seed: 1 });
    const k = randomTensor([2, 2, n, 32], { seed: 2 });
    const v = randomTensor([2, 2, n, 32], { seed: 3 });
    const dOut = randomTensor([2, 4, n, 32], { seed: 4 });
    const options = { scoreMod, blockMask, enableGqa: true, backend: "js" } as const;
    const { out, lse } = await flexAttention(q, k, v, { ...options, returnLse: true });
    const grads = await flexAttentionBackward(q, k, v, out, lse, dOut, options);
    expect(grads.dk.shape).toEqual([2, 2, n, 32]);
    const problem = resolveProblem({ batch: 2, qHeads: 4, kvHeads: 2, qLen: n, kvLen: n, qkHeadDim: 32, vHeadDim: 32, dtype: "f32" });
    const ref = referenceBackward({ problem, q, k, v, dOut, mask: blockMask.maskGraph!, score: scoreMod, blockMask });
    expect(relErr(grads.dq, ref.dq)).toBeLessThan(1e-5);
    expect(relErr(grads.dk, ref.dk)).toBeLessThan(1e-5);
    expect(relErr(grads.dv, ref.dv)).toBeLessThan(1e-5);
    expect(grads.dBuffers).toHaveLength(1);
    expect(grads.dBuffers[0].data).toBe(table.data);
    expect(relErr({ data: grads.dBuffers[0].grad, shape: [2 * n - 1], dtype: "f32" }, ref.dBuffers[0].grad)).toBeLessThan(1e-5);
    // Causal: keys after the query never see the bias entries q − kv < 0.
    expect(Array.from(grads.dBuffers[0].grad.subarray(0, n - 1)).every((x) => x === 0)).toBe(true);
  });

  it("a query-row slice of a BlockMask (offsets), an ALiBi-style captured slope table", async () => {
    const slopes = buffer(Float32Array.from([0.5, 0.25]), { name: "slopes" });
    const scoreMod: ScoreMod = (s, _b, h, q, kv) => s.add(slopes.at(h).mul(toF32(kv.sub(q))));
    const blockMask = createBlockMask(causal(), { qLen: 96, kvLen: 96, blockSize: 32 }).slice({ qBlocks: [1, 3] });
    const q = randomTensor([1, 2, 64, 16], { seed: 11 });
    const k = randomTensor([1, 2, 96, 16], { seed: 12 });
    const v = randomTensor([1, 2, 96, 16], { seed: 13 });
    const dOut = randomTensor([1, 2, 64, 16], { seed: 14 });
    const { out, lse } = await flexAttention(q, k, v, { scoreMod, blockMask, returnLse: true });
    const g = await flexAttentionBackward(q, k, v, out, lse, dOut, { scoreMod, blockMask });
    const problem = resolveProblem({ batch: 1, qHeads: 2, kvHeads: 2, qLen: 64, kvLen: 96, qkHeadDim: 16, vHeadDim: 16, dtype: "f32", qOffset: 32 });
    const ref = referenceBackward({ problem, q, k, v, dOut, mask: blockMask.maskGraph!, score: traceScoreMod(scoreMod), blockMask });
    expect(relErr(g.dq, ref.dq)).toBeLessThan(1e-5);
    expect(relErr(g.dk, ref.dk)).toBeLessThan(1e-5);
    expect(relErr(g.dv, ref.dv)).toBeLessThan(1e-5);
    expect(relErr({ data: g.dBuffers[0].grad, shape: [2], dtype: "f32" }, ref.dBuffers[0].grad)).toBeLessThan(1e-5);
    // The slice starts at query 32: the mods and the reference see positions 32…95, so the
    // last key (95) is seen by the last query only, and the slope gradient is not zero.
    expect(Array.from(g.dk.data.subarray(95 * 16, 96 * 16)).some((x) => x !== 0)).toBe(true);
    expect(g.dBuffers[0].grad.every((x) => x !== 0)).toBe(true);
  });

  it("one gradient step on the bias table lowers the loss", async () => {
    const n = 32;
    const table = buffer(new Float32Array(2 * n - 1), { name: "bias" });
    const scoreMod: ScoreMod = (s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(n - 1)));
    const q = randomTensor([1, 2, n, 16], { seed: 5 });
    const k = randomTensor([1, 2, n, 16], { seed: 6 });
    const v = randomTensor([1, 2, n, 16], { seed: 7 });
    const target = randomTensor([1, 2, n, 16], { seed: 8 });
    // L = ½ Σ (out − target)², so dOut = out − target.
    const lossAndGrad = async () => {
      const { out, lse } = await flexAttention(q, k, v, { scoreMod, returnLse: true, backend: "js" });
      const d = Float32Array.from(out.data as Float32Array, (x, i) => x - target.data[i]);
      const loss = d.reduce((a, x) => a + 0.5 * x * x, 0);
      const g = await flexAttentionBackward(q, k, v, out, lse, tensor(d, out.shape), { scoreMod });
      return { loss, grad: g.dBuffers[0].grad };
    };
    const before = await lossAndGrad();
    for (let i = 0; i < table.data.length; i++) (table.data as Float32Array)[i] -= 0.5 * before.grad[i];
    const after = await lossAndGrad();
    expect(after.loss).toBeLessThan(before.loss);
  });

  it("refuses other backends, a missing LSE and mismatched shapes with clear errors", async () => {
    const q = randomTensor([1, 1, 16, 16], { seed: 1 });
    const { out, lse } = await flexAttention(q, q, q, { returnLse: true, scoreMod: softcap(10) });
    await expect(flexAttentionBackward(q, q, q, out, lse, out, { backend: "cuda" })).rejects.toThrow(/runs on the js and wgsl backends \(got backend "cuda"\)/);
    await expect(flexAttentionBackward(q, q, q, out, out, out)).rejects.toThrow(FlexAttnError);
    await expect(flexAttentionBackward(q, q, q, out, lse, randomTensor([1, 1, 8, 16]))).rejects.toThrow(/dOut must have shape \[1, 1, 16, 16\]/);
    const empty = randomTensor([1, 1, 0, 16]);
    const g = await flexAttentionBackward(empty, q, q, empty, tensor(new Float32Array(0), [1, 1, 0]), empty);
    expect(g.dq.shape).toEqual([1, 1, 0, 16]);
    expect(Array.from(g.dk.data).every((x) => x === 0)).toBe(true);
  });
});

/** A causal GQA problem with a learnable relative-position bias, its forward (JS) and dOut. */
async function biasProblem() {
  const n = 40;
  const table = buffer(Float32Array.from({ length: 2 * n - 1 }, (_, i) => Math.cos(i) * 0.5), { name: "relBias" });
  const scoreMod = traceScoreMod((s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(n - 1))));
  const blockMask = createBlockMask(causal(), { qLen: n, kvLen: n, blockSize: 16 });
  const q = randomTensor([1, 4, n, 16], { seed: 21 });
  const k = randomTensor([1, 2, n, 16], { seed: 22 });
  const v = randomTensor([1, 2, n, 16], { seed: 23 });
  const dOut = randomTensor([1, 4, n, 16], { seed: 24 });
  const options = { scoreMod, blockMask, enableGqa: true } as const;
  const { out, lse } = await flexAttention(q, k, v, { ...options, returnLse: true, backend: "js" });
  const problem = resolveProblem({ batch: 1, qHeads: 4, kvHeads: 2, qLen: n, kvLen: n, qkHeadDim: 16, vHeadDim: 16, dtype: "f32" });
  const ref = referenceBackward({ problem, q, k, v, dOut, mask: blockMask.maskGraph!, score: scoreMod, blockMask });
  return { q, k, v, out, lse, dOut, options, ref };
}

describe("flexAttentionBackward on WebGPU", () => {
  afterEach(() => {
    setWebgpuImporter(() => import("@flexattn/webgpu"));
    resetAutoBackend();
  });

  it("backend \"wgsl\": gradients of GQA with a causal mask and a bias table match the float64 reference backward", { timeout: 600_000 }, async (ctx) => {
    if (!(await isWebGpuAvailable())) {
      if (REQUIRE_WEBGPU) throw new Error("no WebGPU adapter, and CI requires one");
      return ctx.skip();
    }
    const { q, k, v, out, lse, dOut, options, ref } = await biasProblem();
    const g = await flexAttentionBackward(q, k, v, out, lse, dOut, { ...options, backend: "wgsl", backwardConfig: { blockM: 8 } });
    expect(g.dk.shape).toEqual([1, 2, 40, 16]);
    expect(relErr(g.dq, ref.dq)).toBeLessThan(1e-5);
    expect(relErr(g.dk, ref.dk)).toBeLessThan(1e-5);
    expect(relErr(g.dv, ref.dv)).toBeLessThan(1e-5);
    expect(relErr({ data: g.dBuffers[0].grad, shape: [79], dtype: "f32" }, ref.dBuffers[0].grad)).toBeLessThan(1e-5);
  });

  /** @flexattn/webgpu's executor parts over a fake hardware device; the backward is `runWgslBackward`. */
  const fakeWebgpu = (runWgslBackward: (inv: BackwardInvocation, o: { config?: Partial<KernelConfig> }) => Promise<void>) => async () => {
    const limits = { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
    const unused = () => { throw new Error("not reached in this test"); };
    return {
      defaultFlexDevice: async () => ({ description: "NVIDIA H100 80GB HBM3 / vulkan", limits }),
      wgslTarget: () => ({ signature: "fake", limits }),
      prepareWgsl: unused, timeWgsl: unused, runWgsl: unused, runWgslBackward,
    };
  };

  it("\"auto\" runs the WGSL backward where the forward would pick WGSL, passing backwardConfig", async () => {
    const { q, k, v, out, lse, dOut, options, ref } = await biasProblem();
    const seen: (Partial<KernelConfig> | undefined)[] = [];
    setWebgpuImporter(fakeWebgpu(async (inv, o) => {
      seen.push(o.config);
      // Stand in for the device: the reference's gradients, rounded to f32.
      (inv.dq as Float32Array).set(ref.dq);
      (inv.dk as Float32Array).set(ref.dk);
      (inv.dv as Float32Array).set(ref.dv);
      inv.dBuffers[0].set(ref.dBuffers[0].grad);
    }));
    resetAutoBackend();
    const g = await flexAttentionBackward(q, k, v, out, lse, dOut, { ...options, backwardConfig: { blockN: 8 } });
    expect(seen).toEqual([{ blockN: 8 }]);
    expect(relErr(g.dq, ref.dq)).toBeLessThan(1e-6);
  });

  it("\"auto\" falls back to the JS backward when the WGSL one fails; an explicit \"wgsl\" does not hide the error", async () => {
    const { q, k, v, out, lse, dOut, options, ref } = await biasProblem();
    setWebgpuImporter(fakeWebgpu(async () => { throw new Error("device lost"); }));
    resetAutoBackend();
    const g = await flexAttentionBackward(q, k, v, out, lse, dOut, options);
    expect(relErr(g.dk, ref.dk)).toBeLessThan(1e-5);
    expect(relErr({ data: g.dBuffers[0].grad, shape: [79], dtype: "f32" }, ref.dBuffers[0].grad)).toBeLessThan(1e-5);
    await expect(flexAttentionBackward(q, k, v, out, lse, dOut, { ...options, backend: "wgsl" })).rejects.toThrow(/device lost/);
  });
});
