/** Run one conformance instance through the JS backend (the default config, or these emitter options). */
import { type ConformanceInstance, makeSpec } from "@flexattn/template";
import { jsBackend, jsConfigCandidates, runJsKernel } from "../src/index.js";

export function runInstance(inst: ConformanceInstance, options?: Record<string, number>): void {
  const p = inst.problem;
  const sparseBlock = inst.blockMask.blockSize as [number, number];
  const config = { ...jsConfigCandidates(sparseBlock)[0], ...(options && { options }) };
  const spec = makeSpec({
    mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype,
    returnLse: p.returnLse, sparseBlock, config,
  });
  runJsKernel(jsBackend.generate(spec), inst);
}
