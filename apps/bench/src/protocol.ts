/**
 * The performance protocol's variants and shapes (DESIGN.md), shared by the GPU harness
 * generators so every backend is timed on the same mods: bf16; d=128 × 16 heads and d=64 × 32
 * heads; batch = TOKENS / N.
 */
import type { MaskMod, ScoreMod } from "@flexattn/ir";
import { alibi, causal, documentCausal, prefixLM, randomDocumentIds, slidingWindow, softcap } from "@flexattn/masks";

/** Seed of document-causal's 8 random documents: the anchors rebuild the same layout from it. */
export const DOC_SEED = 1234;

export interface ProtocolVariant {
  name: string;
  mask: (n: number) => MaskMod | null;
  score: (heads: number) => ScoreMod | null;
}

export const PROTOCOL_VARIANTS: readonly ProtocolVariant[] = [
  { name: "noop", mask: () => null, score: () => null },
  { name: "causal", mask: () => causal(), score: () => null },
  { name: "sliding_window_1024", mask: () => slidingWindow(1024), score: () => null },
  { name: "prefix_lm", mask: (n) => prefixLM(n / 4), score: () => null },
  { name: "document_causal", mask: (n) => documentCausal(randomDocumentIds(n, 8, DOC_SEED)), score: () => null },
  { name: "alibi_causal", mask: () => causal(), score: (h) => alibi(h) },
  { name: "softcap_causal", mask: () => causal(), score: () => softcap(30) },
];

/** A protocol variant a user opts into through compile's config options, beside the seven. */
export interface OptInVariant extends ProtocolVariant {
  /** The config options the caller passes (`compile(..., { config: { options } })`). */
  options: Readonly<Record<string, boolean>>;
  /** The protocol variant whose flex anchor it is timed against. */
  anchor: string;
}

/** Softcapping with the approximate tanh (options.approxTanh of the Triton and CUDA backends): timed only when asked for. */
export const OPT_IN_VARIANTS: readonly OptInVariant[] = [
  { name: "softcap_causal_approx", mask: () => causal(), score: () => softcap(30), options: { approxTanh: true }, anchor: "softcap_causal" },
];

export const PROTOCOL_SHAPES: readonly { D: number; H: number }[] = [{ D: 128, H: 16 }, { D: 64, H: 32 }];
export const PROTOCOL_TOKENS = 16384;
