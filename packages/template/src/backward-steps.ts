/**
 * The FlashAttention-2 backward as data, next to the forward's steps (steps.ts): typed steps with
 * the same mod hooks, which each backend's backward emitter renders one method per step kind.
 * Four passes, each a grid of programs:
 *
 *   preprocess (q tile, hq, b):   delta = rowsum(dO ∘ O)
 *   dkdv       (kv tile, hkv, b): for hq in the group of hkv, for q tiles in the column's partial, then
 *                                 full, blocks of the BlockMask's q-direction tables (qNumBlocks/qIndices):
 *                                   s = Q·Kᵀ·scale → scoreMod → mask & bounds; P = exp(s − lse)
 *                                   dV += Pᵀ·dO; dP = dO·Vᵀ; dS = P ∘ (dP − delta)
 *                                   buffer gradients: partial[program] += dS · ∂mod/∂load at each load's offset
 *                                   dS ∘= ∂mod/∂s; dK += dSᵀ·Q·scale
 *                                 store dK, dV (GQA: summed over the group's query heads)
 *   dq         (q tile, hq, b):   for kv tiles in the row's partial, then full, blocks (kvNumBlocks/kvIndices):
 *                                   s, P, dP, dS as above; dS ∘= ∂mod/∂s; dQ += dS·K·scale;  store dQ
 *   reduce:                       d_buffer = Σ over dkdv programs, in program order, of their partials
 *
 * Every (query, key) pair is visited once per pass, so dK, dV and dQ need no atomics; buffer
 * gradients are per-program partial sums reduced in a fixed order, so they are bitwise
 * deterministic. Their cost: one workspace row of the buffer's size per dkdv program
 * (B · Hkv · ⌈kvLen / blockN⌉ rows) and a reduction over it.
 * Elements with P = 0 contribute nothing: fully masked rows get zero gradients, never NaN.
 */
import { type ModGraph, type ScoreModGradient, differentiateScoreMod } from "@flexattn/ir";
import { transposeKv } from "@flexattn/blockmask";
import { type AbiArg, kernelAbi } from "./abi.js";
import type { KernelInvocation } from "./backend.js";
import type { Tensor } from "./tensor.js";
import { type BlockMaskTables, fullTablesOf } from "./blockmask-tables.js";
import type { KernelSpec } from "./spec.js";
import type { BlockKind } from "./steps.js";

/** Which pass a block-loop step runs in: over q tiles of a kv column, or kv tiles of a q row. */
export type BackwardPass = "dkdv" | "dq";

export type BackwardBlockStep =
  /** The other side's tile: Q, dO, LSE and delta (dkdv) or K and V (dq). */
  | { kind: "loadTiles" }
  /** s = Q·Kᵀ · scale. */
  | { kind: "qk" }
  /** Hook: s = scoreMod(s, b, hq, q + qOffset, kv + kvOffset), keeping the pre-mod s for its derivative. */
  | { kind: "scoreMod" }
  /** Hook: masked (mask false) → P = 0 (partial blocks only). */
  | { kind: "maskMod" }
  /** Rows ≥ qLen and columns ≥ kvLen are outside the tile. */
  | { kind: "bounds" }
  /** P = exp(s − lse); 0 where s = −∞ or the row is fully masked (lse = −∞). */
  | { kind: "recomputeP" }
  /** dV += Pᵀ·dO (dkdv). */
  | { kind: "accumulateDV" }
  /** dP = dO·Vᵀ. */
  | { kind: "dP" }
  /** dS = P ∘ (dP − delta): the gradient at the mod's output. */
  | { kind: "dS" }
  /** Hook: the tile's contribution to each captured f32 buffer's per-program partial sums (dkdv). */
  | { kind: "bufferGrad" }
  /** Hook: dS ∘= ∂scoreMod/∂s (only with a score mod). */
  | { kind: "scoreGrad" }
  /** dK += dSᵀ·Q·scale (dkdv). */
  | { kind: "accumulateDK" }
  /** dQ += dS·K·scale (dq). */
  | { kind: "accumulateDQ" };

export type BackwardStep =
  /** delta = rowsum(dO ∘ O), one program per (q tile, hq, b). */
  | { kind: "preprocess" }
  /** dkdv program per (kv tile, hkv, b): load K, V; dK = dV = 0. */
  | { kind: "kvProgram" }
  | { kind: "qBlockLoop"; blocks: BlockKind; body: BackwardBlockStep[] }
  | { kind: "storeKV" }
  /** dq program per (q tile, hq, b): load Q, dO, LSE, delta; dQ = 0. */
  | { kind: "qProgram" }
  | { kind: "kvBlockLoop"; blocks: BlockKind; body: BackwardBlockStep[] }
  | { kind: "storeQ" }
  /** d_buffer = the dkdv programs' partials summed in program order. */
  | { kind: "reduceBufferGrads" };

/** The score mod's derivatives a backward kernel renders: null without a score mod. */
export interface BackwardMods {
  readonly gradient: ScoreModGradient | null;
  /** The captured f32 buffers that receive a gradient (at least one load site), in slot order. */
  readonly gradBuffers: readonly { slot: number; name: string; size: number }[];
}

/** Derivatives per traced graph: a module's generation asks for them from several places (default config, source, checks). */
const derivedMods = new WeakMap<ModGraph, BackwardMods>();

export function backwardMods(score: ModGraph | null): BackwardMods {
  if (!score) return { gradient: null, gradBuffers: [] };
  const known = derivedMods.get(score);
  if (known) return known;
  const gradient = differentiateScoreMod(score);
  const gradBuffers = gradient.buffers
    .filter((bg) => bg.sites.length > 0)
    .map((bg) => ({ slot: bg.slot, name: bg.name, size: score.buffers[bg.slot].shape.reduce((a, b) => a * b, 1) }));
  const mods = { gradient, gradBuffers };
  derivedMods.set(score, mods);
  return mods;
}

/** The backward's steps for a spec: mod hooks only where there are mods, buffer gradients only where a buffer gets one. */
export function backwardSteps(spec: KernelSpec, mods: BackwardMods = backwardMods(spec.score)): BackwardStep[] {
  const body = (pass: BackwardPass, blocks: BlockKind): BackwardBlockStep[] => [
    { kind: "loadTiles" },
    { kind: "qk" },
    ...(spec.score ? [{ kind: "scoreMod" } as const] : []),
    ...(blocks === "partial" && spec.mask ? [{ kind: "maskMod" } as const] : []),
    { kind: "bounds" },
    { kind: "recomputeP" },
    ...(pass === "dkdv" ? [{ kind: "accumulateDV" } as const] : []),
    { kind: "dP" },
    { kind: "dS" },
    ...(pass === "dkdv" && mods.gradBuffers.length ? [{ kind: "bufferGrad" } as const] : []),
    ...(spec.score ? [{ kind: "scoreGrad" } as const] : []),
    pass === "dkdv" ? { kind: "accumulateDK" } : { kind: "accumulateDQ" },
  ];
  return [
    { kind: "preprocess" },
    { kind: "kvProgram" },
    { kind: "qBlockLoop", blocks: "partial", body: body("dkdv", "partial") },
    { kind: "qBlockLoop", blocks: "full", body: body("dkdv", "full") },
    { kind: "storeKV" },
    { kind: "qProgram" },
    { kind: "kvBlockLoop", blocks: "partial", body: body("dq", "partial") },
    { kind: "kvBlockLoop", blocks: "full", body: body("dq", "full") },
    { kind: "storeQ" },
    ...(mods.gradBuffers.length ? [{ kind: "reduceBufferGrads" } as const] : []),
  ];
}

/** What a backend implements for the backward: one method per step; block-loop bodies are emitted first. */
export interface BackwardEmitter<Code> {
  preprocess(): Code;
  kvProgram(): Code;
  qBlockLoop(blocks: BlockKind, body: Code[]): Code;
  storeKV(): Code;
  qProgram(): Code;
  kvBlockLoop(blocks: BlockKind, body: Code[]): Code;
  storeQ(): Code;
  reduceBufferGrads(): Code;
  loadTiles(pass: BackwardPass, blocks: BlockKind): Code;
  qk(pass: BackwardPass, blocks: BlockKind): Code;
  scoreMod(pass: BackwardPass, blocks: BlockKind): Code;
  maskMod(pass: BackwardPass, blocks: BlockKind): Code;
  bounds(pass: BackwardPass, blocks: BlockKind): Code;
  recomputeP(pass: BackwardPass, blocks: BlockKind): Code;
  accumulateDV(pass: BackwardPass, blocks: BlockKind): Code;
  dP(pass: BackwardPass, blocks: BlockKind): Code;
  dS(pass: BackwardPass, blocks: BlockKind): Code;
  bufferGrad(pass: BackwardPass, blocks: BlockKind): Code;
  scoreGrad(pass: BackwardPass, blocks: BlockKind): Code;
  accumulateDK(pass: BackwardPass, blocks: BlockKind): Code;
  accumulateDQ(pass: BackwardPass, blocks: BlockKind): Code;
}

/** Walk the backward template for a spec through an emitter; returns the pieces in order. */
export function emitBackward<Code>(spec: KernelSpec, e: BackwardEmitter<Code>, mods: BackwardMods = backwardMods(spec.score)): Code[] {
  return backwardSteps(spec, mods).map((step) => {
    switch (step.kind) {
      case "qBlockLoop":
        return e.qBlockLoop(step.blocks, step.body.map((b) => e[b.kind]("dkdv", step.blocks)));
      case "kvBlockLoop":
        return e.kvBlockLoop(step.blocks, step.body.map((b) => e[b.kind]("dq", step.blocks)));
      default:
        return e[step.kind]();
    }
  });
}

const tensorArg = (name: string, type: AbiArg["type"], role: AbiArg["role"], doc: string): AbiArg => ({ name, kind: "tensor", type, role, doc });

/** Tensors of the backward with [b, h, s] strides (the head dim is contiguous). */
export const BACKWARD_STRIDED_TENSORS = ["q", "k", "v", "out", "dout", "dq", "dk", "dv"] as const;

/**
 * The backward kernel ABI, built from the forward's (kernelAbi) so shared arguments are defined
 * once: inputs, out / dO / LSE as inputs, the gradients, both table directions, the captured
 * buffers and their gradients, sizes, strides of every strided tensor, BlockMask sizes, params.
 */
export function backwardAbi(spec: KernelSpec, mods: BackwardMods = backwardMods(spec.score)): AbiArg[] {
  const fwd = kernelAbi(spec);
  const pick = (keep: (a: AbiArg) => boolean) => fwd.filter(keep);
  const strideOf = (name: string) => ["b", "h", "s"].map((d): AbiArg => ({
    name: `stride_${name}_${d}`, kind: "scalar", type: "i32", role: "stride", doc: `${name} element stride over ${d}`,
  }));
  return [
    ...pick((a) => a.role === "input"),
    tensorArg("out", "storage", "input", "the forward's output [B, Hq, qLen, Dv] (strided)"),
    tensorArg("dout", "storage", "input", "∂L/∂out [B, Hq, qLen, Dv] (strided)"),
    tensorArg("lse", "f32", "input", "the forward's log-sum-exp [B, Hq, qLen], contiguous"),
    tensorArg("dq", "storage", "output", "∂L/∂q [B, Hq, qLen, Dqk] (strided)"),
    tensorArg("dk", "storage", "output", "∂L/∂k [B, Hkv, kvLen, Dqk] (strided)"),
    tensorArg("dv", "storage", "output", "∂L/∂v [B, Hkv, kvLen, Dv] (strided)"),
    ...pick((a) => a.role === "blockmask"),
    tensorArg("q_num_blocks", "i32", "blockmask", "partial q blocks per column [Bm, Hm, KVB]"),
    tensorArg("q_indices", "i32", "blockmask", "partial q block indices [Bm, Hm, KVB, QB]"),
    tensorArg("full_q_num_blocks", "i32", "blockmask", "full q blocks per column [Bm, Hm, KVB]"),
    tensorArg("full_q_indices", "i32", "blockmask", "full q block indices [Bm, Hm, KVB, QB]"),
    ...pick((a) => a.role === "captured"),
    ...mods.gradBuffers.map((b) => tensorArg(`d_score_${b.name}`, "f32", "output", `∂L/∂ captured buffer ${b.name} [${b.size}] (overwritten)`)),
    ...pick((a) => a.role === "size" && !a.name.startsWith("sparse_")),
    ...BACKWARD_STRIDED_TENSORS.flatMap(strideOf),
    ...pick((a) => a.role === "size" && a.name.startsWith("sparse_")),
    ...pick((a) => a.role === "param"),
  ];
}

/** A BlockMask as the backward reads it: both directions of tables. */
export type BackwardTables = BlockMaskTables & {
  readonly qNumBlocks?: Int32Array;
  readonly qIndices?: Int32Array;
  readonly fullQNumBlocks?: Int32Array;
  readonly fullQIndices?: Int32Array;
};

/** The q-direction tables (partial and full): the BlockMask's own, or transposed from its kv tables (denseTables has none). */
export function qTablesOf(t: BackwardTables): { qNumBlocks: Int32Array; qIndices: Int32Array; fullQNumBlocks: Int32Array; fullQIndices: Int32Array } {
  const full = fullTablesOf(t);
  const partial = t.qNumBlocks && t.qIndices ? { num: t.qNumBlocks, idx: t.qIndices } : transposeKv({ num: t.kvNumBlocks, idx: t.kvIndices }, t);
  const fullQ = t.fullQNumBlocks && t.fullQIndices
    ? { num: t.fullQNumBlocks, idx: t.fullQIndices }
    : transposeKv({ num: full.fullKvNumBlocks, idx: full.fullKvIndices }, t);
  return { qNumBlocks: partial.num, qIndices: partial.idx, fullQNumBlocks: fullQ.num, fullQIndices: fullQ.idx };
}

/**
 * One execution of a backward kernel: the forward's invocation (its out and LSE are now inputs),
 * dO, and the gradient outputs in the problem's dtype and their strides.
 */
export interface BackwardInvocation extends KernelInvocation {
  /** ∂L/∂out, [B, Hq, qLen, Dv] with `strides.out`'s shape (its own strides). */
  readonly dOut: Tensor;
  readonly dq: Float32Array | Uint16Array;
  readonly dk: Float32Array | Uint16Array;
  readonly dv: Float32Array | Uint16Array;
  /** [b, h, s, d] element strides of dq, dk, dv. */
  readonly gradStrides: { readonly dq: readonly number[]; readonly dk: readonly number[]; readonly dv: readonly number[] };
  /** One per `backwardMods(score).gradBuffers` entry, overwritten with its gradient. */
  readonly dBuffers: readonly Float32Array[];
}
