/** The research harnesses edit generated WGSL by pattern: a codegen change can leave an edit matching nothing, or break it. */
import { describe, expect, it } from "vitest";
import { checkAblations } from "../src/wgsl-ablation-probe.js";

describe("wgsl-ablation-probe", () => {
  it("every edit still applies to the library's kernels and compiles on Dawn's null backend", async () => {
    expect(await checkAblations()).toBeGreaterThan(20);
  });
});
