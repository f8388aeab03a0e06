import { describe, expect, it } from "vitest";
import {
  FlexAttnError, type ScoreMod, type Tensor, buffer, causal, createBlockMask, flexAttention, flexAttentionBackward, randomTensor, referenceBackward,
  resolveProblem, softcap, tensor, toF32, traceScoreMod,
} from "../src/index.js";

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
    await expect(flexAttentionBackward(q, q, q, out, lse, out, { backend: "wgsl" })).rejects.toThrow(/js backend only/);
    await expect(flexAttentionBackward(q, q, q, out, out, out)).rejects.toThrow(FlexAttnError);
    await expect(flexAttentionBackward(q, q, q, out, lse, randomTensor([1, 1, 8, 16]))).rejects.toThrow(/dOut must have shape \[1, 1, 16, 16\]/);
    const empty = randomTensor([1, 1, 0, 16]);
    const g = await flexAttentionBackward(empty, q, q, empty, tensor(new Float32Array(0), [1, 1, 0]), empty);
    expect(g.dq.shape).toEqual([1, 1, 0, 16]);
    expect(Array.from(g.dk.data).every((x) => x === 0)).toBe(true);
  });
});
