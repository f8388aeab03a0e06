/**
 * The FlashAttention-2 forward algorithm as data: an ordered list of typed steps with hook
 * points for the mods. Each backend's emitter has one method per step kind, and
 * `emitTemplate` walks the list, so every backend renders the same algorithm.
 *
 *   program (q tile m, head hq, batch b):  hkv = hq / (Hq / Hkv); row = m·BLOCK_M / SPARSE_Q
 *     load Q tile; m_i = -inf; l_i = 0; acc = 0
 *     for kv tile in the partial blocks of (b % Bm, hq % Hm, row):
 *         s = Q·Kᵀ·scale → scoreMod → mask & bounds (false → -inf); online softmax; acc += P·V
 *     for kv tile in the full blocks:  the same, with bounds only (no mask)
 *     rows with l_i = 0 → O = acc·0, LSE = -inf;  else O = acc / l_i, LSE = ln2·(m_i + log2 l_i)
 */
import type { KernelSpec } from "./spec.js";

export type BlockKind = "partial" | "full";

export type BlockStep =
  | { kind: "loadK" }
  /** s = Q·Kᵀ · scale (or · scale·log2e when prescaled). */
  | { kind: "qk" }
  /** Hook: s = scoreMod(s, b, hq, q + qOffset, kv + kvOffset). */
  | { kind: "scoreMod" }
  /** Hook: s = mask(b, hq, q + qOffset, kv + kvOffset) ? s : -inf (partial blocks only). */
  | { kind: "maskMod" }
  /** Columns kv ≥ kvLen → -inf (only tiles that can cross kvLen need it). */
  | { kind: "bounds" }
  /** m_new = max(m_i, rowmax(s·log2e)); p = exp2(s·log2e − m_new); rescale l_i and acc. */
  | { kind: "onlineSoftmax" }
  | { kind: "loadV" }
  /** acc += P·V. */
  | { kind: "accumulate" };

export type TemplateStep =
  | { kind: "program" }
  | { kind: "loadQ" }
  | { kind: "initState" }
  | { kind: "blockLoop"; blocks: BlockKind; body: BlockStep[] }
  | { kind: "epilogue" };

/** The steps for one spec: the score hook only when there is a score mod, the mask only on partial blocks. */
export function templateSteps(spec: KernelSpec): TemplateStep[] {
  const body = (blocks: BlockKind): BlockStep[] => [
    { kind: "loadK" },
    { kind: "qk" },
    ...(spec.score ? [{ kind: "scoreMod" } as const] : []),
    ...(blocks === "partial" && spec.mask ? [{ kind: "maskMod" } as const] : []),
    { kind: "bounds" },
    { kind: "onlineSoftmax" },
    { kind: "loadV" },
    { kind: "accumulate" },
  ];
  return [
    { kind: "program" },
    { kind: "loadQ" },
    { kind: "initState" },
    { kind: "blockLoop", blocks: "partial", body: body("partial") },
    { kind: "blockLoop", blocks: "full", body: body("full") },
    { kind: "epilogue" },
  ];
}

/** What a backend implements: one method per step; block-loop bodies are emitted first and passed in. */
export interface TemplateEmitter<Code> {
  program(): Code;
  loadQ(): Code;
  initState(): Code;
  blockLoop(blocks: BlockKind, body: Code[]): Code;
  epilogue(): Code;
  loadK(blocks: BlockKind): Code;
  qk(blocks: BlockKind): Code;
  scoreMod(blocks: BlockKind): Code;
  maskMod(blocks: BlockKind): Code;
  bounds(blocks: BlockKind): Code;
  onlineSoftmax(blocks: BlockKind): Code;
  loadV(blocks: BlockKind): Code;
  accumulate(blocks: BlockKind): Code;
}

/** Walk the template for a spec through an emitter; returns the pieces in order. */
export function emitTemplate<Code>(spec: KernelSpec, e: TemplateEmitter<Code>): Code[] {
  return templateSteps(spec).map((step) => {
    switch (step.kind) {
      case "blockLoop":
        return e.blockLoop(step.blocks, step.body.map((b) => e[b.kind](step.blocks)));
      default:
        return e[step.kind]();
    }
  });
}

/** Numerics shared by all backends. */
export const NUMERICS = {
  LOG2E: Math.LOG2E,
  LN2: Math.LN2,
  /** Softmax runs in the exp2 domain: s2 = s·log2e; m_i is kept in log2 units. */
  domain: "exp2",
  /**
   * Zero weights follow PyTorch's flex_attention (matrix-unit P·V): every key of a block the
   * BlockMask lists for the row's query block (partial or full; keys below kvLen) adds p·V to the
   * row, p = 0 for a masked key (mask false, a -inf score, or exp underflow), so a NaN or ±inf
   * in that key's V makes the row's output NaN in those columns (0·NaN, 0·inf). Keys of
   * unlisted blocks are never read and never reach a row; keys past kvLen read V as 0. A fully
   * masked row (l = 0) has LSE -inf and out = Σ 0·V over its listed keys: 0, or NaN in a column
   * where a listed key's V is non-finite (acc·0, as every kernel computes it). The float64
   * reference defines it. The JS and CUDA f32 kernels still skip a zero weight's V row when
   * that row is finite (a per-key flag computed once per K/V tile); the plain WGSL kernel adds
   * every p·V.
   */
  zeroWeights: "listedBlocks",
  /** A +∞ or NaN score makes its row NaN (out and LSE), as IEEE softmax and PyTorch do. */
  infiniteScores: "nanRow",
} as const;
