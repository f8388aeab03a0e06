/** Deterministic random document layouts for tests and benchmarks. */
import { FlexAttnError } from "@flexattn/ir";
import { requireInteger } from "./validate.js";

/** mulberry32: a tiny, well-mixed 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Document ids 0..numDocs-1 (sorted, each document at least one token) over n tokens, random lengths from `seed`. */
export function randomDocumentIds(n: number, numDocs: number, seed = 0): Int32Array {
  requireInteger("randomDocumentIds", "n", n, 1);
  requireInteger("randomDocumentIds", "numDocs", numDocs, 1);
  if (numDocs > n) throw new FlexAttnError(`randomDocumentIds(): ${numDocs} documents do not fit in ${n} tokens`);
  const rand = mulberry32(seed);
  // Each document gets one token, and the other n - numDocs are shared out by random weights.
  const weights = Float64Array.from({ length: numDocs }, () => rand() + 1e-9);
  const total = weights.reduce((a, b) => a + b, 0);
  const extra = n - numDocs;
  const lengths = new Int32Array(numDocs);
  let given = 0;
  for (let d = 0; d < numDocs; d++) {
    lengths[d] = 1 + Math.floor((weights[d] / total) * extra);
    given += lengths[d] - 1;
  }
  for (let d = 0; given < extra; d = (d + 1) % numDocs, given++) lengths[d]++;
  const ids = new Int32Array(n);
  let pos = 0;
  for (let d = 0; d < numDocs; d++) {
    ids.fill(d, pos, pos + lengths[d]);
    pos += lengths[d];
  }
  return ids;
}
