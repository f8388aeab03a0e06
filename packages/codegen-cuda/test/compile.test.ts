import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { FlexAttnError, buffer, tanh, toF32, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import {
  CONFORMANCE_CASES, DEFAULT_CONFIG, type DeviceTarget, type KernelConfig, type KernelSpec, type StorageDType, instantiateCase, makeSpec,
  resolveProblem,
} from "@flexattn/template";
import {
  CONSUMER_REGISTERS, CUDA_ENTRY, DEFAULT_DYNAMIC_SHARED_LIMIT, PRODUCER_REGISTERS, PRODUCER_THREADS, SM90_SHARED_LIMIT, SM90_PAIRED_SHARED_LIMIT, tmaConsumerRegisters,
  TMA_PRODUCER_REGISTERS, cudaBackend, cudaTmaConfigs, cudaConfigCandidates, cudaConfigName, cudaOptions, cudaPythonModule, cudaSharedLimit,
  generateCuda, wgmmaProbeSource, POLY_EXP2, RESCALE_SLACK_LOG2,
} from "@flexattn/codegen-cuda";

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

const SM90: DeviceTarget = { signature: "cuda sm_90a", limits: { arch: "sm_90a" } };
const TARGETS = [undefined, SM90];

const isWgmma = (spec: KernelSpec) => cudaOptions(spec.config, spec.dtype).kernel === "wgmma";

function caseSpec(name: string, dtype?: StorageDType, config?: KernelConfig, target?: DeviceTarget, blockSize?: [number, number]): KernelSpec {
  const found = CONFORMANCE_CASES.find((c) => c.name === name)!;
  const cs = blockSize ? { ...found, blockSize } : found;
  const inst = instantiateCase(dtype ? { ...cs, problem: { ...cs.problem, dtype } } : cs, 1);
  const p = inst.problem;
  return makeSpec({
    mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype, returnLse: p.returnLse,
    sparseBlock: inst.blockMask.blockSize, config: config ?? cudaBackend.configCandidates(p, inst.blockMask.blockSize, inst, target)[0],
  });
}

const causal = traceMaskMod((_b, _h, q, kv) => q.ge(kv));
const softcap = traceScoreMod((s, _b, _h, _q, _kv) => tanh(s.div(30)).mul(30));

/** The values of a source's `constexpr int` constants, evaluated in order (their expressions are plain arithmetic). */
function constexprs(source: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const [, name, expr] of source.matchAll(/^constexpr int (\w+) = ([^;]+);/gm)) {
    const value = new Function(...values.keys(), `return Math.trunc(${expr});`)(...values.values()) as number;
    values.set(name, value);
  }
  return values;
}

/** Problems whose every config candidate must compile: head dims, qk ≠ v, both half dtypes, f32. */
const CANDIDATE_PROBLEMS: [number, number, StorageDType][] = [
  [64, 64, "bf16"], [128, 128, "bf16"], [256, 256, "f16"], [80, 80, "bf16"], [48, 24, "f16"], [16, 16, "bf16"], [128, 128, "f32"],
];

/** Every config candidate of those problems for the sm_80 and the sm_90a target, with whether it is that target's default. */
function candidateSpecs(): { spec: KernelSpec; isDefault: boolean }[] {
  const all = CANDIDATE_PROBLEMS.flatMap(([qkHeadDim, vHeadDim, dtype]) =>
    TARGETS.flatMap((target) =>
      cudaConfigCandidates({ qkHeadDim, vHeadDim, dtype }, [128, 128], undefined, target).map((config, i) => ({
        spec: makeSpec({ mask: causal, score: softcap, qkHeadDim, vHeadDim, dtype, returnLse: true, sparseBlock: [128, 128], config }),
        isDefault: i === 0,
      })),
    ),
  ).concat(
    // The TMA forms of the warp-specialized candidates, which a user may name.
    CANDIDATE_PROBLEMS.flatMap(([qkHeadDim, vHeadDim, dtype]) =>
      dtype === "f32" ? [] : cudaTmaConfigs({ qkHeadDim, vHeadDim, dtype }, [128, 128]).map((config) => ({
        spec: makeSpec({ mask: causal, score: softcap, qkHeadDim, vHeadDim, dtype, returnLse: true, sparseBlock: [128, 128], config }),
        isDefault: false,
      })),
    ),
    // Each target's default with the softmax under study (lazy rescaling, part of exp2 on the FMA units), which a user may ask for.
    CANDIDATE_PROBLEMS.flatMap(([qkHeadDim, vHeadDim, dtype]) =>
      dtype === "f32" ? [] : TARGETS.map((target) => {
        const config = cudaConfigCandidates({ qkHeadDim, vHeadDim, dtype }, [128, 128], undefined, target)[0];
        return {
          spec: makeSpec({ mask: causal, score: softcap, qkHeadDim, vHeadDim, dtype, returnLse: true, sparseBlock: [128, 128],
            config: { ...config, options: { ...config.options, lazyRescale: true, polyExp2: 2 } } }),
          isDefault: false,
        };
      }),
    ),
    // Each target's default with the approximate tanh, which a user may ask for.
    CANDIDATE_PROBLEMS.flatMap(([qkHeadDim, vHeadDim, dtype]) =>
      TARGETS.map((target) => {
        const config = cudaConfigCandidates({ qkHeadDim, vHeadDim, dtype }, [128, 128], undefined, target)[0];
        return {
          spec: makeSpec({ mask: causal, score: softcap, qkHeadDim, vHeadDim, dtype, returnLse: true, sparseBlock: [128, 128],
            config: { ...config, options: { ...config.options, approxTanh: true } } }),
          isDefault: false,
        };
      }),
    ),
  );
  const specs = unique(all.map((c) => c.spec));
  const defaults = new Set(all.filter((c) => c.isDefault).map((c) => generateCuda(c.spec).specHash));
  return specs.map((spec) => ({ spec, isDefault: defaults.has(generateCuda(spec).specHash) }));
}

/** A conformance case on the sm_90a target's first overlapped wgmma config (bf16, 128×128 blocks). */
function overlapSpec(name: string): KernelSpec {
  const base = caseSpec(name, "bf16", undefined, SM90, [128, 128]);
  const config = cudaConfigCandidates(base, [128, 128], undefined, SM90).find((c) => c.options?.overlap === true)!;
  return caseSpec(name, "bf16", config, SM90, [128, 128]);
}

/**
 * Every conformance case in its dtype, and the f32 ones again in bf16 and f16 (the tensor-core
 * kernel), for the sm_80 target; and every case for the sm_90a target's wgmma kernel as the device
 * harness runs it (bf16 with 128×128 BlockMask blocks, f16 with 64×64, and the overlapped config).
 */
function conformanceSpecs(): KernelSpec[] {
  return unique(
    CONFORMANCE_CASES.flatMap((c) => [
      ...(c.problem.dtype === "f32" ? (["f32", "bf16", "f16"] as const) : [c.problem.dtype as StorageDType]).map((d) => caseSpec(c.name, d)),
      caseSpec(c.name, "bf16", undefined, SM90, [128, 128]),
      caseSpec(c.name, "f16", undefined, SM90, [64, 64]),
      overlapSpec(c.name),
    ]),
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
function batchSource(specs: KernelSpec[], include: (spec: KernelSpec) => boolean): string {
  return specs
    .map((spec, i) => include(spec) ? `namespace k${i} {
#define ${CUDA_ENTRY} ${CUDA_ENTRY}_${i}
#define ${CUDA_ENTRY}_launch ${CUDA_ENTRY}_launch_${i}
${generateCuda(spec).source}
#undef ${CUDA_ENTRY}
#undef ${CUDA_ENTRY}_launch
}` : "")
    .join("\n");
}

interface PtxasReport {
  registers: number;
  /** Static shared memory: must be 0, the launchers pass all of a kernel's shared memory dynamically. */
  staticShared: number;
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
    const smem = /(\d+) bytes smem/.exec(b);
    out.set(Number(m[1]), { registers: Number(regs[1]), staticShared: smem ? Number(smem[1]) : 0, stackBytes: Number(frame[1]), spillStores: Number(frame[2]), spillLoads: Number(frame[3]) });
  }
  return out;
}

/** The architectures each kernel compiles for: wgmma kernels only exist for sm_90a. */
const ARCHS = [
  { flag: "-gencode=arch=compute_80,code=sm_80", name: "sm_80", runs: (spec: KernelSpec) => !isWgmma(spec) },
  { flag: "-gencode=arch=compute_90a,code=sm_90a", name: "sm_90a", runs: (_spec: KernelSpec) => true },
];

/**
 * Compile a batch for sm_80 and sm_90a (the two in parallel); the ptxas reports by kernel index.
 * About 0.7 s of CPU per kernel and architecture (nvcc 13), mostly the front end.
 */
async function compileBatch(specs: KernelSpec[], dir: string, tag: string): Promise<Map<string, Map<number, PtxasReport>>> {
  const reports = await Promise.all(
    ARCHS.map(async (a) => {
      const file = join(dir, `${tag}-${a.name}.cu`);
      writeFileSync(file, batchSource(specs, a.runs));
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

  it("reads a document mask's ids once per query row and once per key column and tile, not per element", () => {
    for (const spec of [caseSpec("document-causal", "bf16"), caseSpec("document-causal", "bf16", undefined, SM90, [128, 128])]) {
      const { source } = generateCuda(spec);
      const c = spec.config;
      const mTiles = isWgmma(spec) ? 1 : c.blockM / (16 * c.numWarps);
      const loads = source.match(/mask_docIds\[/g) ?? [];
      // Two query rows per 16-row tile, two key columns per 8-column tile of the lane.
      expect(loads).toHaveLength(2 * mTiles + c.blockN / 4);
      const loop = source.indexOf("for (; t < part_tiles");
      expect(source.indexOf("mask_docIds[(row0")).toBeLessThan(loop);
      expect(source.indexOf("mask_docIds[(n0")).toBeGreaterThan(loop);
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

  it("ranks tiles by head dim and what the mods compute (sm_90a): TMA where the head dims allow it, two blocks per SM at d = 64", () => {
    const docs = buffer(Int32Array.from({ length: 256 }, (_, i) => i >> 6), { name: "docs" });
    const documentMask = traceMaskMod((_b, _h, q, kv) => docs.at(q).eq(docs.at(kv)));
    const first = (d: number, mask: typeof causal | null, score: typeof softcap | null) =>
      cudaConfigName(cudaConfigCandidates({ qkHeadDim: d, vHeadDim: d, dtype: "bf16" }, [128, 128], { mask, score }, SM90)[0], "bf16");
    expect(first(64, causal, null)).toBe("128x64 w8 s2 wgmma ws tma x2");
    expect(first(64, documentMask, null)).toBe("128x64 w8 s2 wgmma ws tma x2");
    expect(first(64, causal, softcap)).toBe("128x64 w8 s2 wgmma ws tma x2");
    expect(first(128, causal, null)).toBe("128x128 w8 s3 wgmma overlap ws tma");
    expect(first(128, documentMask, null)).toBe("128x128 w8 s3 wgmma overlap ws tma");
    expect(first(128, causal, softcap)).toBe("128x128 w8 s3 wgmma overlap ws tma");
    // Head dims a tensor map cannot box (not multiples of 64) keep the cp.async kernels' order.
    expect(first(96, causal, null)).toBe("128x128 w8 s3 wgmma overlap");
    expect(first(96, causal, softcap)).toBe("128x128 w8 s3 wgmma ws");
    expect(first(48, documentMask, null)).toBe("128x128 w8 s3 wgmma overlap");
    expect(first(48, causal, null)).toBe("128x64 w8 s2 wgmma");
    // On sm_80 only a gathering mask at d ≤ 64 moves a tile to the front (16 rows per warp over 128 keys); the rest is mod-independent.
    const sm80 = (d: number, mask: typeof causal | null, score: typeof softcap | null) =>
      cudaConfigCandidates({ qkHeadDim: d, vHeadDim: d, dtype: "bf16" }, [128, 128], { mask, score }).map((c) => cudaConfigName(c, "bf16"));
    expect(sm80(128, documentMask, softcap)).toEqual(sm80(128, null, null));
    expect(sm80(64, causal, softcap)).toEqual(sm80(64, null, null));
    expect(sm80(64, documentMask, null)[0]).toBe("128x128 w8 s2 mma");
    expect([...sm80(64, documentMask, null)].sort()).toEqual([...sm80(64, null, null)].sort());
  });

  it("launches every candidate with the shared memory its kernel declares, opting in above the default limit", () => {
    for (const [qkHeadDim, vHeadDim, dtype] of CANDIDATE_PROBLEMS) {
      for (const target of TARGETS) {
        for (const config of cudaConfigCandidates({ qkHeadDim, vHeadDim, dtype }, [128, 128], undefined, target)) {
          const spec = makeSpec({ mask: causal, score: softcap, qkHeadDim, vHeadDim, dtype, sparseBlock: [128, 128], config });
          const a = generateCuda(spec);
          const what = `${dtype} d${qkHeadDim}/${vHeadDim} ${JSON.stringify(config)}`;
          const bytes = a.launch.sharedMemoryBytes!;
          // The kernel's SMEM_BYTES (what the extern "C" launcher passes) is the artifact's number (the Python module's).
          expect(constexprs(a.source).get("SMEM_BYTES"), what).toBe(bytes);
          expect(constexprs(a.source).get("BLOCK_THREADS"), what).toBe(a.launch.threadsPerProgram);
          expect(a.source, what).not.toMatch(/^\s*__shared__/m);
          expect(a.source, what).toContain("extern __shared__");
          expect(bytes, what).toBeLessThanOrEqual(cudaSharedLimit(cudaOptions(config, dtype)));
          const py = cudaPythonModule(spec, a, { configs: 1 });
          expect(py, what).toContain(`threads=${a.launch.threadsPerProgram}, smem=${bytes},`);
          expect(py, what).toContain('shared_mem=kern["smem"]');
          expect(py, what).toContain(`if kern["smem"] > ${DEFAULT_DYNAMIC_SHARED_LIMIT}:\n            fn.max_dynamic_shared_size_bytes = kern["smem"]`);
          expect(a.source, what).toContain(`if (SMEM_BYTES > ${DEFAULT_DYNAMIC_SHARED_LIMIT}) {`);
        }
      }
    }
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
    const wgmma = (blockM: number, blockN: number, numWarps: number, numStages: number, options: Record<string, string | boolean>, d = 64) =>
      spec("bf16", { blockM, blockN, numWarps, numStages, prescaleQk: false, options: { kernel: "wgmma", ...options } }, d);
    expect(() => generateCuda(wgmma(32, 64, 2, 2, {}))).toThrow(/multiple of 64/);
    expect(() => generateCuda(wgmma(128, 64, 4, 2, {}))).toThrow(/numWarps must be 8/);
    expect(() => generateCuda(wgmma(128, 64, 8, 2, { overlap: true }))).toThrow(/numStages must be at least 3/);
    expect(() => generateCuda(wgmma(128, 128, 8, 4, {}, 256))).toThrow(/shared memory.*fewer stages/);
    expect(() => generateCuda(spec("bf16", { ...DEFAULT_CONFIG, options: { overlap: true } }))).toThrow(/"wgmma" kernel only/);
    expect(() => generateCuda(wgmma(128, 64, 8, 3, { overlap: true }))).not.toThrow();
    expect(() => generateCuda(spec("bf16", { ...DEFAULT_CONFIG, options: { warpSpecialized: true } }))).toThrow(/warpSpecialized applies to the "wgmma" kernel only/);
    expect(() => generateCuda(wgmma(128, 64, 8, 2, { warpSpecialized: "yes" }))).toThrow(/warpSpecialized must be a boolean/);
    expect(() => generateCuda(wgmma(64, 64, 4, 2, { warpSpecialized: true }))).toThrow(/warpSpecialized takes blockM 128/);
    expect(() => generateCuda(wgmma(128, 64, 8, 2, { warpSpecialized: true }))).not.toThrow();
    expect(() => generateCuda(wgmma(128, 64, 8, 2, { tma: true }))).toThrow(/tma loads through the producer warpgroup: it needs warpSpecialized/);
    expect(() => generateCuda(spec("bf16", { ...DEFAULT_CONFIG, options: { tma: true } }))).toThrow(/tma applies to the "wgmma" kernel only/);
    expect(() => generateCuda(wgmma(128, 64, 8, 2, { warpSpecialized: true, tma: true }, 80))).toThrow(/tma takes head dims that are multiples of 64.*80\/80/);
    expect(() => generateCuda(wgmma(128, 64, 8, 2, { warpSpecialized: true, tma: true }))).not.toThrow();
  });

  it("blocksPerSm 2: the TMA kernel sized for two blocks per SM (launch bounds, register split, shared memory)", () => {
    const config = (blockN: number, numStages: number, extra: Record<string, boolean | number> = {}): KernelConfig => ({
      blockM: 128, blockN, numWarps: 8, numStages, prescaleQk: false, options: { kernel: "wgmma", warpSpecialized: true, tma: true, blocksPerSm: 2, ...extra },
    });
    const make = (c: KernelConfig, d = 64) => generateCuda(makeSpec({ mask: causal, score: softcap, qkHeadDim: d, vHeadDim: d, dtype: "bf16", sparseBlock: [128, 128], config: c }));
    // Each block's pool is what it launched with (64K over two blocks of 384 threads, in steps of 8: 80); the
    // producer's release buys the compute warps 104, and both splits fit their pools.
    expect([tmaConsumerRegisters(1), tmaConsumerRegisters(2)]).toEqual([240, 104]);
    for (const blocks of [1, 2] as const) {
      const launched = Math.floor(65536 / (384 * blocks) / 8) * 8;
      expect(PRODUCER_THREADS * TMA_PRODUCER_REGISTERS + 256 * tmaConsumerRegisters(blocks)).toBeLessThanOrEqual(384 * launched);
    }
    const a = make(config(64, 4));
    expect(a.source).toContain("__launch_bounds__(BLOCK_THREADS, 2)");
    expect(a.source).toContain(`setmaxnreg_inc<${tmaConsumerRegisters(2)}>();`);
    expect(a.launch.sharedMemoryBytes!).toBeLessThanOrEqual(SM90_PAIRED_SHARED_LIMIT);
    expect(2 * (a.launch.sharedMemoryBytes! + 1024)).toBeLessThanOrEqual(228 * 1024);
    expect(cudaConfigName(config(64, 4), "bf16")).toBe("128x64 w8 s4 wgmma ws tma x2");
    // One block per SM pads its shared memory past half the SM; two do not.
    expect(make({ ...config(64, 4), options: { ...config(64, 4).options, blocksPerSm: 1 } }).launch.sharedMemoryBytes!).toBeGreaterThan(SM90_SHARED_LIMIT / 2);
    expect(() => make(config(128, 4))).toThrow(/two blocks per SM take at most/);
    expect(() => make(config(64, 4, { tma: false }))).toThrow(/blocksPerSm 2 applies to the TMA kernel/);
    expect(() => make(config(64, 4, { blocksPerSm: 3 }))).toThrow(/blocksPerSm must be 1 or 2/);
  });

  it("approxTanh renders a mod's tanh as the SFU's tanh.approx.f32 in every kernel, and only when asked", () => {
    for (const [dtype, target] of [["f32", undefined], ["bf16", undefined], ["bf16", SM90]] as const) {
      const config = cudaConfigCandidates({ qkHeadDim: 64, vHeadDim: 64, dtype }, [128, 128], undefined, target)[0];
      const make = (approxTanh?: boolean) => generateCuda(makeSpec({
        mask: causal, score: softcap, qkHeadDim: 64, vHeadDim: 64, dtype, sparseBlock: [128, 128],
        config: approxTanh === undefined ? config : { ...config, options: { ...config.options, approxTanh } },
      }));
      const what = `${dtype} ${cudaConfigName(config, dtype)}`;
      const kernel = (src: string) => src.slice(src.indexOf(`${CUDA_ENTRY}(`));
      expect(kernel(make().source), what).toMatch(/tanhf\(/);
      expect(kernel(make().source), what).not.toContain("fa_tanh_approx(");
      expect(make(false).specHash, what).not.toBe(make(true).specHash);
      expect(kernel(make(true).source), what).toContain("fa_tanh_approx(");
      expect(kernel(make(true).source), what).not.toMatch(/tanhf\(/);
      expect(make(true).source).toContain('asm("tanh.approx.f32 %0, %1;"');
    }
    const spec = makeSpec({ mask: causal, score: softcap, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16", sparseBlock: [128, 128], config: { ...DEFAULT_CONFIG, options: { approxTanh: 1 } } });
    expect(() => generateCuda(spec)).toThrow(/approxTanh must be a boolean/);
    expect(cudaConfigName({ ...DEFAULT_CONFIG, options: { approxTanh: true } }, "bf16")).toMatch(/ approx-tanh$/);
  });

  it("divides by a constant through its reciprocal in the half-input kernels, exactly in the f32 kernel", () => {
    const divides = traceScoreMod((s, _b, _h, q, _kv) => tanh(s.div(30)).mul(30).add(s.div(toF32(q).add(1))));
    const source = (dtype: StorageDType, target?: DeviceTarget) => {
      const config = cudaConfigCandidates({ qkHeadDim: 64, vHeadDim: 64, dtype }, [128, 128], undefined, target)[0];
      const src = generateCuda(makeSpec({ mask: causal, score: divides, qkHeadDim: 64, vHeadDim: 64, dtype, sparseBlock: [128, 128], config })).source;
      return src.slice(src.indexOf(`${CUDA_ENTRY}(`));
    };
    for (const [dtype, target] of [["bf16", undefined], ["bf16", SM90], ["f16", SM90]] as const) {
      const kernel = source(dtype, target);
      expect(kernel, `${dtype} ${target?.signature}`).toContain(", 0.0333333351f)");
      // Only the constant divisor: q + 1 is not known when the kernel is generated.
      expect(kernel.match(/__fdiv_rn\(/g)?.length, `${dtype} ${target?.signature}`).toBeGreaterThan(0);
      expect(kernel, `${dtype} ${target?.signature}`).not.toMatch(/__fdiv_rn\([^;]*, 30\.0000000f\)/);
    }
    const exact = source("f32");
    expect(exact).toMatch(/__fdiv_rn\([^;]*, 30\.0000000f\)/);
    expect(exact).not.toContain("0.0333333351f");
  });

  it("lazyRescale and polyExp2 change the tensor-core kernels' softmax only when asked, and are checked", () => {
    for (const target of [undefined, SM90]) {
      const config = cudaConfigCandidates({ qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" }, [128, 128], undefined, target)[0];
      const make = (extra: Record<string, boolean | number>) => generateCuda(makeSpec({
        mask: causal, score: softcap, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16", sparseBlock: [128, 128],
        config: { ...config, options: { ...config.options, ...extra } },
      })).source;
      const kernel = (src: string) => src.slice(src.indexOf(`${CUDA_ENTRY}(`));
      const what = cudaConfigName(config, "bf16");
      const eager = kernel(make({}));
      expect(eager, what).toMatch(/= exp2f\(s\[j\]\[2 \* r \+ c\] - m_ref\)/);
      expect(eager, what).not.toMatch(/moved|fa_exp2/);
      const lazy = kernel(make({ lazyRescale: true }));
      expect(lazy, what).toContain(`const bool moved = m_new > m_i[mt][r] + ${RESCALE_SLACK_LOG2}.0f;`);
      expect(lazy, what).toMatch(/if \(moved\) \{\s+const float alpha = fa_exp2\(m_i\[mt\]\[r\] - m_ref\);/);
      expect(lazy, what).not.toContain("fa_exp2_poly(");
      const poly = kernel(make({ lazyRescale: true, polyExp2: 2 }));
      expect(poly, what).toContain("(j % 8 < 2 ? fa_exp2_poly(s[j][2 * r + c] - m_ref) : fa_exp2(s[j][2 * r + c] - m_ref))");
    }
    const options = (extra: Record<string, unknown>, dtype: StorageDType = "bf16") =>
      cudaOptions({ ...DEFAULT_CONFIG, options: extra as Record<string, boolean | number> }, dtype);
    expect(options({ polyExp2: 3 }).polyExp2).toBe(3);
    expect(() => options({ polyExp2: 5 })).toThrow(/polyExp2 .* an integer 0–4, got 5/);
    expect(() => options({ polyExp2: 1.5 })).toThrow(/polyExp2/);
    expect(() => options({ lazyRescale: "yes" })).toThrow(/lazyRescale must be a boolean/);
    expect(() => options({ lazyRescale: true }, "f32")).toThrow(/tensor-core kernels/);
    expect(cudaConfigName({ ...DEFAULT_CONFIG, options: { lazyRescale: true, polyExp2: 1 } }, "bf16")).toMatch(/ lazy poly1$/);
  });

  it("polyExp2's polynomial: 2^x within 3e-6 relative in f32 arithmetic, 0 below 2^-126, NaN kept", () => {
    // fa_exp2_poly step by step, each f32 operation rounded as the GPU rounds it.
    const f = Math.fround;
    const [c4, c3, c2, c1, c0] = POLY_EXP2.map(Number);
    const bits = new DataView(new ArrayBuffer(4));
    const exp2Poly = (x0: number) => {
      const x = Number.isNaN(x0) ? x0 : Math.max(f(x0), -127);
      const shifted = f(x + 12582912);
      const n = f(shifted - 12582912);
      const t = f(x - n);
      let p = f(f(c4) * t + f(c3));
      for (const c of [c2, c1, c0]) p = f(p * t + f(c));
      bits.setFloat32(0, shifted);
      bits.setInt32(0, (bits.getInt32(0) << 23) + 0x3f800000);
      return f(p * bits.getFloat32(0));
    };
    let worst = 0;
    for (let x = -126; x <= RESCALE_SLACK_LOG2; x += 1 / 1024 + 1e-7) worst = Math.max(worst, Math.abs(exp2Poly(x) / 2 ** f(x) - 1));
    expect(worst).toBeLessThan(3e-6);
    expect(worst).toBeGreaterThan(1e-7);  // the check reaches the polynomial's own error
    expect(Math.abs(exp2Poly(0) - 1)).toBeLessThan(3e-6);
    for (const x of [-127, -200, Number.NEGATIVE_INFINITY]) expect(exp2Poly(x)).toBe(0);
    expect(exp2Poly(Number.NaN)).toBeNaN();
  });

  it("TMA wgmma: one producer thread copies each tile with a tensor map, the stage's barrier expecting exactly its bytes", () => {
    const generate = (d: number, config: KernelConfig) =>
      generateCuda(makeSpec({ mask: causal, score: softcap, qkHeadDim: d, vHeadDim: d, dtype: "bf16", sparseBlock: [128, 128], config }));
    for (const d of [64, 128]) {
      const tmaConfigs = cudaTmaConfigs({ qkHeadDim: d, vHeadDim: d, dtype: "bf16" }, [128, 128]);
      expect(tmaConfigs.length, `d ${d}`).toBeGreaterThan(0);
      for (const config of tmaConfigs) {
        const a = generate(d, config);
        const what = `d ${d} ${cudaConfigName(config, "bf16")}`;
        const k = constexprs(a.source);
        // A tile's boxes (64 columns × BLOCK_N rows of 2 bytes per slab) are what its full barrier waits for.
        const slabs = (2 * d) / 64;
        expect(k.get("STAGE_BYTES"), what).toBe(slabs * 64 * 2 * config.blockN);
        expect(k.get("Q_TILE_BYTES"), what).toBe((d / 64) * 64 * 2 * config.blockM);
        expect(a.source, what).toContain("const __grid_constant__ FlexTmaMaps tma_maps) {");
        expect(a.source, what).toContain("mbar_expect_tx(full, STAGE_BYTES);");
        expect(a.source, what).toContain("mbar_expect_tx(q_bar, Q_TILE_BYTES);");
        expect(a.source, what).toContain("mbar_init(full_bar + s * 8, 1);");
        expect(a.source, what).toContain(`setmaxnreg_dec<${TMA_PRODUCER_REGISTERS}>();`);
        // The split of the block's launch registers between producer and compute warps, for the blocks an SM holds.
        const blocks = config.options?.blocksPerSm === 2 ? 2 : 1;
        expect(a.source, what).toContain(`setmaxnreg_inc<${tmaConsumerRegisters(blocks)}>();`);
        expect(a.source, what).toContain(`__launch_bounds__(BLOCK_THREADS, ${blocks})`);
        const kernel = a.source.slice(a.source.indexOf(`${CUDA_ENTRY}(`), a.source.indexOf("#ifndef __CUDACC_RTC__"));
        // No thread copies with cp.async or element loads: every tile comes through TMA.
        expect(kernel, what).not.toMatch(/cp_async|copy_qk_tile|copy_v_tile|q_base|k_base/);
        // The C++ launcher builds the three maps with the tile's box heights.
        expect(a.source, what).toContain("flex_tma_map(&maps.q, q, batch, q_heads, q_len, DQK, stride_q_b, stride_q_h, stride_q_s, BLOCK_M)");
        expect(a.source, what).toContain("flex_tma_map(&maps.v, v, batch, kv_heads, kv_len, DV, stride_v_b, stride_v_h, stride_v_s, BLOCK_N)");
        const py = cudaPythonModule(makeSpec({ mask: causal, score: softcap, qkHeadDim: d, vHeadDim: d, dtype: "bf16", sparseBlock: [128, 128], config }), a, { configs: 1 });
        expect(py, what).toContain(`block_n=${config.blockN}, tma=True,`);
        expect(py, what).toContain("_TMA_DATA_TYPE = 9");
      }
    }
    // Head dims a tensor map's 64-column box cannot cover exactly get no TMA form, and no TMA candidate.
    expect(cudaTmaConfigs({ qkHeadDim: 80, vHeadDim: 80, dtype: "bf16" }, [128, 128])).toEqual([]);
    expect(cudaConfigCandidates({ qkHeadDim: 80, vHeadDim: 80, dtype: "bf16" }, [128, 128], undefined, SM90).some((c) => c.options?.tma)).toBe(false);
    // Every TMA candidate is one of the forms the conformance runs check.
    for (const d of [64, 128]) {
      const forms = cudaTmaConfigs({ qkHeadDim: d, vHeadDim: d, dtype: "bf16" }, [128, 128]).map((c) => JSON.stringify(c));
      const candidates = cudaConfigCandidates({ qkHeadDim: d, vHeadDim: d, dtype: "bf16" }, [128, 128], undefined, SM90).filter((c) => c.options?.tma);
      expect(candidates.length, `d ${d}`).toBeGreaterThan(0);
      for (const c of candidates) expect(forms, `d ${d}`).toContain(JSON.stringify(c));
    }
  });

  it("warp-specialized wgmma: a producer warpgroup loads, the compute warps wait only on mbarriers, one block per SM", () => {
    const config = (numStages: number, overlap: boolean, warpSpecialized = true): KernelConfig => ({
      blockM: 128, blockN: numStages > 3 ? 64 : 128, numWarps: 8, numStages, prescaleQk: false, options: { kernel: "wgmma", overlap, warpSpecialized },
    });
    const generate = (c: KernelConfig) =>
      generateCuda(makeSpec({ mask: causal, score: softcap, qkHeadDim: 128, vHeadDim: 128, dtype: "bf16", sparseBlock: [128, 128], config: c }));
    for (const [stages, overlap, lag] of [[2, false, 0], [3, false, 1], [3, true, 0], [4, true, 1]] as const) {
      const a = generate(config(stages, overlap));
      const what = `s${stages}${overlap ? " overlap" : ""}`;
      const k = constexprs(a.source);
      expect(a.launch.threadsPerProgram, what).toBe(256 + PRODUCER_THREADS);
      expect(k.get("BLOCK_THREADS"), what).toBe(256 + PRODUCER_THREADS);
      expect(k.get("HANDOVER_LAG"), what).toBe(lag);
      // Over half an SM's shared memory, one block per SM: the register split is made for one block's launch registers.
      expect(a.launch.sharedMemoryBytes! * 2, what).toBeGreaterThan(SM90_SHARED_LIMIT);
      expect(a.source, what).toContain(`setmaxnreg_dec<${PRODUCER_REGISTERS}>();`);
      expect(a.source, what).toContain(`setmaxnreg_inc<${CONSUMER_REGISTERS}>();`);
      expect(PRODUCER_THREADS * PRODUCER_REGISTERS + 256 * CONSUMER_REGISTERS).toBeLessThanOrEqual(65536);
      const kernel = a.source.slice(a.source.indexOf(`void __launch_bounds__(BLOCK_THREADS, 1) ${CUDA_ENTRY}(`));
      const compute = kernel.slice(kernel.indexOf(`setmaxnreg_inc<`));
      // Only the barrier after the mbarrier setup is block-wide; the compute warps wait on the stages' full barriers.
      expect(kernel.match(/__syncthreads\(\)/g)?.length, what).toBe(1);
      expect(compute, what).not.toMatch(/__syncthreads|issue_tile|cp_async_wait<[^0]/);
      expect(compute, what).toContain("mbar_wait(full_bar + ");
      expect(compute, what).toContain("if (lane == 0) mbar_arrive(empty_bar + (t % STAGES) * 8);");
    }
    // Without the option the kernel is the plain one: every warp loads, no mbarrier.
    const plain = generate(config(3, true, false));
    expect(plain.launch.threadsPerProgram).toBe(256);
    expect(plain.source).not.toMatch(/mbar_|setmaxnreg/);
    expect(cudaConfigName(config(3, true), "bf16")).toBe("128x128 w8 s3 wgmma overlap ws");
  });

  it("generates a Python module with the Triton module's signature and the .cu inside", async () => {
    const spec = caseSpec("alibi-causal", "bf16");
    const artifact = generateCuda(spec);
    const py = cudaPythonModule(spec, artifact);
    expect(py).toContain(
      "def flex_attention(q, k, v, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None, full_kv_indices=None,\n" +
        "                   *, score_alibiSlopes, scale=None, return_lse=RETURN_LSE_DEFAULT, q_offset=0, kv_offset=0, out=None, config=None,\n" +
        "                   autotune=None):",
    );
    expect(py).toContain(`SPEC_HASH = "${artifact.specHash}"`);
    expect(py).toContain(artifact.source);
    if (await requireTool("python3", ["--version"], "parse the generated Python module")) {
      const dir = mkdtempSync(join(tmpdir(), "flexattn-cu-py-"));
      writeFileSync(join(dir, "m.py"), py);
      await run("python3", ["-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())", join(dir, "m.py")]);
    }
  });

  it("every conformance kernel and every config candidate compiles (sm_80 and sm_90a; wgmma for sm_90a); defaults spill nothing", async () => {
    if (!(await requireTool("nvcc", ["--version"], "compile the generated CUDA kernels"))) return;
    const dir = mkdtempSync(join(tmpdir(), "flexattn-cu-"));
    const conformance = conformanceSpecs();
    const candidates = candidateSpecs();
    for (const c of CONFORMANCE_CASES) {
      for (const [dtype, block] of [["bf16", 128], ["f16", 64]] as const) expect(isWgmma(caseSpec(c.name, dtype, undefined, SM90, [block, block]))).toBe(true);
    }
    expect(candidates.filter((c) => isWgmma(c.spec) && c.isDefault).length).toBeGreaterThan(3);
    // The host launchers compile too (once per kernel kind: the batches compile device code only), and the device probe.
    // A score mod that reads no position (softcap) and no LSE: a user's build of them prints no nvcc warning.
    const positionFree = (config: KernelConfig) => makeSpec({ mask: causal, score: softcap, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16", sparseBlock: [128, 128], config });
    const sm90Default = cudaConfigCandidates({ qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" }, [128, 128], undefined, SM90)[0];
    const sm80Default = cudaConfigCandidates({ qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" }, [128, 128])[0];
    const hosts = [
      caseSpec("causal", "bf16"), caseSpec("causal", "f32"), caseSpec("causal", "bf16", undefined, SM90, [128, 128]),
      positionFree(sm80Default), positionFree(sm90Default),
      positionFree(cudaTmaConfigs({ qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" }, [128, 128])[0]),
    ];
    const [confReports, candReports, ...hostBuilds] = await Promise.all([
      compileBatch(conformance, dir, "conformance"),
      compileBatch(candidates.map((c) => c.spec), dir, "candidates"),
      ...[...hosts.map((spec) => generateCuda(spec).source), wgmmaProbeSource("bf16")].map((source, i) => {
        const host = join(dir, `host${i}.cu`);
        writeFileSync(host, source);
        return run("nvcc", ["-O3", ARCHS[1].flag, "-c", host, "-o", `${host}.o`]);
      }),
    ]);
    for (const [i, build] of hostBuilds.entries()) expect(build.stderr, `host build ${i}`).not.toMatch(/warning/i);
    for (const [reports, specs] of [[confReports, conformance], [candReports, candidates.map((c) => c.spec)]] as const) {
      for (const arch of ARCHS) expect(reports.get(arch.name)!.size).toBe(specs.filter(arch.runs).length);
    }
    // Every kernel takes its shared memory dynamically (what the launchers pass and opt into);
    // default configs of the tensor-core kernels: no spills and no local memory at all.
    const problems: string[] = [];
    const check = (reports: Map<string, Map<number, PtxasReport>>, spec: KernelSpec, i: number, strict: boolean, what: string) => {
      for (const arch of ARCHS.filter((a) => a.runs(spec))) {
        const r = reports.get(arch.name)!.get(i)!;
        if (r.staticShared) problems.push(`${what} ${arch.name}: static shared memory ${r.staticShared}`);
        if (strict && spec.dtype !== "f32" && (r.spillStores || r.spillLoads || r.stackBytes)) {
          problems.push(`${what} ${arch.name}: ${JSON.stringify(r)}`);
        }
      }
    };
    // A conformance kernel's config is a default when it is [0] of some target's candidates (the overlapped one is not).
    const isDefault = (spec: KernelSpec) =>
      TARGETS.some((t) => JSON.stringify(cudaConfigCandidates(spec, spec.sparseBlock, undefined, t)[0]) === JSON.stringify(spec.config));
    for (const [i, spec] of conformance.entries()) {
      check(confReports, spec, i, isDefault(spec), `conformance ${i} ${spec.dtype} d${spec.qkHeadDim} ${JSON.stringify(spec.config)}`);
    }
    for (const [i, { spec, isDefault }] of candidates.entries()) {
      // The two-blocks-per-SM forms are held to the defaults' standard: their point is that 104 registers suffice.
      const strict = isDefault || spec.config.options?.blocksPerSm === 2;
      check(candReports, spec, i, strict, `candidate d${spec.qkHeadDim}/${spec.vHeadDim} ${JSON.stringify(spec.config)}`);
    }
    expect(problems).toEqual([]);
  }, 2_400_000);
});
