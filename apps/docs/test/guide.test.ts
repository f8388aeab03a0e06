/** The guides' code: the "write a backend" backend typechecks and passes the conformance suite; the training example learns. */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { CONFORMANCE_CASES, formatReport, makeSpec, runConformance } from "@flexattn/template";
import { describe, expect, it } from "vitest";
import { generateTiny, runTiny, tinyBackend } from "../src/guide/tiny-backend.js";
import { trainRelativeBias } from "../src/guide/training.js";

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

describe("the training guide's example", () => {
  it("fits the teacher's relative-position bias: the loss falls and the table learns its differences", async () => {
    const n = 64;
    const { losses, table, teacher } = await trainRelativeBias({ n, heads: 4, headDim: 16, steps: 100, learningRate: 0.03, backend: "js" });
    expect(losses[0]).toBeGreaterThan(1);
    expect(losses.at(-1)!).toBeLessThan(0.05 * losses[0]);
    // Softmax ignores a constant shift of the table: compare differences from the diagonal (q = kv).
    const diagonal = n - 1;
    for (let j = 1; j <= 6; j++) {
      expect(table[diagonal] - table[diagonal + j]).toBeCloseTo(teacher[diagonal] - teacher[diagonal + j], 1);
    }
    // Entries of keys after the query (masked by causal) receive no gradient and stay zero.
    expect(Array.from(table.subarray(0, diagonal)).every((x) => x === 0)).toBe(true);
  });
});
