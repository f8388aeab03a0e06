/**
 * Under a Content-Security-Policy without 'unsafe-eval', `new Function` throws an EvalError.
 * Simulated by a global `Function` that throws as a browser does: the JS backend must still
 * pass the whole conformance suite (through the IR evaluator) and never compile source.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlexAttnError, canCompileSource, resetCompileSourceProbe } from "@flexattn/ir";
import { CONFORMANCE_CASES, formatReport, runConformance } from "@flexattn/template";
import { loadJsKernel, loadedJsKernels } from "../src/index.js";
import { runInstance } from "./run-instance.js";

const RealFunction = globalThis.Function;

function forbidStringCompilation(): void {
  function CspFunction(): never {
    throw new EvalError("Refused to evaluate a string as JavaScript because 'unsafe-eval' is not an allowed source of script");
  }
  CspFunction.prototype = RealFunction.prototype;
  globalThis.Function = CspFunction as unknown as FunctionConstructor;
  resetCompileSourceProbe();
}

describe("codegen-js under a CSP without 'unsafe-eval'", () => {
  beforeAll(forbidStringCompilation);
  afterAll(() => {
    globalThis.Function = RealFunction;
    resetCompileSourceProbe();
  });

  it("detects that code cannot be compiled from strings", () => {
    expect(canCompileSource()).toBe(false);
  });

  it("passes every conformance case without compiling a kernel", async () => {
    const loaded = loadedJsKernels();
    const report = await runConformance({ name: "js (no eval)", run: (inst) => runInstance(inst), tolerance: { f32: { out: 1e-5, lse: 1e-5 } } });
    if (report.failed) console.log(formatReport(report));
    expect(report.results.length).toBe(CONFORMANCE_CASES.length);
    expect(report.failed).toBe(0);
    expect(loadedJsKernels()).toBe(loaded);
  });

  it("loadJsKernel says why it cannot load source", () => {
    const artifact = { backend: "js", specHash: "csp-test", source: "function f() {}", entry: "f" };
    expect(() => loadJsKernel(artifact as never)).toThrow(FlexAttnError);
    expect(() => loadJsKernel(artifact as never)).toThrow(/forbids compiling code from strings/);
  });
});
