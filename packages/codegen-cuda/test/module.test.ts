/**
 * The generated Python module's runtime on CPU (test/module_runtime.py, stand-in torch and cupy): which kernels
 * it carries, config resolution and tuning through @flexattn/autotune's runtime, each kernel's launch shape, and
 * the fallback from a wgmma default on a GPU that cannot run it.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { traceMaskMod } from "@flexattn/ir";
import { CONFORMANCE_CASES, DEFAULT_CONFIG, type DeviceTarget, type KernelSpec, instantiateCase, makeSpec } from "@flexattn/template";
import { cudaBackend, cudaConfigName, cudaModuleConfigs, cudaOptions, cudaPythonModule, cudaTmaConfigs, generateCuda } from "@flexattn/codegen-cuda";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const SM90: DeviceTarget = { signature: "cuda sm_90a", limits: { arch: "sm_90a" } };

/** A conformance case as bf16 with 128×128 BlockMask blocks, with the default config of a target. */
function spec(name: string, target?: DeviceTarget): KernelSpec {
  const found = CONFORMANCE_CASES.find((c) => c.name === name)!;
  const inst = instantiateCase({ ...found, blockSize: [128, 128], problem: { ...found.problem, dtype: "bf16" } }, 1);
  const p = inst.problem;
  return makeSpec({
    mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype, returnLse: p.returnLse,
    sparseBlock: inst.blockMask.blockSize, config: cudaBackend.configCandidates(p, inst.blockMask.blockSize, inst, target)[0],
  });
}

async function python(): Promise<boolean> {
  try {
    await run("python3", ["-c", "import numpy"]);
    return true;
  } catch {
    if (process.env.CI) throw new Error("python3 with numpy is required in CI to run the generated CUDA module's Python");
    console.warn("SKIPPED: no python3 with numpy; the CUDA module's runtime was not checked");
    return false;
  }
}

describe("the generated CUDA module", () => {
  it("carries its own config first, then its target's next candidates, each once", () => {
    const s = spec("alibi-causal", SM90);
    const configs = cudaModuleConfigs(s);
    expect(configs[0]).toEqual(s.config);
    expect(cudaOptions(configs[0], "bf16").kernel).toBe("wgmma");
    const names = configs.map((c) => cudaConfigName(c, "bf16"));
    expect(new Set(names).size).toBe(names.length);
    expect(names.length).toBe(4);
    // The last is the sm_80 default, so the module runs on GPUs that cannot run wgmma.
    expect(cudaOptions(configs[3], "bf16").kernel).toBe("mma");
    expect(configs.slice(0, 3).every((c) => cudaOptions(c, "bf16").kernel === "wgmma")).toBe(true);
    expect(cudaModuleConfigs(s, 1)).toEqual([s.config]);
    expect(() => cudaModuleConfigs(s, 0)).toThrow(/at least one config/);
    // A caller's approximate tanh holds for every config the module may tune to, the sm_80 fallback too.
    const approx = { ...s, config: { ...s.config, options: { ...s.config.options, approxTanh: true } } };
    const approxConfigs = cudaModuleConfigs(approx);
    expect(approxConfigs.length).toBe(4);
    expect(approxConfigs.every((c) => cudaOptions(c, "bf16").approxTanh)).toBe(true);
    expect(approxConfigs.map((c) => cudaConfigName(c, "bf16"))).toEqual(names.map((n) => `${n} approx-tanh`));
    const py = cudaPythonModule(s);
    for (const c of configs) expect(py).toContain(generateCuda({ ...s, config: c }).source);
    expect(cudaPythonModule(s, generateCuda(s), { configs: 1 })).not.toContain(generateCuda({ ...s, config: configs[1] }).source);
    expect(() => cudaPythonModule(s, generateCuda({ ...s, config: configs[1] }))).toThrow(/the artifact was generated for/);
  });

  // The last: a d = 64 causal module whose default loads through TMA (tensor maps built per launch).
  const tmaSpec = () => {
    const base = makeSpec({ mask: traceMaskMod((_b, _h, q, kv) => q.ge(kv)), score: null, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16", sparseBlock: [128, 128], config: DEFAULT_CONFIG });
    return { ...base, config: cudaTmaConfigs({ qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" }, [128, 128], base)[0] };
  };
  for (const [name, make] of [["alibi-causal (sm_90a)", () => spec("alibi-causal", SM90)], ["causal (sm_80)", () => spec("causal")], ["causal d64, TMA (sm_90a)", tmaSpec]] as const) {
    it(`${name}: resolves, tunes and launches each kernel as configured`, async () => {
      if (!(await python())) return;
      const dir = mkdtempSync(join(tmpdir(), "flexattn-cuda-module-"));
      try {
        const file = join(dir, "m.py");
        writeFileSync(file, cudaPythonModule(make()));
        const { stdout, stderr } = await run("python3", [join(here, "module_runtime.py"), file], { timeout: 120_000 });
        expect(stdout.trim(), stderr).toBe("");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }, 180_000);
  }
});
