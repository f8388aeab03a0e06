/**
 * Generates everything the Triton device harness needs into apps/bench/device/triton/generated/:
 *   conformance/<case>.py + <case>.json  — the module our generator emits for each conformance
 *       case, its inputs, block-mask tables, captured buffers, the float64 reference outputs and
 *       the mods rendered for PyTorch (to run flex_attention on the same tensors);
 *   bench/<name>.py + bench.json + tables/*.json — the performance protocol's kernels and our
 *       createBlockMask tables (bf16; d=128 × 16 heads and d=64 × 32 heads; N ∈ {1k, 4k, 16k}),
 *       each kernel also generated with the `tma` option (bench.json's `tmaModule`).
 * Usage: npx tsx apps/bench/src/triton-generate.ts [--seed N] [--only conformance|bench]
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type MaskMod, type ModGraph, type ScoreMod, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { alibi, causal, documentCausal, prefixLM, randomDocumentIds, slidingWindow, softcap } from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import {
  type BlockMaskTables, CONFORMANCE_CASES, type KernelConfig, fullTablesOf, instantiateCase, makeSpec,
  referenceAttention, resolveProblem,
} from "@flexattn/template";
import { bufferArgs, tritonBackend, tritonDefaultConfig } from "@flexattn/codegen-triton";
import { torchModSource } from "./triton-torch-mods.js";
import { b64, tablesJson, tensorJson } from "./device-export.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "device", "triton", "generated");

/** Whether every row's first n indices form one ascending run (the contiguous-blocks promise). */
function contiguous(num: Int32Array, idx: Int32Array, kvb: number): boolean {
  for (let r = 0; r < num.length; r++) {
    for (let j = 1; j < num[r]; j++) if (idx[r * kvb + j] !== idx[r * kvb] + j) return false;
  }
  return true;
}

function contiguityOptions(t: BlockMaskTables) {
  const full = fullTablesOf(t);
  return {
    contiguousPartialBlocks: contiguous(t.kvNumBlocks, t.kvIndices, t.numKvBlocks),
    contiguousFullBlocks: contiguous(full.fullKvNumBlocks, full.fullKvIndices, t.numKvBlocks),
  };
}

function bufferJson(spec: ReturnType<typeof makeSpec>) {
  return bufferArgs(spec).map((b) => {
    const graph = (b.owner === "mask" ? spec.mask : spec.score)!;
    return { name: b.pyName, dtype: b.dtype, shape: b.shape, data: b64(graph.buffers[b.slot].data!) };
  });
}

function torchMods(spec: ReturnType<typeof makeSpec>) {
  const args = bufferArgs(spec);
  const names = (owner: "mask" | "score") => args.filter((b) => b.owner === owner).map((b) => b.pyName);
  return {
    mask: spec.mask ? torchModSource(spec.mask, names("mask")) : null,
    score: spec.score ? torchModSource(spec.score, names("score")) : null,
  };
}

/**
 * Module variants per conformance case: the default config, the contiguous-blocks fast paths
 * where the case's tables allow them, both again with the tensor-descriptor (TMA) loads, and the
 * approximate tanh where the score mod has a tanh.
 */
function conformanceVariants(inst: ReturnType<typeof instantiateCase>) {
  const variants: { suffix: string; options: Record<string, boolean>; tolerance?: number }[] = [{ suffix: "", options: {} }];
  const contig = contiguityOptions(inst.blockMask);
  const hasContig = contig.contiguousFullBlocks || contig.contiguousPartialBlocks;
  if (hasContig) variants.push({ suffix: "_contig", options: contig });
  variants.push({ suffix: "_tma", options: { tma: true } });
  if (hasContig) variants.push({ suffix: "_contig_tma", options: { ...contig, tma: true } });
  if (inst.score?.nodes.some((n) => n.op === "tanh")) {
    // tanh.approx.f32 measured ≤ 7.9e-6 absolute on the H100: the dtype's usual bound holds.
    variants.push({ suffix: "_approx", options: { approxTanh: true } });
  }
  return variants;
}

function generateConformance(seed: number): void {
  const dir = join(ROOT, "conformance");
  mkdirSync(dir, { recursive: true });
  const cases: unknown[] = [];
  CONFORMANCE_CASES.forEach((cs, i) => {
    const inst = instantiateCase(cs, seed + i);
    const p = inst.problem;
    const file = `${String(i).padStart(2, "0")}_${cs.name.replace(/[^A-Za-z0-9]+/g, "_")}`;
    const modules = conformanceVariants(inst).map((variant) => {
      const config = { ...tritonDefaultConfig(p, cs.blockSize), options: variant.options };
      const spec = makeSpec({
        mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype,
        returnLse: p.returnLse, sparseBlock: cs.blockSize, config,
      });
      const module = `${file}${variant.suffix}.py`;
      writeFileSync(join(dir, module), tritonBackend.generate(spec).source);
      return { module, config, tolerance: variant.tolerance ?? null, spec };
    });
    const spec = modules[0].spec;
    const ref = referenceAttention(inst);
    const json = {
      name: cs.name, seed: inst.seed, problem: p,
      modules: modules.map(({ module, config, tolerance }) => ({ module, config, tolerance })),
      q: tensorJson(inst.q), k: tensorJson(inst.k), v: tensorJson(inst.v),
      tables: tablesJson(inst.blockMask), buffers: bufferJson(spec),
      ref: { out: b64(ref.out), lse: b64(ref.lse) }, torch: torchMods(spec),
    };
    writeFileSync(join(dir, `${file}.json`), JSON.stringify(json));
    cases.push({ name: cs.name, file, modules: modules.length });
  });
  writeFileSync(join(dir, "index.json"), JSON.stringify(cases, null, 1));
  console.log(`conformance: ${cases.length} cases → ${dir}`);
}

// ---- the performance protocol ----

interface Variant {
  name: string;
  mask: (n: number) => MaskMod | null;
  score: (h: number) => ScoreMod | null;
  approxTanh?: boolean;
}

const DOC_SEED = 1234;
const VARIANTS: Variant[] = [
  { name: "noop", mask: () => null, score: () => null },
  { name: "causal", mask: () => causal(), score: () => null },
  { name: "sliding_window_1024", mask: () => slidingWindow(1024), score: () => null },
  { name: "prefix_lm", mask: (n) => prefixLM(n / 4), score: () => null },
  { name: "document_causal", mask: (n) => documentCausal(randomDocumentIds(n, 8, DOC_SEED)), score: () => null },
  { name: "alibi_causal", mask: () => causal(), score: (h) => alibi(h) },
  { name: "softcap_causal", mask: () => causal(), score: () => softcap(30) },
  { name: "softcap_causal_approx", mask: () => causal(), score: () => softcap(30), approxTanh: true },
];

/**
 * Configs [blockM, blockN, warps, stages] the harness tries per entry besides the backend's
 * mod-aware default (timed first), for the pointer module and again for the TMA module; it reports
 * the default, the fastest pointer config and the fastest TMA config, re-timed. validateConfig allows 1–8 stages.
 * 128×128, 8 warps, 3 stages is the config of the TMA probe (1.07–1.08× flex, dense, d = 128).
 */
const CANDIDATES: Record<number, [number, number, number, number][]> = {
  128: [[128, 64, 8, 4], [128, 128, 8, 2], [64, 64, 4, 2], [64, 64, 4, 4], [128, 64, 8, 3], [128, 128, 8, 3]],
  64: [[128, 64, 4, 4], [128, 128, 4, 2], [64, 64, 4, 2], [128, 64, 4, 2], [64, 64, 4, 4], [128, 64, 4, 3]],
};

const SHAPES = [
  { D: 128, H: 16 },
  { D: 64, H: 32 },
];
const NS = [1024, 4096, 16384];
const TOKENS = 16384;

function generateBench(): void {
  const dir = join(ROOT, "bench");
  mkdirSync(join(dir, "tables"), { recursive: true });
  const modules = new Map<string, string>(); // spec hash → module file
  const entries: unknown[] = [];
  for (const { D, H } of SHAPES) {
    for (const N of NS) {
      const B = TOKENS / N;
      for (const v of VARIANTS) {
        const maskFn = v.mask(N);
        const scoreFn = v.score(H);
        const mask: ModGraph | null = maskFn ? traceMaskMod(maskFn) : null;
        const score: ModGraph | null = scoreFn ? traceScoreMod(scoreFn) : null;
        const tables = createBlockMask(maskFn ?? ((_b, _h, _q, _kv) => true), { B: 1, H: 1, qLen: N, kvLen: N }) as unknown as BlockMaskTables;
        const density = (tables as unknown as { density(): number }).density();
        const problem = resolveProblem({ batch: B, qHeads: H, kvHeads: H, qLen: N, kvLen: N, qkHeadDim: D, vHeadDim: D, dtype: "bf16" });
        // The default the library picks for these mods (what `compile` and flexAttention use).
        const base = tritonDefaultConfig(problem, [128, 128], { mask, score });
        const config: KernelConfig = {
          ...base,
          options: { ...contiguityOptions(tables), ...(v.approxTanh ? { approxTanh: true } : {}) },
        };
        const specFor = (c: KernelConfig) => makeSpec({ mask, score, qkHeadDim: D, vHeadDim: D, dtype: "bf16", sparseBlock: [128, 128], config: c });
        const spec = specFor(config);
        // The same kernel, and again with the tensor-descriptor (TMA) loads (same config).
        const [module, tmaModule] = [spec, specFor({ ...config, options: { ...config.options, tma: true } })].map((s) => {
          const artifact = tritonBackend.generate(s);
          let file = modules.get(artifact.specHash);
          if (!file) {
            const tag = s.config.options?.tma ? "_tma" : "";
            file = `${v.name}_d${D}${mask?.buffers.length ? `_n${N}` : ""}${tag}_${artifact.specHash.slice(0, 8)}.py`;
            writeFileSync(join(dir, file), artifact.source);
            modules.set(artifact.specHash, file);
          }
          return file;
        });
        const tablesFile = `${v.name}_d${D}_n${N}.json`;
        writeFileSync(join(dir, "tables", tablesFile), JSON.stringify({ tables: tablesJson(tables), buffers: bufferJson(spec) }));
        // The default config is timed first; the harness reports it and the fastest candidate.
        const def: [number, number, number, number] = [config.blockM, config.blockN, config.numWarps, config.numStages];
        const candidates = [def, ...CANDIDATES[D].filter((c) => c.join() !== def.join())];
        entries.push({
          variant: v.name, N, B, H, D, module, tmaModule, tables: tablesFile, density, config, candidates, approxTanh: !!v.approxTanh,
        });
      }
    }
  }
  writeFileSync(join(dir, "bench.json"), JSON.stringify({ docSeed: DOC_SEED, entries }, null, 1));
  console.log(`bench: ${entries.length} entries, ${modules.size} modules → ${dir}`);
}

const args = process.argv.slice(2);
const seedArg = args.indexOf("--seed");
const seed = seedArg >= 0 ? Number(args[seedArg + 1]) : (Date.now() & 0x7fffffff);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : null;
if (!only) rmSync(ROOT, { recursive: true, force: true });
if (!only || only === "conformance") generateConformance(seed);
if (!only || only === "bench") generateBench();
