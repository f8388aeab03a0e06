import { describe, expect, it } from "vitest";
import {
  BACKWARD_CASES, type BackwardInstance, checkBackwardInstance, instantiateBackwardCase, makeSpec, runBackwardConformance,
} from "@flexattn/template";
import { generateJsBackward, jsBackend, runJsBackward } from "../src/index.js";

function runBackward(inst: BackwardInstance, tile?: { blockM: number; blockN: number }): void {
  const p = inst.problem;
  const sparseBlock = inst.blockMask.blockSize as [number, number];
  const spec = makeSpec({
    mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype, returnLse: true, sparseBlock,
    config: { ...jsBackend.configCandidates(p, sparseBlock, { mask: inst.mask, score: inst.score })[0], ...tile },
  });
  runJsBackward(spec, inst);
}

describe("codegen-js backward conformance", () => {
  it("every backward case: dQ, dK, dV and buffer gradients match the float64 reference backward", async () => {
    // The JS backward sums in float64: f32 gradients within 1e-5 of the reference.
    const results = await runBackwardConformance((inst) => runBackward(inst), { tolerance: { f32: 1e-5 } });
    const failed = results.filter((r) => !r.pass);
    expect(failed.map((r) => `${r.name} (seed ${r.seed}): ${r.message}`)).toEqual([]);
    expect(results).toHaveLength(BACKWARD_CASES.length);
    expect(results.some((r) => (r.errors?.dBuffers.length ?? 0) > 0)).toBe(true);
  });

  it("with tiles smaller than the BlockMask blocks (several sub-tiles per block)", async () => {
    const results = await runBackwardConformance((inst) => runBackward(inst, { blockM: 8, blockN: 8 }), {
      cases: BACKWARD_CASES.filter((c) => c.tags.includes("bias-table") || c.name === "causal"),
    });
    expect(results.filter((r) => !r.pass).map((r) => `${r.name} (seed ${r.seed}): ${r.message}`)).toEqual([]);
  });

  it("with head dims that are not multiples of 4", async () => {
    const odd = BACKWARD_CASES.filter((c) => c.name === "causal" || c.name === "learnable-relative-bias-2N-1").map((c) => ({
      ...c, name: `${c.name}-odd-dims`, problem: { ...c.problem, qkHeadDim: 18, vHeadDim: 17 },
    }));
    const results = await runBackwardConformance((inst) => runBackward(inst), { cases: odd, tolerance: { f32: 1e-5 } });
    expect(results).toHaveLength(2);
    expect(results.filter((r) => !r.pass).map((r) => `${r.name} (seed ${r.seed}): ${r.message}`)).toEqual([]);
  });

  it("fails poisoned (unwritten) and perturbed gradients", () => {
    const cs = BACKWARD_CASES.find((c) => c.name === "learnable-relative-bias-2N-1")!;
    const untouched = instantiateBackwardCase(cs);
    expect(checkBackwardInstance(untouched).message).toMatch(/unwritten or NaN/);
    const perturbed = instantiateBackwardCase(cs);
    runBackward(perturbed);
    expect(checkBackwardInstance(perturbed).pass).toBe(true);
    perturbed.dBuffers[0][40] += 0.05 * Math.max(...Array.from(perturbed.dBuffers[0], Math.abs));
    expect(checkBackwardInstance(perturbed).pass).toBe(false);
  });

  it("buffer gradients are bitwise identical from run to run", () => {
    const cs = BACKWARD_CASES.find((c) => c.name === "learnable-head-buckets-bias")!;
    const a = instantiateBackwardCase(cs, 1234);
    const b = instantiateBackwardCase(cs, 1234);
    runBackward(a);
    runBackward(b);
    const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
    expect(a.dBuffers).toHaveLength(1);
    expect(bits(a.dBuffers[0])).toEqual(bits(b.dBuffers[0]));
    expect(bits(a.dq as Float32Array)).toEqual(bits(b.dq as Float32Array));
    expect(a.dBuffers[0].some((x) => x !== 0)).toBe(true);
  });

  it("the generated source reduces buffer partials in program order, with no buffer gradient code without a score mod", () => {
    const cs = BACKWARD_CASES.find((c) => c.name === "learnable-relative-bias-2N-1")!;
    const inst = instantiateBackwardCase(cs);
    const spec = (score: typeof inst.score) => makeSpec({
      mask: inst.mask, score, qkHeadDim: 32, vHeadDim: 32, dtype: "f32", sparseBlock: [16, 16], config: { blockM: 16, blockN: 16, numWarps: 1, numStages: 1, prescaleQk: false },
    });
    const withBias = generateJsBackward(spec(inst.score)).source;
    expect(withBias).toMatch(/for \(let prog = 0, n = batch \* kv_heads \* numKvTiles; prog < n; prog\+\+\) acc \+= PART0/);
    expect(generateJsBackward(spec(null)).source).not.toMatch(/PART0/);
  });
});
