/**
 * The library as data, so other packages (conformance cases, docs, benches) can enumerate
 * every mask and score mod with sensible arguments for a given problem size.
 */
import type { MaskMod, ScoreMod } from "@flexattn/ir";
import { randomDocumentIds } from "./documents.js";
import {
  causal, chunked, chunkedCausal, dilatedSlidingWindow, document, documentCausal, noop, prefixLM, slidingWindow,
} from "./masks.js";
import { alibi, relativePosition, softcap } from "./score-mods.js";

/** The problem an example is made for: batch, heads and sequence lengths. */
export interface ExampleShape {
  B: number;
  H: number;
  qLen: number;
  kvLen: number;
}

export interface LibraryEntry<Mod> {
  /** Unique id; the factory's export name, with a suffix for variants (e.g. "slidingWindow.twoSided"). */
  name: string;
  /** The exported factory. */
  factory: (...args: never[]) => Mod;
  /** Example arguments that suit the shape (a window a quarter of the length, documents covering it, ...). */
  exampleArgs: (shape: ExampleShape) => unknown[];
  /** `factory(...exampleArgs(shape))`. */
  create: (shape: ExampleShape) => Mod;
  description: string;
}

function entry<Mod, A extends unknown[]>(
  name: string,
  factory: (...args: A) => Mod,
  exampleArgs: (shape: ExampleShape) => [...NoInfer<A>],
  description: string,
): LibraryEntry<Mod> {
  return {
    name,
    factory: factory as unknown as (...args: never[]) => Mod,
    exampleArgs,
    create: (shape) => factory(...exampleArgs(shape)),
    description,
  };
}

const longest = (s: ExampleShape) => Math.max(s.qLen, s.kvLen);
const quarter = (s: ExampleShape) => Math.max(1, Math.floor(longest(s) / 4));
const docsFor = (s: ExampleShape) => randomDocumentIds(longest(s), Math.min(4, longest(s)), 1);

/** Every library mask mod with example arguments. */
export const LIBRARY_MASKS: readonly LibraryEntry<MaskMod>[] = [
  entry("noop", noop, () => [], "no masking"),
  entry("causal", causal, () => [], "kv <= q"),
  entry("slidingWindow", slidingWindow, (s) => [quarter(s)], "causal window: kv in [q - w, q]"),
  entry("slidingWindow.twoSided", slidingWindow, (s) => [quarter(s), { causal: false }], "|q - kv| <= w"),
  entry("prefixLM", prefixLM, (s) => [Math.floor(s.kvLen / 4)], "kv < prefix, or causal"),
  entry(
    "prefixLM.perBatch",
    prefixLM,
    (s) => [Int32Array.from({ length: s.B }, (_, b) => Math.floor((s.kvLen * (b + 1)) / (s.B + 2)))],
    "kv < prefix[b], or causal",
  ),
  entry("document", document, (s) => [docsFor(s)], "same document"),
  entry("documentCausal", documentCausal, (s) => [docsFor(s)], "same document and causal"),
  entry("dilatedSlidingWindow", dilatedSlidingWindow, (s) => [quarter(s), 3], "causal window w, every d-th key"),
  entry("chunked", chunked, (s) => [Math.max(1, Math.floor(longest(s) / 3))], "same chunk"),
  entry("chunkedCausal", chunkedCausal, (s) => [Math.max(1, Math.floor(longest(s) / 3))], "same chunk and causal"),
];

/** Every library score mod with example arguments. */
export const LIBRARY_SCORE_MODS: readonly LibraryEntry<ScoreMod>[] = [
  entry("alibi", alibi, (s) => [s.H], "score + slope[h] * (kv - q)"),
  entry("softcap", softcap, () => [30], "cap * tanh(score / cap)"),
  entry("relativePosition", relativePosition, () => [], "score + (q - kv)"),
];
