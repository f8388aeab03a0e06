/** The "write a backend" guide's code typechecks and passes the conformance suite. */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { CONFORMANCE_CASES, formatReport, makeSpec, runConformance } from "@flexattn/template";
import { describe, expect, it } from "vitest";
import { generateTiny, runTiny, tinyBackend } from "../src/guide/tiny-backend.js";

const DOCS = join(import.meta.dirname, "..");

describe("the guide's tiny backend", () => {
  const f32Cases = CONFORMANCE_CASES.filter((c) => (c.problem.dtype ?? "f32") === "f32");

  it.each([0, 1, 2])("passes every f32 conformance case against the float64 reference (config candidate %i)", async (candidate) => {
    const report = await runConformance(
      {
        name: "tiny",
        run(inst) {
          const spec = makeSpec({
            mask: inst.mask, score: inst.score, qkHeadDim: inst.problem.qkHeadDim, vHeadDim: inst.problem.vHeadDim,
            dtype: inst.problem.dtype, returnLse: inst.problem.returnLse, sparseBlock: inst.blockMask.blockSize,
            config: tinyBackend.configCandidates(inst.problem, inst.blockMask.blockSize)[candidate],
          });
          runTiny(generateTiny(spec), inst);
        },
      },
      // The default on every case; the other candidates on a spread of them (the suite is slow on one CPU thread).
      { cases: candidate === 0 ? f32Cases : f32Cases.filter((_, i) => i % 4 === candidate) },
    );
    expect(f32Cases.length).toBeGreaterThanOrEqual(20);
    expect(report.failed, formatReport(report)).toBe(0);
    expect(report.passed).toBe(report.results.length);
    expect(report.results.length).toBeGreaterThanOrEqual(candidate === 0 ? f32Cases.length : 5);
  });

  it("refuses a dtype it does not support, with the library's error type", () => {
    const c = f32Cases[0];
    const spec = makeSpec({ mask: null, score: null, qkHeadDim: 32, vHeadDim: 32, dtype: "bf16", config: tinyBackend.configCandidates(c.problem as never, [32, 32])[0] });
    expect(() => generateTiny(spec)).toThrow(/the tiny backend supports f32 only, got bf16/);
  });

  it("typechecks against the template's current types", () => {
    const tsc = join(DOCS, "../../node_modules/typescript/bin/tsc");
    expect(() => execFileSync(process.execPath, [tsc, "-p", join(DOCS, "tsconfig.guide.json")], { encoding: "utf8", stdio: "pipe" })).not.toThrow();
  });
});
