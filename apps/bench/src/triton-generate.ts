/**
 * Generates everything the Triton device harness needs into apps/bench/device/triton/generated/.
 * Every module comes from the public `compile(mods, problem, { backend: "triton" })` of the
 * flexattn package, with the config the library picks (options only where a variant asks for one,
 * as a user would: tma, approxTanh); the kernels choose their block-loop form from the tables and
 * resolve their launch config themselves on the device.
 *   conformance/<case>.py + <case>.json  — each conformance case's module (and its tma and
 *       approximate-tanh variants), inputs, block-mask tables, captured buffers, the float64
 *       reference and the mods rendered for PyTorch (to run flex_attention on the same tensors);
 *   bench/<name>.py + bench.json + tables/*.json — the performance protocol's kernels and our
 *       createBlockMask tables (bf16; d=128 × 16 heads and d=64 × 32 heads; N ∈ {4k, 16k}).
 * Usage: npx tsx apps/bench/src/triton-generate.ts [--seed N] [--only conformance|bench]
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { compile, traceMaskMod, traceScoreMod } from "flexattn";
import { createBlockMask } from "@flexattn/blockmask";
import {
  type BlockMaskTables, CONFORMANCE_CASES, instantiateCase, makeSpec, referenceAttention, resolveProblem,
} from "@flexattn/template";
import { bufferArgs } from "@flexattn/codegen-triton";
import { torchModSource } from "./triton-torch-mods.js";
import { DOC_SEED, OPT_IN_VARIANTS, type OptInVariant, PROTOCOL_SHAPES, PROTOCOL_TOKENS, PROTOCOL_VARIANTS, type ProtocolVariant } from "./protocol.js";
import { b64, specOf, tablesJson, tensorJson } from "./device-export.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "device", "triton", "generated");

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
 * Module variants per conformance case, as a user would ask `compile` for them: the defaults, the
 * tensor-descriptor (TMA) loads, and the approximate tanh where the score mod has a tanh. The
 * block-loop forms are the launcher's choice per table; the harness also runs the indexed form
 * where the launcher picked the range one.
 */
function conformanceVariants(inst: ReturnType<typeof instantiateCase>) {
  const variants: { suffix: string; options?: Record<string, boolean>; tolerance?: number }[] = [{ suffix: "" }];
  variants.push({ suffix: "_tma", options: { tma: true } });
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
    const mods = { maskMod: inst.mask ?? undefined, scoreMod: inst.score ?? undefined };
    const modules = conformanceVariants(inst).map((variant) => {
      const artifact = compile(mods, p, { backend: "triton", blockSize: cs.blockSize, config: variant.options && { options: variant.options } });
      const module = `${file}${variant.suffix}.py`;
      writeFileSync(join(dir, module), artifact.source);
      return { module, config: artifact.config, tolerance: variant.tolerance ?? null, spec: specOf(artifact, inst.mask, inst.score) };
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

const VARIANTS: (ProtocolVariant & Partial<OptInVariant>)[] = [...PROTOCOL_VARIANTS, ...OPT_IN_VARIANTS];

const SHAPES = PROTOCOL_SHAPES;
const NS = [4096, 16384];
const TOKENS = PROTOCOL_TOKENS;

function generateBench(): void {
  const dir = join(ROOT, "bench");
  mkdirSync(join(dir, "tables"), { recursive: true });
  const modules = new Map<string, string>(); // spec hash → module file
  const entries: unknown[] = [];
  for (const { D, H } of SHAPES) {
    for (const N of NS) {
      const B = TOKENS / N;
      for (const v of VARIANTS) {
        const maskMod = v.mask(N);
        const scoreMod = v.score(H);
        const mask = maskMod ? traceMaskMod(maskMod) : null;
        const score = scoreMod ? traceScoreMod(scoreMod) : null;
        const blockMask = createBlockMask(maskMod ?? ((_b, _h, _q, _kv) => true), { B: 1, H: 1, qLen: N, kvLen: N });
        const tables = blockMask as unknown as BlockMaskTables;
        const problem = resolveProblem({ batch: B, qHeads: H, kvHeads: H, qLen: N, kvLen: N, qkHeadDim: D, vHeadDim: D, dtype: "bf16" });
        const artifact = compile({ maskMod: mask ?? undefined, scoreMod: score ?? undefined }, problem, {
          backend: "triton", ...(v.options ? { config: { options: v.options } } : {}),
        });
        const spec = specOf(artifact, mask, score);
        let module = modules.get(artifact.specHash);
        if (!module) {
          module = `${v.name}_d${D}${spec.mask?.buffers.length ? `_n${N}` : ""}_${artifact.specHash.slice(0, 8)}.py`;
          writeFileSync(join(dir, module), artifact.source);
          modules.set(artifact.specHash, module);
        }
        const tablesFile = `${v.name}_d${D}_n${N}.json`;
        writeFileSync(join(dir, "tables", tablesFile), JSON.stringify({ tables: tablesJson(tables), buffers: bufferJson(spec) }));
        entries.push({
          variant: v.name, N, B, H, D, module, tables: tablesFile, density: blockMask.density(), approxTanh: !!v.options?.approxTanh,
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
