/** CI check: every module generated for the conformance cases byte-compiles (no torch/triton needed). */
import { describe, expect, it } from "vitest";
import { CONFORMANCE_CASES, type KernelConfig, instantiateCase, makeSpec } from "@flexattn/template";
import { tritonBackend } from "../src/index.js";
import { pyCompile } from "./helpers.js";

function variants(dtype: string, hasScore: boolean): Record<string, Partial<KernelConfig>> {
  return {
    default: {},
    fast: { options: { contiguousFullBlocks: true, contiguousPartialBlocks: true, reverseQBlocks: false } },
    ...(hasScore ? { approx: { options: { approxTanh: true } } } : { prescaled: { prescaleQk: true } }),
    ...(dtype === "f32" ? { tf32: { options: { allowTf32: true } } } : {}),
  };
}

describe("generated Triton modules", () => {
  it("byte-compile for every conformance case and option variant", () => {
    const sources: Record<string, string> = {};
    CONFORMANCE_CASES.forEach((cs, i) => {
      const inst = instantiateCase(cs, 1000 + i);
      const p = inst.problem;
      const base = tritonBackend.defaultConfig(p, cs.blockSize);
      for (const [name, v] of Object.entries(variants(p.dtype, inst.score !== null))) {
        const spec = makeSpec({
          mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype,
          returnLse: p.returnLse, sparseBlock: cs.blockSize, config: { ...base, ...v },
        });
        sources[`case${i}_${name}`] = tritonBackend.generate(spec).source;
      }
    });
    expect(Object.keys(sources).length).toBeGreaterThan(CONFORMANCE_CASES.length * 2);
    expect(pyCompile(sources)).toEqual([]);
  });
});
