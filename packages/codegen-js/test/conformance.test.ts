import { describe, expect, it } from "vitest";
import { CONFORMANCE_CASES, formatReport, runConformance } from "@flexattn/template";
import { runInstance } from "./run-instance.js";

const tolerance = { f32: { out: 1e-5, lse: 1e-5 } };

describe("codegen-js conformance", () => {
  it("passes every conformance case (f32 at 1e-5)", async () => {
    const report = await runConformance({ name: "js", run: (inst) => runInstance(inst), tolerance });
    if (report.failed) console.log(formatReport(report));
    expect(report.results.length).toBe(CONFORMANCE_CASES.length);
    expect(report.failed).toBe(0);
    for (const r of report.results) if (r.name.startsWith("bf16") || r.name.startsWith("f16")) continue; else expect(r.outError).toBeLessThan(1e-5);
  });

  for (const options of [{ dotUnroll: 1, accUnroll: 1, accCols: 1, qkCols: 1 }, { dotUnroll: 8, accUnroll: 2, accCols: 2, qkCols: 4 }]) {
    it(`passes with options ${JSON.stringify(options)}`, async () => {
      const report = await runConformance({ name: "js", run: (inst) => runInstance(inst, options), tolerance });
      if (report.failed) console.log(formatReport(report));
      expect(report.failed).toBe(0);
    });
  }
});
