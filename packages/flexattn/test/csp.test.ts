/**
 * A page under a Content-Security-Policy without 'unsafe-eval' cannot compile code from strings.
 * Simulated by a global `Function` that throws EvalError as a browser does: createBlockMask and
 * flexAttention on the JS backend must give the same BlockMask and the reference's output.
 */
import { afterAll, describe, expect, it } from "vitest";
import {
  type BlockMask, type MaskMod, andMasks, buffer, canCompileSource, causal, createBlockMask, flexAttention, randomDocumentIds, randomTensor,
  referenceAttention, resetCompileSourceProbe, resolveProblem, slidingWindow, softcap, toScoreGraph,
} from "../src/index.js";
import { loadedJsKernels } from "@flexattn/codegen-js";

const RealFunction = globalThis.Function;

/** Run f (to the end of its promise, if it returns one) with string compilation forbidden. */
function withoutEval<T>(f: () => T): T {
  function CspFunction(): never {
    throw new EvalError("Refused to evaluate a string as JavaScript because 'unsafe-eval' is not an allowed source of script");
  }
  CspFunction.prototype = RealFunction.prototype;
  globalThis.Function = CspFunction as unknown as FunctionConstructor;
  resetCompileSourceProbe();
  const restore = () => {
    globalThis.Function = RealFunction;
    resetCompileSourceProbe();
  };
  let result: T;
  try {
    result = f();
  } catch (e) {
    restore();
    throw e;
  }
  if (result instanceof Promise) return result.finally(restore) as T;
  restore();
  return result;
}

const TABLES = ["kvNumBlocks", "kvIndices", "fullKvNumBlocks", "fullKvIndices", "qNumBlocks", "qIndices", "fullQNumBlocks", "fullQIndices"] as const;

describe("under a CSP without 'unsafe-eval'", () => {
  afterAll(() => resetCompileSourceProbe());

  it("the probe sees the difference", () => {
    expect(withoutEval(() => canCompileSource())).toBe(false);
    expect(canCompileSource()).toBe(true);
  });

  it("createBlockMask builds the same tables", () => {
    const n = 777;
    const ids = randomDocumentIds(n, 6, Math.floor(Math.random() * 1e9));
    const docs = buffer(Int32Array.from(ids));
    const periodic: MaskMod = (_b, h, q, kv) => q.sub(kv).add(h).mod(7).lt(3);
    const masks: MaskMod[] = [causal(), slidingWindow(100), andMasks(causal(), (_b, _h, q, kv) => docs.at(q).eq(docs.at(kv))), periodic];
    for (const mask of masks) {
      const options = { B: 1, H: 2, qLen: n, kvLen: n - 50, blockSize: 64 };
      const expected: BlockMask = createBlockMask(mask, options);
      const got: BlockMask = withoutEval(() => createBlockMask(mask, options));
      for (const t of TABLES) expect(Array.from(got[t]), t).toEqual(Array.from(expected[t]));
    }
  });

  it("flexAttention on the JS backend matches the float64 reference, every element written", async () => {
    const n = 300;
    const ids = randomDocumentIds(n, 4, Math.floor(Math.random() * 1e9));
    const docs = buffer(Int32Array.from(ids));
    const mask = andMasks(causal(), (_b, _h, q, kv) => docs.at(q).eq(docs.at(kv)));
    const seed = Math.floor(Math.random() * 1e9);
    const q = randomTensor([1, 4, n, 32], { seed });
    const k = randomTensor([1, 2, n, 32], { seed: seed + 1 });
    const v = randomTensor([1, 2, n, 32], { seed: seed + 2 });
    // Compiling the mask and running the kernel both happen while eval is forbidden.
    const loaded = loadedJsKernels();
    const { blockMask, result } = await withoutEval(async () => {
      const blockMask = createBlockMask(mask, { qLen: n, kvLen: n, blockSize: 64 });
      const result = await flexAttention(q, k, v, { blockMask, scoreMod: softcap(15), enableGqa: true, returnLse: true, backend: "js" });
      return { blockMask, result };
    });
    expect(loadedJsKernels()).toBe(loaded);
    const problem = resolveProblem({ batch: 1, qHeads: 4, kvHeads: 2, qLen: n, kvLen: n, qkHeadDim: 32, vHeadDim: 32, dtype: "f32", returnLse: true });
    const ref = referenceAttention({ problem, q, k, v, mask: blockMask.maskGraph ?? null, score: toScoreGraph(softcap(15)), blockMask });
    const out = result.out.data as Float32Array;
    expect(out.length).toBe(ref.out.length);
    for (let i = 0; i < out.length; i++) {
      expect(Number.isFinite(out[i])).toBe(true);
      expect(Math.abs(out[i] - ref.out[i])).toBeLessThan(1e-5);
    }
    for (let i = 0; i < ref.lse.length; i++) expect(Math.abs(result.lse.data[i] - ref.lse[i])).toBeLessThan(1e-4);
  });
});
