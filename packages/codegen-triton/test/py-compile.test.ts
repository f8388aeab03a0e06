/** CI check: every module generated for the conformance cases byte-compiles (no torch/triton needed). */
import { describe, expect, it } from "vitest";
import { CONFORMANCE_CASES, type KernelConfig, instantiateCase, makeSpec } from "@flexattn/template";
import { tritonBackend, tritonDefaultConfig } from "../src/index.js";
import { pyCompile } from "./helpers.js";

function variants(dtype: string, hasScore: boolean): Record<string, Partial<KernelConfig>> {
  return {
    default: {},
    forward: { options: { reverseQBlocks: false } },
    ...(hasScore ? { approx: { options: { approxTanh: true } } } : { prescaled: { prescaleQk: true } }),
    ...(dtype === "f32" ? { tf32: { options: { allowTf32: true } } } : {}),
  };
}

describe("generated Triton modules", () => {
  it("byte-compile for every conformance case and option variant, with and without tma", () => {
    const sources: Record<string, string> = {};
    CONFORMANCE_CASES.forEach((cs, i) => {
      const inst = instantiateCase(cs, 1000 + i);
      const p = inst.problem;
      const base = tritonDefaultConfig(p, cs.blockSize);
      for (const [name, v] of Object.entries(variants(p.dtype, inst.score !== null))) {
        for (const tma of [false, true]) {
          const spec = makeSpec({
            mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype,
            returnLse: p.returnLse, sparseBlock: cs.blockSize, config: { ...base, ...v, options: { ...v.options, tma } },
          });
          sources[`case${i}_${name}${tma ? "_tma" : ""}`] = tritonBackend.generate(spec).source;
        }
      }
    });
    const names = Object.keys(sources);
    expect(names.length).toBeGreaterThan(CONFORMANCE_CASES.length * 4);
    const tmaNames = names.filter((n) => n.endsWith("_tma"));
    expect(tmaNames.length * 2).toBe(names.length);
    for (const n of tmaNames) expect(sources[n]).toContain("USE_TMA: tl.constexpr");
    expect(pyCompile(sources)).toEqual([]);
  });
});
