/**
 * Spot checks of kernel outputs against the float64 reference (src/verify.ts): which runs are
 * checked, which rows, and that a kernel writing wrong outputs is refused with a clear error.
 */
import { describe, expect, it } from "vitest";
import { CONFORMANCE_CASES, type KernelArtifact, instantiateCase } from "@flexattn/template";
import { artifactFor, needsCheck, prepareWgsl, runWgsl, spotRows } from "../src/index.js";
import { testDevice } from "./setup.js";

const device = await testDevice();
const artifactWith = (options: Record<string, unknown>) => ({ config: { options } }) as unknown as KernelArtifact;

describe("spot-check policy", () => {
  it("checks subgroupMatrix kernels by default, every kernel with 'always', none with 'never'", () => {
    expect(needsCheck(artifactWith({ subgroupMatrix: true }), "auto")).toBe(true);
    expect(needsCheck(artifactWith({ vec4: true }), "auto")).toBe(false);
    expect(needsCheck(artifactWith({ vec4: true }), "always")).toBe(true);
    expect(needsCheck(artifactWith({ subgroupMatrix: true }), "never")).toBe(false);
  });

  it("checks the first and last query rows and two between, each once", () => {
    for (const cs of CONFORMANCE_CASES) {
      const inst = instantiateCase(cs, 3);
      const p = inst.problem;
      const rows = spotRows(inst);
      expect(rows[0]).toEqual({ b: 0, h: 0, i: 0 });
      expect(rows.at(-1)).toEqual({ b: p.batch - 1, h: p.qHeads - 1, i: p.qLen - 1 });
      expect(new Set(rows.map((r) => `${r.b}:${r.h}:${r.i}`)).size).toBe(rows.length);
      for (const r of rows) expect(r.b < p.batch && r.h < p.qHeads && r.i < p.qLen).toBe(true);
    }
  });
});

describe.skipIf(!device)("spot checks on WebGPU", { timeout: 300_000 }, () => {
  const dev = device!;

  it("pass a correct kernel and refuse one that writes wrong outputs, naming the row", async () => {
    for (const name of ["causal", "document", "bf16-causal"]) {
      const cs = CONFORMANCE_CASES.find((c) => c.name === name);
      if (!cs) throw new Error(`no conformance case ${name}`);
      const inst = instantiateCase(cs, 5);
      await runWgsl(inst, { device: dev, verify: "always" });
      const good = artifactFor(inst, dev);
      // The same kernel with every output doubled on its way out.
      const source = good.source.replace(/fn fa_st4_out\(e: i32, n: i32, x: vec4<f32>\) \{/, "fn fa_st4_out(e: i32, n: i32, x_in: vec4<f32>) { let x = x_in * 2.0;");
      expect(source, name).not.toBe(good.source);
      const bad: KernelArtifact = { ...good, source, specHash: `${good.specHash}-doubled` };
      await expect(runWgsl(inst, { device: dev, artifact: bad, verify: "always" }), name)
        .rejects.toThrow(/WGSL kernel gave wrong results on .*: output row \(b=\d+, h=\d+, q=\d+\) or its LSE is off by .* relative to the float64 reference/);
      // "auto" leaves plain kernels to the conformance suite; "never" checks nothing.
      await expect(runWgsl(inst, { device: dev, artifact: bad }), name).resolves.toBeDefined();
      await expect(runWgsl(inst, { device: dev, artifact: bad, verify: "never" }), name).resolves.toBeDefined();
    }
  });

  it("let encode() record a checked kernel only once run() has checked it on the device", async () => {
    const inst = instantiateCase(CONFORMANCE_CASES.find((c) => c.name === "causal")!, 7);
    const good = artifactFor(inst, dev);
    const fresh = (tag: string): KernelArtifact => ({ ...good, specHash: `${good.specHash}-${tag}` }); // not yet checked on this device
    const record = (prepared: Awaited<ReturnType<typeof prepareWgsl>>) => {
      const enc = dev.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      try {
        prepared.encode(pass);
      } finally {
        pass.end();
        enc.finish();
      }
    };
    const checked = await prepareWgsl(inst, { device: dev, artifact: fresh("encode"), verify: "always" });
    expect(() => record(checked)).toThrow(/has not passed its spot check on .* yet \(verify: "always"\): call run\(\) once before encode\(\)/);
    await checked.run();
    expect(() => record(checked)).not.toThrow();
    // Kernels the mode leaves unchecked encode at once: a plain kernel under "auto", any under "never".
    for (const verify of ["auto", "never"] as const) {
      const unchecked = await prepareWgsl(inst, { device: dev, artifact: fresh(`encode-${verify}`), verify });
      expect(() => record(unchecked), verify).not.toThrow();
    }
  });

  it("refuse a kernel whose LSE is off", async () => {
    const inst = instantiateCase(CONFORMANCE_CASES.find((c) => c.name === "causal")!, 6);
    expect(inst.problem.returnLse).toBe(true);
    const good = artifactFor(inst, dev);
    const source = good.source.replace(/(fa_lse\[[^\]]*\] = )select\(/g, "$10.5 + select(");
    expect(source).not.toBe(good.source);
    await expect(runWgsl(inst, { device: dev, artifact: { ...good, source, specHash: `${good.specHash}-lse` }, verify: "always" }))
      .rejects.toThrow(/or its LSE is off by/);
  });
});
