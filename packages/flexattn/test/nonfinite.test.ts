/**
 * The non-finite-value rules (NUMERICS.zeroWeights / infiniteScores): in the scalar kernels
 * a masked key (weight 0) contributes nothing whatever V holds there; a +inf score makes its row
 * NaN. JS and WGSL are executed against the float64 reference; the Triton and CUDA sources are
 * inspected (CI cannot run them; the fuzz test compiles them). Matrix-unit P·V (Triton) keeps
 * PyTorch's flex_attention semantics instead (NUMERICS.zeroWeights).
 */
import { describe, expect, it } from "vitest";
import {
  type ScoreMod, type Tensor, type Value, buffer, causal, compile, createBlockMask, flexAttention, randomTensor, referenceAttention, resolveProblem,
  traceScoreMod, where,
} from "../src/index.js";
import { isWebGpuAvailable } from "@flexattn/webgpu";
import { compareWithReference } from "./fuzz/check.js";

const REQUIRE_WEBGPU = process.env.FLEXATTN_REQUIRE_WEBGPU === "1" || process.env.CI === "true";
const n = 40;
const D = 16;

/** V with NaN, +inf and -inf rows at keys 9, 10, 11 (masked for queries before them by causal). */
function poisonedV(): Tensor {
  const v = randomTensor([1, 2, n, D], { seed: 3 });
  const d = v.data as Float32Array;
  for (let h = 0; h < 2; h++)
    for (let j = 0; j < D; j++) {
      d[(h * n + 9) * D + j] = Number.NaN;
      d[(h * n + 10) * D + j] = Number.POSITIVE_INFINITY;
      d[(h * n + 11) * D + j] = Number.NEGATIVE_INFINITY;
    }
  return v;
}

const cut = buffer(Int32Array.from([9, 30]), { name: "cut" });
const cases: [string, ScoreMod | undefined][] = [
  ["causal mask", undefined],
  // -inf from a score mod (also in full blocks): keys 9..11 are dropped for head 0's rows below 30.
  ["score mod -inf", (s: Value, _b: Value, h: Value, q: Value, kv: Value) => where(kv.ge(cut.at(0)).and(kv.le(11)).and(q.lt(cut.at(1))).and(h.eq(0)), -Infinity, s)],
  // Scores past the f32 range: +inf for query 3 (a NaN row), -inf elsewhere in query 4's row.
  ["scores past f32 range", (s: Value, _b: Value, _h: Value, q: Value, _kv: Value) => where(q.eq(3), s.add(100).mul(1e30).mul(1e30), where(q.eq(4), s.sub(100).mul(1e30).mul(1e30), s))],
];

async function check(backend: "js" | "wgsl", name: string, scoreMod: ScoreMod | undefined): Promise<void> {
  const q = randomTensor([1, 2, n, D], { seed: 1 });
  const k = randomTensor([1, 2, n, D], { seed: 2 });
  const v = poisonedV();
  const blockMask = createBlockMask(causal(), { qLen: n, kvLen: n, blockSize: 16 });
  const res = await flexAttention(q, k, v, { blockMask, scoreMod, backend, returnLse: true });
  const problem = resolveProblem({ batch: 1, qHeads: 2, kvHeads: 2, qLen: n, kvLen: n, qkHeadDim: D, vHeadDim: D, dtype: "f32", returnLse: true });
  const ref = referenceAttention({ problem, q, k, v, mask: blockMask.maskGraph ?? null, score: scoreMod ? traceScoreMod(scoreMod) : null, blockMask });
  const finiteRows = Array.from({ length: n }, (_, i) => ref.out.subarray(i * D, (i + 1) * D).every(Number.isFinite)).filter(Boolean).length;
  expect(finiteRows, "the case has clean rows to keep clean").toBeGreaterThan(5);
  const bad = compareWithReference({ out: res.out.data as Float32Array, lse: res.lse.data as Float32Array }, ref, { B: 1, H: 2, L: n, Dv: D }, 1e-4);
  expect(bad, `${backend}, ${name}`).toBeNull();
  if (name === "scores past f32 range") {
    expect(Number.isNaN(res.lse.data[3]) && Number.isNaN((res.out.data as Float32Array)[3 * D])).toBe(true);
  }
}

describe.each(["js", "wgsl"] as const)("non-finite values on %s", (backend) => {
  it.for(cases)("%s: masked NaN/inf in V never reaches a row; +inf scores give NaN rows, as the reference", { timeout: 120_000 }, async ([name, scoreMod], ctx) => {
    if (backend === "wgsl" && !(await isWebGpuAvailable())) {
      if (REQUIRE_WEBGPU) throw new Error("no WebGPU adapter, and CI requires one");
      return ctx.skip();
    }
    await check(backend, name, scoreMod);
  });
});

describe("generated Triton and CUDA: the P·V update each kernel uses", () => {
  const problem = { batch: 1, qHeads: 1, kvHeads: 1, qLen: 256, kvLen: 256, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" as const, layout: "bhsd" as const };
  it("Triton: P·V stays one tensor-core product per tile (matrix-unit semantics, as PyTorch's flex_attention)", () => {
    for (const scoreMod of [undefined, (s: Value, _b: Value, _h: Value, _q: Value, _kv: Value) => s.mul(2)] as (ScoreMod | undefined)[]) {
      const src = compile({ maskMod: causal(), scoreMod }, problem, { backend: "triton" }).source;
      const products = src.match(/acc = tl\.dot\(p\.to\(vt\.dtype\), vt, acc\)/g) ?? [];
      expect(products.length).toBeGreaterThanOrEqual(2); // partial and full block loops
      expect(src).not.toMatch(/v_fin|tl\.where\([^)]*vt/);
    }
  });

  it("CUDA: a zero weight skips its V row", () => {
    const src = compile({ maskMod: causal() }, { ...problem, dtype: "f32" }, { backend: "cuda" }).source;
    expect(src).toMatch(/if \(p == 0\.0f\) continue;[\s\S]*acc\[d\] = fmaf\(p, v_tile\[j\]\[d\], acc\[d\]\)/);
  });
});
