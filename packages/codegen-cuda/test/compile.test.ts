import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { FlexAttnError, tanh, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import {
  CONFORMANCE_CASES, DEFAULT_CONFIG, type KernelConfig, type KernelSpec, type StorageDType, instantiateCase, makeSpec,
  resolveProblem,
} from "@flexattn/template";
import { CUDA_ENTRY, cudaBackend, cudaConfigCandidates, cudaPythonModule, generateCuda } from "@flexattn/codegen-cuda";

const run = promisify(execFile);

async function has(tool: string, args: string[]): Promise<boolean> {
  try {
    await run(tool, args);
    return true;
  } catch {
    return false;
  }
}

/** In CI the tool must be there; elsewhere its absence is reported, not hidden as a pass. */
async function requireTool(tool: string, args: string[], what: string): Promise<boolean> {
  if (await has(tool, args)) return true;
  if (process.env.CI) throw new Error(`${tool} is required in CI to ${what}`);
  console.warn(`SKIPPED: ${tool} not found; ${what} was not checked`);
  return false;
}

function caseSpec(name: string, dtype?: StorageDType, config?: KernelConfig): KernelSpec {
  const cs = CONFORMANCE_CASES.find((c) => c.name === name)!;
  const inst = instantiateCase(dtype ? { ...cs, problem: { ...cs.problem, dtype } } : cs, 1);
  const p = inst.problem;
  return makeSpec({
    mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype, returnLse: p.returnLse,
    sparseBlock: inst.blockMask.blockSize, config: config ?? cudaBackend.configCandidates(p, inst.blockMask.blockSize, inst)[0],
  });
}

const causal = traceMaskMod((_b, _h, q, kv) => q.ge(kv));
const softcap = traceScoreMod((s, _b, _h, _q, _kv) => tanh(s.div(30)).mul(30));

/** Problems whose every config candidate must compile: head dims, qk ≠ v, both half dtypes, f32. */
const CANDIDATE_PROBLEMS: [number, number, StorageDType][] = [
  [64, 64, "bf16"], [128, 128, "bf16"], [256, 256, "f16"], [80, 80, "bf16"], [48, 24, "f16"], [16, 16, "bf16"], [128, 128, "f32"],
];

function candidateSpecs(): KernelSpec[] {
  return unique(CANDIDATE_PROBLEMS.flatMap(([qkHeadDim, vHeadDim, dtype]) =>
    cudaConfigCandidates({ qkHeadDim, vHeadDim, dtype }, [128, 128]).map((config) =>
      makeSpec({ mask: causal, score: softcap, qkHeadDim, vHeadDim, dtype, returnLse: true, sparseBlock: [128, 128], config }),
    ),
  ));
}

/** Every conformance case in its dtype, and the f32 ones again in bf16 and f16 (the tensor-core kernel). */
function conformanceSpecs(): KernelSpec[] {
  return unique(
    CONFORMANCE_CASES.flatMap((c) =>
      (c.problem.dtype === "f32" ? (["f32", "bf16", "f16"] as const) : [c.problem.dtype as StorageDType]).map((d) => caseSpec(c.name, d)),
    ),
  );
}

/** One spec per generated kernel (cases that differ only in buffer data or sizes share one). */
function unique(specs: KernelSpec[]): KernelSpec[] {
  const seen = new Set<string>();
  return specs.filter((s) => {
    const h = generateCuda(s).specHash;
    if (seen.has(h)) return false;
    seen.add(h);
    return true;
  });
}

/**
 * Many kernels in one translation unit, each in its own namespace with its entry points renamed:
 * one nvcc run per architecture instead of one per kernel.
 */
function batchSource(specs: KernelSpec[]): string {
  return specs
    .map((spec, i) => `namespace k${i} {
#define ${CUDA_ENTRY} ${CUDA_ENTRY}_${i}
#define ${CUDA_ENTRY}_launch ${CUDA_ENTRY}_launch_${i}
${generateCuda(spec).source}
#undef ${CUDA_ENTRY}
#undef ${CUDA_ENTRY}_launch
}`)
    .join("\n");
}

interface PtxasReport {
  registers: number;
  stackBytes: number;
  spillStores: number;
  spillLoads: number;
}

/** ptxas -v's resource lines per kernel index, for one architecture. */
function parsePtxas(stderr: string, arch: string): Map<number, PtxasReport> {
  const out = new Map<number, PtxasReport>();
  const blocks = stderr.split(/ptxas info\s+: Compiling entry function '/).slice(1);
  for (const b of blocks) {
    const m = new RegExp(`^${CUDA_ENTRY}_(\\d+)' for '${arch}'`).exec(b);
    if (!m) continue;
    const frame = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(b);
    const regs = /Used (\d+) registers/.exec(b);
    if (!frame || !regs) throw new Error(`unparsed ptxas report: ${b.slice(0, 300)}`);
    out.set(Number(m[1]), { registers: Number(regs[1]), stackBytes: Number(frame[1]), spillStores: Number(frame[2]), spillLoads: Number(frame[3]) });
  }
  return out;
}

const ARCHS = [
  { flag: "-gencode=arch=compute_80,code=sm_80", name: "sm_80" },
  { flag: "-gencode=arch=compute_90a,code=sm_90a", name: "sm_90a" },
];

/**
 * Compile a batch for sm_80 and sm_90a (the two in parallel); the ptxas reports by kernel index.
 * About 0.7 s of CPU per kernel and architecture (nvcc 13), mostly the front end.
 */
async function compileBatch(specs: KernelSpec[], dir: string, tag: string): Promise<Map<string, Map<number, PtxasReport>>> {
  const file = join(dir, `${tag}.cu`);
  writeFileSync(file, batchSource(specs));
  const reports = await Promise.all(
    ARCHS.map(async (a) => {
      const { stderr } = await run("nvcc", ["-O3", a.flag, "-cubin", "-Xptxas", "-v", file, "-o", join(dir, `${tag}-${a.name}.cubin`)], {
        maxBuffer: 64 * 1024 * 1024,
      });
      return [a.name, parsePtxas(stderr, a.name)] as const;
    }),
  );
  return new Map(reports);
}

describe("CUDA codegen", () => {
  it("follows the ABI and inlines the mods without buffer data", () => {
    for (const dtype of ["f32", "bf16"] as const) {
      const a = generateCuda(caseSpec("document-causal", dtype));
      expect(a.backend).toBe("cuda");
      expect(a.source).toContain('extern "C" __global__');
      expect(a.source).toContain('extern "C" cudaError_t flex_attention_fwd_launch(');
      expect(a.source).toContain("const int* __restrict__ mask_docIds");
      expect(a.source).not.toContain("#include");
      expect(a.source.indexOf("kv_num_blocks")).toBeLessThan(a.source.indexOf("mask_docIds"));
      expect(a.abi.map((x) => x.name)).toContain("mask_docIds");
      // The same structure with new buffer data is the same kernel.
      expect(generateCuda(caseSpec("document-causal", dtype)).specHash).toBe(a.specHash);
    }
  });

  it("puts half inputs on tensor cores and f32 on CUDA cores", () => {
    const half = generateCuda(caseSpec("causal", "bf16"));
    expect(half.source).toContain("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32");
    expect(half.source).toContain("cp.async.cg.shared.global");
    expect(half.source).toContain("ldmatrix.sync.aligned.m8n8.x4.trans");
    expect(half.launch.threadsPerProgram).toBe(32 * half.config.numWarps);
    expect(generateCuda(caseSpec("causal", "f16")).source).toContain("m16n8k16.row.col.f32.f16.f16.f32");
    const f32 = generateCuda(caseSpec("causal", "f32"));
    expect(f32.source).not.toContain("mma.sync");
    expect(f32.launch.threadsPerProgram).toBe(f32.config.blockM);
  });

  it("declares config candidates best-first, each valid and distinct", () => {
    for (const [qk, v, dtype] of CANDIDATE_PROBLEMS) {
      const problem = resolveProblem({ batch: 1, qHeads: 1, kvHeads: 1, qLen: 8, kvLen: 8, qkHeadDim: qk, vHeadDim: v, dtype });
      const candidates = cudaBackend.configCandidates(problem, [128, 128], { mask: causal, score: null });
      expect(candidates.length).toBeGreaterThan(1);
      expect(new Set(candidates.map((c) => JSON.stringify(c))).size).toBe(candidates.length);
      for (const config of candidates) {
        const spec = makeSpec({ mask: causal, score: null, qkHeadDim: qk, vHeadDim: v, dtype, sparseBlock: [128, 128], config });
        expect(() => generateCuda(spec)).not.toThrow();
      }
      expect(candidates[0].options?.kernel ?? (dtype === "f32" ? "simt" : "mma")).toBe(dtype === "f32" ? "simt" : "mma");
    }
    // BlockMask blocks too small for 16-row tensor-core tiles: half inputs fall back to the CUDA-core kernel.
    const small = cudaConfigCandidates({ qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" }, [8, 8]);
    expect(small.length).toBeGreaterThan(0);
    expect(small.every((c) => c.options?.kernel === "simt")).toBe(true);
  });

  it("rejects configs a kernel cannot run, saying what to change", () => {
    const spec = (dtype: StorageDType, config: KernelConfig, d = 64) =>
      makeSpec({ mask: causal, score: null, qkHeadDim: d, vHeadDim: d, dtype, sparseBlock: [128, 128], config });
    expect(() => generateCuda(spec("f32", { ...DEFAULT_CONFIG, blockN: 64 }, 256))).toThrow(/shared memory.*smaller blockN/);
    expect(() => generateCuda(spec("bf16", { blockM: 64, blockN: 64, numWarps: 8, numStages: 2, prescaleQk: false }))).toThrow(/numWarps 4 or 2/);
    expect(() => generateCuda(spec("bf16", { blockM: 64, blockN: 64, numWarps: 4, numStages: 1, prescaleQk: false }))).toThrow(/numStages/);
    expect(() => generateCuda(spec("bf16", { blockM: 128, blockN: 128, numWarps: 8, numStages: 4, prescaleQk: false }, 256))).toThrow(
      /shared memory.*fewer stages/,
    );
    expect(() => generateCuda(spec("f32", { ...DEFAULT_CONFIG, options: { kernel: "mma" } }))).toThrow(FlexAttnError);
    expect(() => generateCuda(spec("bf16", { ...DEFAULT_CONFIG, options: { kernal: "simt" } }))).toThrow(/unknown CUDA option "kernal"/);
  });

  it("generates a Python module with the Triton module's signature and the .cu inside", async () => {
    const spec = caseSpec("alibi-causal", "bf16");
    const artifact = generateCuda(spec);
    const py = cudaPythonModule(spec, artifact);
    expect(py).toContain(
      "def flex_attention(q, k, v, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None, full_kv_indices=None,\n" +
        "                   *, score_alibiSlopes, scale=None, return_lse=RETURN_LSE_DEFAULT, q_offset=0, kv_offset=0, out=None):",
    );
    expect(py).toContain(`SPEC_HASH = "${artifact.specHash}"`);
    expect(py).toContain(artifact.source);
    if (await requireTool("python3", ["--version"], "parse the generated Python module")) {
      const dir = mkdtempSync(join(tmpdir(), "flexattn-cu-py-"));
      writeFileSync(join(dir, "m.py"), py);
      await run("python3", ["-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())", join(dir, "m.py")]);
    }
  });

  it("every conformance kernel and every config candidate compiles for sm_80 and sm_90a; default configs spill nothing", async () => {
    if (!(await requireTool("nvcc", ["--version"], "compile the generated CUDA kernels"))) return;
    const dir = mkdtempSync(join(tmpdir(), "flexattn-cu-"));
    const conformance = conformanceSpecs();
    const candidates = candidateSpecs();
    // The host launcher compiles too (once: the batches compile device code only).
    const host = join(dir, "host.cu");
    writeFileSync(host, generateCuda(caseSpec("causal", "bf16")).source);
    const [confReports, candReports] = await Promise.all([
      compileBatch(conformance, dir, "conformance"),
      compileBatch(candidates, dir, "candidates"),
      run("nvcc", ["-O3", ARCHS[0].flag, "-c", host, "-o", `${host}.o`]),
    ]);
    for (const [reports, specs] of [[confReports, conformance], [candReports, candidates]] as const) {
      for (const arch of ARCHS) expect(reports.get(arch.name)!.size).toBe(specs.length);
    }
    // Default configs of the tensor-core kernel: no spills and no local memory at all.
    const problems: string[] = [];
    conformance.forEach((spec, i) => {
      if (spec.dtype === "f32") return;
      for (const arch of ARCHS) {
        const r = confReports.get(arch.name)!.get(i)!;
        if (r.spillStores || r.spillLoads || r.stackBytes) problems.push(`${i} ${spec.dtype} d${spec.qkHeadDim} ${arch.name}: ${JSON.stringify(r)}`);
      }
    });
    candidates.forEach((spec, i) => {
      const isDefault = JSON.stringify(spec.config) === JSON.stringify(cudaConfigCandidates(spec, [128, 128])[0]);
      if (!isDefault || spec.dtype === "f32") return;
      for (const arch of ARCHS) {
        const r = candReports.get(arch.name)!.get(i)!;
        if (r.spillStores || r.spillLoads || r.stackBytes) problems.push(`default d${spec.qkHeadDim}/${spec.vHeadDim} ${arch.name}: ${JSON.stringify(r)}`);
      }
    });
    expect(problems).toEqual([]);
  }, 2_400_000);
});
