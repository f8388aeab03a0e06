/**
 * The WGSL bench's case measurement on this machine's WebGPU adapter (llvmpipe in CI): it times
 * the kernel flexAttention ran, with the config the library resolved, and says where it ran.
 */
import { describe, expect, it } from "vitest";
import { describeConfig, findExecutor, getBackend, isSoftwareAdapter, lastFlexAttentionRun, prepareCall } from "flexattn";
import { defaultFlexDevice, isWebGpuAvailable } from "@flexattn/webgpu";
import { publicCall } from "../src/wgsl-cases.js";
import { artifactRun, measureCase } from "../src/wgsl-measure.js";

const REQUIRE_WEBGPU = process.env.FLEXATTN_REQUIRE_WEBGPU === "1" || process.env.CI === "true";
const available = await isWebGpuAvailable();
if (!available && REQUIRE_WEBGPU) throw new Error("FLEXATTN_REQUIRE_WEBGPU/CI is set but no WebGPU adapter was found");
if (!available) console.warn("\n[bench] SKIPPING the WGSL bench measurement tests: no WebGPU adapter\n");

const small = { variant: "softcap-causal", n: 256, batch: 1, heads: 2, d: 32 };

describe.skipIf(!available)("WGSL bench: one case through the public API", { timeout: 120_000 }, () => {
  it("times the kernel flexAttention ran and records where it ran", async () => {
    const row = await measureCase(small, { backend: "wgsl", calls: 1, iterations: 2 });
    const last = lastFlexAttentionRun()!;
    expect(row.run).toEqual({ backend: "wgsl", device: last.device, fellBack: null, configSource: last.configSource });
    expect(row.config).toBe(describeConfig(last.config!));
    expect(row.spotError).toBeLessThan(1e-4);
    expect(row.kernelMs).toBeGreaterThan(0);
    expect(row.tflops).toBeCloseTo((4 * 2 * 256 * 256 * 32 * row.density) / (row.kernelMs! * 1e-3) / 1e12, 12);
  });

  it("refuses to time a config flexAttention did not run", async () => {
    await measureCase(small, { backend: "wgsl", calls: 0, iterations: 2 });
    const last = lastFlexAttentionRun()!;
    const call = publicCall(small);
    const prepared = prepareCall(call.q, call.k, call.v, call.options);
    const executor = (await findExecutor("wgsl"))!;
    const other = getBackend("wgsl")
      .configCandidates(prepared.problem, prepared.sparseBlock, { mask: prepared.mask, score: prepared.score }, executor.target(prepared.invocation))
      .find((c) => describeConfig(c) !== describeConfig(last.config!))!;
    expect(() => artifactRun(call, prepared, { ...last, config: other })).toThrow(/not the one that ran/);
    expect(artifactRun(call, prepared, last).config).toEqual(last.config);
  });

  it('"auto" records its choice: a CPU rasterizer falls back to JS with the reason, a GPU runs WGSL', async () => {
    const row = await measureCase(small, { backend: "auto", calls: 0, iterations: 2 });
    if (isSoftwareAdapter((await defaultFlexDevice()).description)) {
      expect(row.run.backend).toBe("js");
      expect(row.run.fellBack).toMatch(/rasterizer/);
      expect(row.kernelMs).toBeUndefined();
    } else {
      expect(row.run).toMatchObject({ backend: "wgsl", fellBack: null });
      expect(row.kernelMs).toBeGreaterThan(0);
    }
    expect(row.spotError).toBeLessThan(1e-4);
  });
});
