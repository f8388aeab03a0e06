/**
 * Generates the CUDA device harness input into apps/bench/device/cuda/generated/:
 *   conformance/<case>_<dtype>[_wgmma<bs>].{cu,py,json} — every conformance case in its own dtype and,
 *       for the f32 cases, again in bf16 and f16, with the sm_80 target's default config (mma or simt
 *       kernel); and every case again for the sm_90a target's wgmma kernel (bf16 with 128×128
 *       BlockMask blocks: two warpgroups; f16 with 64×64: one), since the cases' own blocks are mostly
 *       too small for its 64-row tiles; and bf16 128×128 again with the wgmma pipeline the default does not
 *       take (overlapped or not), and with the loading it does not take (warp-specialized or not). Each:
 *       the .cu and its Python module; index.json names each kernel's config and its data file (a JSON
 *       with the inputs, tables, captured buffers and the float64 reference, shared by the kernels of
 *       one case, dtype and block size);
 *   bench/<name>.{cu,py} + bench.json + tables/*.json — the performance protocol's kernels (bf16;
 *       d=128 × 16 heads and d=64 × 32 heads; N ∈ {4k, 16k}, batch 16384/N): per entry the modules a
 *       user gets from the public compile ("default": `--target sm_90a`, "sm80": no target), each
 *       carrying the configs it tunes over; the sm_90a target's candidates best-first as one-kernel
 *       modules ("modules", research: each config timed alone); and our createBlockMask tables.
 *   probe/wgmma_probe.cu + probe.json — the wgmma building blocks alone (codegen-cuda wgmma-probe.ts).
 * Usage: npx tsx apps/bench/src/cuda-generate.ts [--seed N] [--only conformance|bench] [--variants V,…] [--match S,…] [--no-research]
 *   --variants: bench entries of these variants only; --match: conformance kernels whose name, and research modules
 *   whose file name, has one of the substrings (as run_cuda.py's --match); --no-research: the bench's public modules
 *   only. A device call carries 64 MiB at most; the whole output is over 100 MB.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { createBlockMask } from "@flexattn/blockmask";
import {
  type BlockMaskTables, CONFORMANCE_CASES, type ConformanceCase, type DeviceTarget, type KernelConfig, type KernelSpec, type ModMix,
  type ResolvedProblem, type StorageDType,
  capturedBuffers, instantiateCase, makeSpec, resolveProblem,
} from "@flexattn/template";
import { WGMMA_PROBE, cudaBackend, cudaConfigName, cudaPythonModule, cudaTarget, cudaTmaConfigs, wgmmaProbeSource } from "@flexattn/codegen-cuda";
import { compileWithSpec } from "flexattn";
import { b64, invocationJson, tablesJson } from "./device-export.js";
import { DOC_SEED, OPT_IN_VARIANTS, type OptInVariant, PROTOCOL_SHAPES, PROTOCOL_TOKENS, PROTOCOL_VARIANTS, type ProtocolVariant } from "./protocol.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "device", "cuda", "generated");
const args = process.argv.slice(2);
const seed = args.includes("--seed") ? Number(args[args.indexOf("--seed") + 1]) : Date.now() & 0x7fffffff;
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : null;
const listArg = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1].split(",").filter(Boolean) : null);
const variantsArg = listArg("--variants");
const matchArg = listArg("--match");
const research = !args.includes("--no-research");
const matches = (name: string) => !matchArg || matchArg.some((m) => name.includes(m));

/** The .cu and the Python module of a spec, written once per spec hash. */
function writeKernel(dir: string, stem: string, spec: KernelSpec) {
  const artifact = cudaBackend.generate(spec);
  writeFileSync(join(dir, `${stem}.cu`), artifact.source);
  // One kernel per module: the harness times each config as a module of its own.
  writeFileSync(join(dir, `${stem}.py`), cudaPythonModule(spec, artifact, { configs: 1 }));
  return artifact;
}

function buffersJson(spec: KernelSpec) {
  return capturedBuffers(spec).map((b) => {
    const s = b.graph.buffers[b.slot];
    return { name: b.name, dtype: s.dtype, shape: s.shape, data: b64(s.data!) };
  });
}

const SM90 = cudaTarget("sm_90a");
const roundUp64 = (d: number) => Math.ceil(d / 64) * 64;

/** The kernel kind a config selects (the backend's default per dtype when options name none). */
const kernelOf = (config: { options?: Readonly<Record<string, unknown>> }, dtype: StorageDType) =>
  (config.options?.kernel as string | undefined) ?? (dtype === "f32" ? "simt" : "mma");

function generateConformance(): void {
  const dir = join(ROOT, "conformance");
  mkdirSync(dir, { recursive: true });
  const index: unknown[] = [];
  // pick: which of the target's candidates (default: [0]); a wgmma variant skips cases it has no config for.
  type Pick = (candidates: KernelConfig[], problem: ResolvedProblem, mods: ModMix) => KernelConfig | undefined;
  const write = (cs: ConformanceCase, i: number, dtype: StorageDType, target: DeviceTarget | undefined, suffix: string, pick: Pick = (c) => c[0]) => {
    const inst = instantiateCase({ ...cs, problem: { ...cs.problem, dtype } }, seed + i);
    const p = inst.problem;
    const config = pick(cudaBackend.configCandidates(p, cs.blockSize, inst, target), p, inst);
    if (!config) return;
    const kernel = kernelOf(config, dtype);
    if (target && kernel !== "wgmma") return;
    const spec = makeSpec({
      mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype,
      returnLse: p.returnLse, sparseBlock: cs.blockSize, config,
    });
    const file = `${String(i).padStart(2, "0")}_${cs.name.replace(/[^A-Za-z0-9]+/g, "_")}_${dtype}${suffix ? `_${suffix}` : ""}`;
    const name = `${cs.name} [${dtype}]${suffix ? ` ${suffix}` : ""}`;
    if (!matches(name)) return;
    const artifact = writeKernel(dir, file, spec);
    // Kernels of one case, dtype and block size share the inputs (same seed): one data file.
    const dataKey = `${i} ${dtype} ${cs.blockSize.join("x")} ${p.qkHeadDim}/${p.vHeadDim}`;
    if (!dataFiles.has(dataKey)) {
      writeFileSync(join(dir, `${file}.json`), JSON.stringify({ seed: inst.seed, buffers: buffersJson(spec), ...invocationJson(inst) }));
      dataFiles.set(dataKey, file);
    }
    index.push({ name, file, data: dataFiles.get(dataKey), specHash: artifact.specHash, kernel, config });
  };
  const dataFiles = new Map<string, string>();
  CONFORMANCE_CASES.forEach((cs, i) => {
    const dtypes: StorageDType[] = cs.problem.dtype === "f32" ? ["f32", "bf16", "f16"] : [cs.problem.dtype as StorageDType];
    for (const dtype of dtypes) write(cs, i, dtype, undefined, "");
    write({ ...cs, blockSize: [128, 128] }, i, "bf16", SM90, "wgmma128");
    write({ ...cs, blockSize: [64, 64] }, i, "f16", SM90, "wgmma64");
    // The wgmma pipeline the default does not take (overlap: S of the next tile during this tile's softmax, or not).
    const otherPipeline = (c: KernelConfig[]) => c.find((x) => x.options?.kernel === "wgmma" && !x.options?.overlap !== !c[0].options?.overlap);
    write({ ...cs, blockSize: [128, 128] }, i, "bf16", SM90, "wgmma128alt", otherPipeline);
    // And the loading the default does not take (a producer warpgroup, or every warp loading).
    const otherLoading = (c: KernelConfig[]) => c.find((x) => x.options?.kernel === "wgmma" && !x.options?.warpSpecialized !== !c[0].options?.warpSpecialized);
    write({ ...cs, blockSize: [128, 128] }, i, "bf16", SM90, "wgmma128load", otherLoading);
    // And a TMA form, head dims rounded up to the multiples of 64 that tensor maps take: by turns over the cases
    // without overlap, with it, and two blocks per SM (where the head dims allow it).
    const dims = { qkHeadDim: roundUp64(cs.problem.qkHeadDim), vHeadDim: roundUp64(cs.problem.vHeadDim) };
    const tma: Pick = (_, problem, mods) => {
      const forms = cudaTmaConfigs(problem, [128, 128], mods);
      const paired = (c: KernelConfig) => c.options?.blocksPerSm === 2;
      const turn = [(c: KernelConfig) => !c.options?.overlap && !paired(c), (c: KernelConfig) => c.options?.overlap === true, paired][i % 3];
      return forms.find(turn) ?? forms[0];
    };
    write({ ...cs, problem: { ...cs.problem, ...dims }, blockSize: [128, 128] }, i, "bf16", SM90, "wgmma128tma", tma);
    // The softmax under study (lazy rescaling, part of exp2 on the FMA units) in the mma kernel and in the TMA form.
    const studied = (c: KernelConfig | undefined) => (c && kernelOf(c, "bf16") !== "simt" ? withSoftmax(c, SOFTMAX_FORMS.at(-1)!) : undefined);
    write(cs, i, "bf16", undefined, "lazy", (c) => studied(c[0]));
    write({ ...cs, problem: { ...cs.problem, ...dims }, blockSize: [128, 128] }, i, "bf16", SM90, "wgmma128tmalazy", (c, p, m) => studied(tma(c, p, m)));
  });
  writeFileSync(join(dir, "index.json"), JSON.stringify(index, null, 1));
  console.log(`cuda: ${index.length} conformance kernels → ${dir}`);
}

/** Softmax options under study (CudaOptions.lazyRescale, polyExp2): the bench times the defaults with each, the conformance run the last. */
const SOFTMAX_FORMS: Record<string, boolean | number>[] = [{ lazyRescale: true }, { lazyRescale: true, polyExp2: 1 }, { lazyRescale: true, polyExp2: 2 }];
const withSoftmax = (c: KernelConfig, form: Record<string, boolean | number>): KernelConfig => ({ ...c, options: { ...c.options, ...form } });

const VARIANTS: (ProtocolVariant & Partial<OptInVariant>)[] = [...PROTOCOL_VARIANTS, ...OPT_IN_VARIANTS];
const SHAPES = PROTOCOL_SHAPES;
const NS = [16384, 4096];
const TOKENS = PROTOCOL_TOKENS;

function generateBench(): void {
  const dir = join(ROOT, "bench");
  mkdirSync(join(dir, "tables"), { recursive: true });
  const written = new Map<string, string>();
  const entries: unknown[] = [];
  for (const { D, H } of SHAPES) {
    for (const N of NS) {
      const B = TOKENS / N;
      for (const v of VARIANTS.filter((x) => !variantsArg || variantsArg.includes(x.name))) {
        const maskFn = v.mask(N);
        const scoreFn = v.score(H);
        const mask = maskFn ? traceMaskMod(maskFn) : null;
        const score = scoreFn ? traceScoreMod(scoreFn) : null;
        const tables = createBlockMask(maskFn ?? ((_b, _h, _q, _kv) => true), { B: 1, H: 1, qLen: N, kvLen: N }) as unknown as BlockMaskTables & { density(): number };
        const problem = resolveProblem({ batch: B, qHeads: H, kvHeads: H, qLen: N, kvLen: N, qkHeadDim: D, vHeadDim: D, dtype: "bf16" });
        const candidates = cudaBackend.configCandidates(problem, [128, 128], { mask, score }, SM90);
        const stemOf = (config: (typeof candidates)[number]) =>
          `${v.name}_d${D}${mask?.buffers.length ? `_n${N}` : ""}_${cudaConfigName(config, "bf16").replaceAll(" ", "_")}`;
        const module = (config: (typeof candidates)[number]) => {
          const spec = makeSpec({ mask, score, qkHeadDim: D, vHeadDim: D, dtype: "bf16", sparseBlock: [128, 128], config });
          const hash = cudaBackend.generate(spec).specHash;
          if (!written.has(hash)) {
            const stem = stemOf(config);
            writeKernel(dir, stem, spec);
            written.set(hash, stem);
          }
          return { module: `${written.get(hash)}.py`, specHash: hash, config, name: cudaConfigName(config, "bf16"), kernel: kernelOf(config, "bf16") };
        };
        // What a user gets: `flexattn compile --backend cuda [--target sm_90a]`, the module with the configs it carries.
        const publicModule = (arch: "sm_80" | "sm_90a") => {
          const { spec, artifact } = compileWithSpec({ maskMod: maskFn ?? undefined, scoreMod: scoreFn ?? undefined }, problem, {
            backend: "cuda", blockSize: [128, 128], target: arch === "sm_90a" ? SM90 : undefined, ...(v.options ? { config: { options: v.options } } : {}),
          });
          const stem = `${v.name}_d${D}${mask?.buffers.length ? `_n${N}` : ""}_compile_${arch}`;
          writeFileSync(join(dir, `${stem}.cu`), artifact.source);
          writeFileSync(join(dir, `${stem}.py`), cudaBackend.companions!(spec, artifact)["_cuda.py"]!);
          return { module: `${stem}.py`, specHash: artifact.specHash, config: artifact.config, kernel: kernelOf(artifact.config, "bf16") };
        };
        // The candidates, then the TMA forms no candidate list holds, under a tanh the default with the
        // approximate one (options.approxTanh), and the default and first mma config with each softmax under study; each timed alone.
        const held = new Set(candidates.map((c) => JSON.stringify(c)));
        const approx = score?.nodes.some((n) => n.op === "tanh") ? [withSoftmax(candidates[0], { approxTanh: true })] : [];
        const firstMma = candidates.find((c) => kernelOf(c, "bf16") === "mma")!;
        const softmax = [candidates[0], firstMma].flatMap((c) => SOFTMAX_FORMS.map((form) => withSoftmax(c, form)));
        const forms = [...candidates, ...cudaTmaConfigs(problem, [128, 128], { mask, score }).filter((c) => !held.has(JSON.stringify(c))), ...approx, ...softmax];
        const modules = research ? forms.filter((c) => matches(stemOf(c))).map(module) : [];
        const tablesFile = `${v.name}_d${D}_n${N}.json`;
        const bufSpec = makeSpec({ mask, score, qkHeadDim: D, vHeadDim: D, dtype: "bf16", sparseBlock: [128, 128], config: candidates[0] });
        writeFileSync(join(dir, "tables", tablesFile), JSON.stringify({ tables: tablesJson(tables), buffers: buffersJson(bufSpec) }));
        entries.push({
          variant: v.name, ...(v.anchor ? { anchor: v.anchor, optIn: true } : {}), N, B, H, D, tables: tablesFile, density: tables.density(), modules,
          default: publicModule("sm_90a"), sm80: publicModule("sm_80"),
        });
      }
    }
  }
  writeFileSync(join(dir, "bench.json"), JSON.stringify({ docSeed: DOC_SEED, entries }, null, 1));
  console.log(`cuda bench: ${entries.length} entries, ${written.size} kernels → ${dir}`);
}

/** The wgmma probe (codegen-cuda wgmma-probe.ts): Q·Kᵀ and P·V products alone, for run_cuda.py --phases probe. */
function generateProbe(): void {
  const dir = join(ROOT, "probe");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "wgmma_probe.cu"), wgmmaProbeSource("bf16"));
  writeFileSync(join(dir, "probe.json"), JSON.stringify(WGMMA_PROBE));
}

rmSync(ROOT, { recursive: true, force: true });
mkdirSync(ROOT, { recursive: true });
generateProbe();
if (only !== "bench") generateConformance();
if (only !== "conformance") generateBench();
