/**
 * The whole conformance suite on a real WebGPU device (CI: Dawn's OpenGL ES backend on Mesa's
 * llvmpipe), with the default configs, then a subset under every kernel option.
 */
import { describe, expect, it } from "vitest";
import {
  CONFORMANCE_CASES, type ConformanceCase, type ConformanceInstance, type KernelConfig, formatReport, instantiateCase, runConformance,
} from "@flexattn/template";
import { wgslDefaultConfig } from "@flexattn/codegen-wgsl";
import { type FlexDevice, runWgsl, vec4Compatible } from "../src/index.js";
import { testDevice } from "./setup.js";

const device = await testDevice();

/** The device's default config for a case, with some options overridden (null: not applicable). */
function configFor(inst: ConformanceInstance, dev: FlexDevice, options: Record<string, number | boolean | string> = {}): KernelConfig | null {
  const vec4 = vec4Compatible(inst);
  if ((options.qGlobal || options.vec4) && !vec4) return null;
  return wgslDefaultConfig(inst.problem, inst.blockMask.blockSize as [number, number], { limits: dev.limits, vec4, options });
}

async function run(dev: FlexDevice, options?: Record<string, number | boolean | string>, filter?: (c: ConformanceCase) => boolean) {
  let ran = 0;
  const report = await runConformance(
    {
      name: `wgsl ${JSON.stringify(options ?? {})}`,
      run: async (inst) => {
        const config = configFor(inst, dev, options);
        if (!config) {
          // Not applicable (e.g. vec4 with f16): the default config still has to pass.
          await runWgsl(inst, { device: dev });
          return;
        }
        ran++;
        await runWgsl(inst, { device: dev, config });
      },
    },
    { filter },
  );
  if (report.failed) console.log(formatReport(report));
  return { report, ran };
}

// llvmpipe compiles every new shader with LLVM: with a cold Mesa shader cache (a fresh CI machine)
// the default-config test alone took 129 s and this file 5.5 min on a 2-core machine (2026-12-02).
const WGSL_TEST_TIMEOUT_MS = 900_000;

describe.skipIf(!device)("WGSL conformance on WebGPU", { timeout: WGSL_TEST_TIMEOUT_MS }, () => {
  const dev = device!;

  it("passes every conformance case with the device's default configs", async () => {
    const { report } = await run(dev);
    console.log(`${dev.description}: ${report.passed}/${report.results.length} conformance cases pass`);
    expect(report.failed).toBe(0);
    const f32 = report.results.filter((r) => !/^(bf16|f16)/.test(r.name));
    for (const r of f32) expect(r.outError).toBeLessThan(1e-4);
  });

  // Each option changes the kernel's structure; a representative subset covers the paths
  // (masks, score mods, captured buffers, ragged lengths, GQA, offsets, odd head dims, 16-bit storage).
  const subset = new Set([
    "causal-q>kv", "document-causal", "softcap-document-causal", "gqa-4-alibi", "head-dim-80", "qk-dim-ne-v-dim",
    "fully-masked-rows", "offsets-both", "layout-bshd", "bf16-document-gqa", "f16-softcap", "block-128",
  ]);
  const variants: Record<string, number | boolean>[] = process.env.WGSL_VARIANT ? [JSON.parse(process.env.WGSL_VARIANT)] : [
    { vec4: false, unrollD: 2, unrollN: 2 },
    { qGlobal: true, unrollD: 3, unrollN: 4 },
    { doubleBuffer: true, prefetchV: false, unrollD: 2, unrollN: 2 },
    { rowsPerThread: 1, unrollD: 2, unrollN: 2 },
    { rowsPerThread: 2, doubleBuffer: true, unrollD: 2, unrollN: 2 },
    { rowsPerThread: 8, workgroupSize: 32, unrollD: 2, unrollN: 2 },
    { shareKV: true, unrollD: 2, unrollN: 2 },
    { shareKV: true, doubleBuffer: true, prefetchV: false, rowsPerThread: 2, unrollD: 2, unrollN: 2 },
  ];
  for (const options of variants) {
    it(`passes a subset with options ${JSON.stringify(options)}`, async () => {
      const { report } = await run(dev, options, (c) => subset.has(c.name));
      expect(report.failed).toBe(0);
    });
  }

  for (const tanh of ["exp", "guarded"]) {
    it(`tanh rendered "${tanh}" passes every softcap case`, async () => {
      const { report, ran } = await run(dev, { tanh }, (c) => /softcap/.test(c.name));
      expect(ran).toBeGreaterThanOrEqual(3);
      expect(report.failed).toBe(0);
    });
  }

  it("subgroup reductions: pass the subset where the adapter has subgroups, else are refused clearly", async () => {
    if (dev.features.has("subgroups")) {
      const { report } = await run(dev, { subgroups: true }, (c) => subset.has(c.name));
      expect(report.failed).toBe(0);
      return;
    }
    // llvmpipe offers no subgroups: asking for them must fail before any shader is built.
    const causal = CONFORMANCE_CASES.find((c) => c.name === "causal")!;
    const inst = instantiateCase(causal);
    const base = configFor(inst, dev)!;
    const forced = { ...base, options: { ...base.options, subgroups: true } };
    await expect(runWgsl(inst, { device: dev, config: forced })).rejects.toThrow(/needs the 'subgroups' feature/);
  });
});
