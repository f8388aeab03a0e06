/**
 * The names a playground mod can use: the tracing DSL and the mask library, as in
 * `import { ... } from "flexattn"`, plus the problem's sizes.
 */
import {
  abs, alibi, andMasks, buffer, causal, chunked, chunkedCausal, composeScoreMods, dilatedSlidingWindow, document,
  documentCausal, exp, exp2, floorDiv, log, log2, max, min, mod, noop, notMask, orMasks, prefixLM, randomDocumentIds,
  relativePosition, sigmoid, slidingWindow, softcap, sqrt, tanh, toF32, toI32, where,
} from "flexattn";

export const DSL_NAMES = {
  where, min, max, floorDiv, mod, abs, exp, exp2, log, log2, sqrt, tanh, sigmoid, toF32, toI32, buffer,
} as const;

export const LIBRARY_NAMES = {
  andMasks, orMasks, notMask, composeScoreMods, noop, causal, slidingWindow, prefixLM, document, documentCausal,
  dilatedSlidingWindow, chunked, chunkedCausal, alibi, softcap, relativePosition, randomDocumentIds,
} as const;

/** The problem's sizes, visible to mods as `N` (sequence length) and `H` (query heads). */
export interface ScopeSizes {
  N: number;
  H: number;
}

export function modScope(sizes: ScopeSizes): Record<string, unknown> {
  return { ...DSL_NAMES, ...LIBRARY_NAMES, N: sizes.N, H: sizes.H };
}
