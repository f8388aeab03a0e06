/**
 * Generates what the Triton backward harness (apps/bench/device/triton/backward.py) needs into
 * apps/bench/device/triton/generated-bwd/. Every module comes from the public
 * `compile(mods, problem, { backend: "triton" })`, as in triton-generate.ts.
 *   conformance/<case>.py + <case>.json — each backward conformance case (template's BACKWARD_CASES):
 *       module, inputs, dO, block-mask tables, captured buffers and the float64 reference gradients
 *       (referenceBackward) with their tolerance; cases Triton cannot compile are listed with the reason;
 *   compare/<variant>.py + .json — bf16 mods at a size eager PyTorch handles, to compare our gradients
 *       with torch flex_attention's backward and a float64 dense autograd reference on the same tensors;
 *   bench/<variant>.py + .json — N = 16k, d = 128, 16 heads, bf16: forward+backward timing vs flex (and the
 *       bucket bias again at d = 64, <variant>_n16384_d64, and at N = 4k, d = 128 and 64).
 * The mods of compare/ and bench/ are also rendered for PyTorch (triton-torch-mods.ts).
 * Usage: npx tsx apps/bench/src/triton-backward-generate.ts [--seed N]
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type KernelArtifact, compile, traceMaskMod, traceScoreMod } from "flexattn";
import { abs, buffer, min, type MaskMod, type ScoreMod } from "@flexattn/ir";
import { alibi, causal, documentCausal, mulberry32, randomDocumentIds, softcap } from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import {
  BACKWARD_CASES, BACKWARD_TOLERANCE, type BlockMaskTables, type KernelSpec, backwardMods, instantiateBackwardCase,
  randomNormal, referenceBackward, resolveProblem,
} from "@flexattn/template";
import { bufferArgs } from "@flexattn/codegen-triton";
import { torchModSource } from "./triton-torch-mods.js";
import { DOC_SEED } from "./protocol.js";
import { b64, specOf, tablesJson, tensorJson } from "./device-export.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "device", "triton", "generated-bwd");

function bufferJson(spec: KernelSpec) {
  return bufferArgs(spec).map((b) => {
    const graph = (b.owner === "mask" ? spec.mask : spec.score)!;
    return { name: b.pyName, owner: b.owner, dtype: b.dtype, shape: b.shape, data: b64(graph.buffers[b.slot].data!) };
  });
}

function torchMods(spec: KernelSpec) {
  const args = bufferArgs(spec);
  const names = (owner: "mask" | "score") => args.filter((b) => b.owner === owner).map((b) => b.pyName);
  return {
    mask: spec.mask ? torchModSource(spec.mask, names("mask")) : null,
    score: spec.score ? torchModSource(spec.score, names("score")) : null,
  };
}

/** The score-mod buffer name (as the module's keyword argument) of each gradient buffer slot. */
function gradBufferName(spec: KernelSpec, slot: number): string {
  return bufferArgs(spec).find((b) => b.owner === "score" && b.slot === slot)!.pyName;
}

function generateConformance(seed: number): void {
  const dir = join(ROOT, "conformance");
  mkdirSync(dir, { recursive: true });
  const index: unknown[] = [];
  BACKWARD_CASES.forEach((cs, i) => {
    const file = `${String(i).padStart(2, "0")}_${cs.name.replace(/[^A-Za-z0-9]+/g, "_")}`;
    const inst = instantiateBackwardCase(cs, seed + i);
    const p = inst.problem;
    let artifact: KernelArtifact;
    try {
      artifact = compile({ maskMod: inst.mask ?? undefined, scoreMod: inst.score ?? undefined }, p, { backend: "triton", blockSize: cs.blockSize });
    } catch (e) {
      index.push({ name: cs.name, file, skipped: e instanceof Error ? e.message : String(e) });
      return;
    }
    writeFileSync(join(dir, `${file}.py`), artifact.source);
    const spec = specOf(artifact, inst.mask, inst.score);
    const ref = referenceBackward(inst);
    const grads = backwardMods(inst.score).gradBuffers.map((g) => {
      const r = ref.dBuffers.find((d) => d.slot === g.slot)!;
      return { name: gradBufferName(spec, g.slot), grad: b64(r.grad), absSum: b64(r.absSum) };
    });
    const json = {
      name: cs.name, seed: inst.seed, problem: p, module: `${file}.py`, tolerance: BACKWARD_TOLERANCE[p.dtype],
      q: tensorJson(inst.q), k: tensorJson(inst.k), v: tensorJson(inst.v), dout: tensorJson(inst.dOut),
      tables: tablesJson(inst.blockMask), buffers: bufferJson(spec), torch: torchMods(spec),
      ref: { dq: b64(ref.dq), dk: b64(ref.dk), dv: b64(ref.dv), buffers: grads },
    };
    writeFileSync(join(dir, `${file}.json`), JSON.stringify(json));
    index.push({ name: cs.name, file });
  });
  writeFileSync(join(dir, "index.json"), JSON.stringify(index, null, 1));
  console.log(`conformance: ${index.length} cases → ${dir}`);
}

interface Variant {
  name: string;
  mask: (n: number) => MaskMod | null;
  score: (h: number, n: number, rand: () => number) => ScoreMod | null;
}

/** A learnable relative-position bias: one entry per distance q − kv ∈ (−N, N). */
const relativeBias = (n: number, rand: () => number): ScoreMod => {
  const table = buffer(randomNormal(2 * n - 1, rand).map((x) => x * 0.5), { name: "relBias" });
  return (s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(n - 1)));
};

/** A learnable [H, 32] bias of bucketed distances (T5-like, buckets of 128 positions). */
export const BUCKET_SIZE = 128;
export const BUCKETS = 32;
const bucketBias = (h: number, rand: () => number): ScoreMod => {
  const table = buffer(randomNormal(h * BUCKETS, rand).map((x) => x * 0.5), { shape: [h, BUCKETS], name: "bucketBias" });
  return (s, _b, hh, q, kv) => s.add(table.at(hh, min(abs(q.sub(kv)).floorDiv(BUCKET_SIZE), BUCKETS - 1)));
};

const VARIANTS: Record<string, Variant> = {
  noop: { name: "noop", mask: () => null, score: () => null },
  causal: { name: "causal", mask: () => causal(), score: () => null },
  document_causal: { name: "document_causal", mask: (n) => documentCausal(randomDocumentIds(n, 8, DOC_SEED)), score: () => null },
  softcap_causal: { name: "softcap_causal", mask: () => causal(), score: () => softcap(30) },
  alibi_causal: { name: "alibi_causal", mask: () => causal(), score: (h) => alibi(h) },
  relbias_causal: { name: "relbias_causal", mask: () => causal(), score: (_h, n, rand) => relativeBias(n, rand) },
  bucketbias_causal: { name: "bucketbias_causal", mask: () => causal(), score: (h, _n, rand) => bucketBias(h, rand) },
};

/** One module + tables + buffers + PyTorch mods for a variant at one shape. */
function generateVariant(dir: string, v: Variant, shape: Shape, seed: number, suffix: string) {
  const { B, Hq, Hkv, N, D } = shape;
  const maskMod = v.mask(N);
  const scoreMod = v.score(Hq, N, mulberry32(seed));
  const mask = maskMod ? traceMaskMod(maskMod) : null;
  const score = scoreMod ? traceScoreMod(scoreMod) : null;
  const blockMask = createBlockMask(maskMod ?? ((_b, _h, _q, _kv) => true), { B: 1, H: 1, qLen: N, kvLen: N });
  const problem = resolveProblem({ batch: B, qHeads: Hq, kvHeads: Hkv, qLen: N, kvLen: N, qkHeadDim: D, vHeadDim: D, dtype: "bf16" });
  const artifact = compile({ maskMod: mask ?? undefined, scoreMod: score ?? undefined }, problem, { backend: "triton" });
  const spec = specOf(artifact, mask, score);
  const file = `${v.name}_n${N}${suffix}`;
  writeFileSync(join(dir, `${file}.py`), artifact.source);
  const grads = backwardMods(score).gradBuffers.map((g) => gradBufferName(spec, g.slot));
  writeFileSync(join(dir, `${file}.json`), JSON.stringify({
    variant: v.name, B, Hq, Hkv, N, D, module: `${file}.py`, scale: problem.scale, density: blockMask.density(),
    tables: tablesJson(blockMask as unknown as BlockMaskTables), buffers: bufferJson(spec), torch: torchMods(spec), gradBuffers: grads,
  }));
  return file;
}

type Shape = { B: number; Hq: number; Hkv: number; N: number; D: number };

/** Each set's variants at its shape into ROOT/<sub>/, named <variant>_n<N><suffix>, and the index of them all. */
function generateShapes(sub: string, sets: { names: string[]; shape: Shape; suffix?: string }[], seed: number): void {
  const dir = join(ROOT, sub);
  mkdirSync(dir, { recursive: true });
  const files = sets.flatMap((set) => set.names.map((n, i) => generateVariant(dir, VARIANTS[n], set.shape, seed + i, set.suffix ?? "")));
  writeFileSync(join(dir, "index.json"), JSON.stringify(files, null, 1));
  console.log(`${sub}: ${files.length} variants → ${dir}`);
}

const args = process.argv.slice(2);
const seedArg = args.indexOf("--seed");
const seed = seedArg >= 0 ? Number(args[seedArg + 1]) : (Date.now() & 0x7fffffff);
rmSync(ROOT, { recursive: true, force: true });
generateConformance(seed);
generateShapes("compare", [{
  names: ["causal", "document_causal", "softcap_causal", "alibi_causal", "relbias_causal", "bucketbias_causal"],
  shape: { B: 1, Hq: 4, Hkv: 2, N: 1024, D: 64 },
}], seed);
// The learnable bias also at d = 64 and at 4k: flex_attention runs out of shared memory on it at 16k.
generateShapes("bench", [
  { names: ["noop", "causal", "document_causal", "softcap_causal", "relbias_causal", "bucketbias_causal"], shape: { B: 1, Hq: 16, Hkv: 16, N: 16384, D: 128 } },
  { names: ["relbias_causal", "bucketbias_causal"], shape: { B: 1, Hq: 16, Hkv: 16, N: 16384, D: 64 }, suffix: "_d64" },
  // And at 4k, to find a size where flex_attention trains a learnable table at all.
  { names: ["bucketbias_causal"], shape: { B: 1, Hq: 16, Hkv: 16, N: 4096, D: 128 } },
  { names: ["bucketbias_causal"], shape: { B: 1, Hq: 16, Hkv: 16, N: 4096, D: 64 }, suffix: "_d64" },
], seed);
