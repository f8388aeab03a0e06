import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { FlexAttnError, traceMaskMod } from "@flexattn/ir";
import { CONFORMANCE_CASES, DEFAULT_CONFIG, instantiateCase, makeSpec, resolveProblem } from "@flexattn/template";
import { cudaBackend, generateCuda } from "@flexattn/codegen-cuda";

const run = promisify(execFile);

async function hasNvcc(): Promise<boolean> {
  try {
    await run("nvcc", ["--version"]);
    return true;
  } catch {
    return false;
  }
}

function specFor(name: string) {
  const inst = instantiateCase(CONFORMANCE_CASES.find((c) => c.name === name)!, 1);
  const config = cudaBackend.configCandidates(inst.problem, inst.blockMask.blockSize, { mask: null, score: null })[0];
  return makeSpec({
    mask: inst.mask, score: inst.score, qkHeadDim: inst.problem.qkHeadDim, vHeadDim: inst.problem.vHeadDim,
    dtype: inst.problem.dtype, returnLse: inst.problem.returnLse, sparseBlock: inst.blockMask.blockSize, config,
  });
}

describe("CUDA codegen", () => {
  it("follows the ABI and inlines the mods without buffer data", () => {
    const a = generateCuda(specFor("document-causal"));
    expect(a.backend).toBe("cuda");
    expect(a.source).toContain("extern \"C\" __global__");
    expect(a.source).toContain("const int* __restrict__ mask_docIds");
    expect(a.source.indexOf("kv_num_blocks")).toBeLessThan(a.source.indexOf("mask_docIds"));
    expect(a.abi.map((x) => x.name)).toContain("mask_docIds");
    // The same structure with new buffer data is the same kernel.
    expect(generateCuda(specFor("document-causal")).specHash).toBe(a.specHash);
  });

  it("rejects configs that overflow shared memory", () => {
    const mask = traceMaskMod((_b, _h, q, kv) => q.ge(kv));
    const spec = makeSpec({ mask, score: null, qkHeadDim: 256, vHeadDim: 256, dtype: "f32", config: { ...DEFAULT_CONFIG, blockN: 64 } });
    expect(() => generateCuda(spec)).toThrow(FlexAttnError);
    const ok = cudaBackend.configCandidates(resolveProblem({ batch: 1, qHeads: 1, kvHeads: 1, qLen: 8, kvLen: 8, qkHeadDim: 256, vHeadDim: 256, dtype: "f32" }), [128, 128], { mask: null, score: null })[0];
    expect(() => generateCuda({ ...spec, config: ok })).not.toThrow();
  });

  it("every conformance case's kernel compiles with nvcc for sm_90a", async () => {
    if (!(await hasNvcc())) {
      if (process.env.CI) throw new Error("nvcc is required in CI to compile the generated CUDA kernels");
      console.warn("SKIPPED: nvcc not found; generated CUDA kernels were not compiled");
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "flexattn-cu-"));
    const files = CONFORMANCE_CASES.map((c) => {
      const file = join(dir, `${c.name}.cu`);
      writeFileSync(file, generateCuda(specFor(c.name)).source);
      return file;
    });
    // Two at a time: CI has two cores.
    const failures: string[] = [];
    for (let i = 0; i < files.length; i += 2) {
      await Promise.all(
        files.slice(i, i + 2).map(async (f) => {
          try {
            await run("nvcc", ["-O3", "-gencode=arch=compute_90a,code=sm_90a", "-c", f, "-o", f + ".o"]);
          } catch (e: any) {
            failures.push(`${f}: ${e.stderr ?? e.message}`);
          }
        }),
      );
    }
    expect(failures).toEqual([]);
  }, 600_000);
});
