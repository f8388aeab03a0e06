/**
 * The standard mask mods, with PyTorch / attention-gym semantics. Every factory returns a
 * plain `(b, h, q, kv) => bool` function with four declared parameters (tracing checks it).
 */
import type { MaskMod } from "@flexattn/ir";
import { FlexAttnError, abs, buffer, floorDiv, mod } from "@flexattn/ir";
import { andMasks, orMasks } from "./combinators.js";
import { requireInt32Array, requireInteger } from "./validate.js";

/** Keeps everything (no masking). */
export function noop(): MaskMod {
  return (_b, _h, _q, _kv) => true;
}

/** Causal: each query sees itself and earlier keys, kv <= q. */
export function causal(): MaskMod {
  return (_b, _h, q, kv) => q.ge(kv);
}

export interface SlidingWindowOptions {
  /** true (default): keep kv in [q - w, q]; false: keep |q - kv| <= w (two-sided). */
  causal?: boolean;
}

/** Sliding window of w: causal keeps kv in [q - w, q] (w + 1 keys), two-sided keeps |q - kv| <= w. */
export function slidingWindow(w: number, options: SlidingWindowOptions = {}): MaskMod {
  requireInteger("slidingWindow", "w", w, 0);
  if (options.causal ?? true) {
    return (_b, _h, q, kv) => q.ge(kv).and(q.sub(kv).le(w));
  }
  return (_b, _h, q, kv) => abs(q.sub(kv)).le(w);
}

/** Prefix-LM: keys before the prefix are visible to all queries, the rest causally; prefix is one length or one per batch (Int32Array). */
export function prefixLM(prefix: number | Int32Array): MaskMod {
  if (typeof prefix === "number") {
    requireInteger("prefixLM", "prefix", prefix, 0);
    return orMasks((_b, _h, _q, kv) => kv.lt(prefix), causal());
  }
  const data = requireInt32Array("prefixLM", "prefix", prefix);
  data.forEach((p, i) => {
    if (p < 0) throw new FlexAttnError(`prefixLM(): prefix[${i}] = ${p} is negative`);
  });
  const lengths = buffer(data, { name: "prefix" });
  return orMasks((b, _h, _q, kv) => kv.lt(lengths.at(b)), causal());
}

/** Document masking: q and kv attend only within the same document (docIds[q] == docIds[kv]). */
export function document(docIds: Int32Array): MaskMod {
  const docs = buffer(requireInt32Array("document", "docIds", docIds), { name: "docIds" });
  return (_b, _h, q, kv) => docs.at(q).eq(docs.at(kv));
}

/** Document masking and causal: the usual mask for packed sequences. */
export function documentCausal(docIds: Int32Array): MaskMod {
  requireInt32Array("documentCausal", "docIds", docIds);
  return andMasks(causal(), document(docIds));
}

/** Dilated sliding window: causal window w (kv in [q - w, q]) keeping only kv with (q - kv) % d == 0. */
export function dilatedSlidingWindow(w: number, d: number): MaskMod {
  requireInteger("dilatedSlidingWindow", "w", w, 0);
  requireInteger("dilatedSlidingWindow", "d", d, 1);
  return andMasks(slidingWindow(w), (_b, _h, q, kv) => mod(q.sub(kv), d).eq(0));
}

/** Chunked attention: q and kv in the same chunk of `size` tokens, floorDiv(q, size) == floorDiv(kv, size). */
export function chunked(size: number): MaskMod {
  requireInteger("chunked", "size", size, 1);
  return (_b, _h, q, kv) => floorDiv(q, size).eq(floorDiv(kv, size));
}

/** Chunked attention, causal within each chunk (Llama 4 style local attention). */
export function chunkedCausal(size: number): MaskMod {
  requireInteger("chunkedCausal", "size", size, 1);
  return andMasks(causal(), chunked(size));
}
