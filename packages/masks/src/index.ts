export { andMasks, orMasks, notMask, composeScoreMods } from "./combinators.js";
export {
  noop, causal, slidingWindow, prefixLM, document, documentCausal, dilatedSlidingWindow, chunked, chunkedCausal,
} from "./masks.js";
export type { SlidingWindowOptions } from "./masks.js";
export { alibi, alibiSlopes, softcap, relativePosition } from "./score-mods.js";
export { randomDocumentIds, mulberry32 } from "./documents.js";
export { LIBRARY_MASKS, LIBRARY_SCORE_MODS } from "./registry.js";
export type { ExampleShape, LibraryEntry } from "./registry.js";
