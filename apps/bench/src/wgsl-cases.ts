/**
 * The WGSL benchmark's cases: the performance protocol's variants (DESIGN.md), their inputs
 * (uniform in [-2, 2), made once per size) as flexAttention takes them, and a float64 spot check
 * of an output.
 */
import {
  type BlockMask, type FlexAttentionOptions, type KernelInvocation, type MaskMod, type ScoreMod, type Tensor,
  alibi, causal, createBlockMask, documentCausal, prefixLM, randomDocumentIds, slidingWindow, softcap, tensor,
} from "flexattn";
import { type QueryRow, compareEachRow } from "@flexattn/template";

interface Variant {
  mask?: (n: number) => MaskMod;
  score?: (heads: number) => ScoreMod;
}

/** Document layouts of document-causal; the PyTorch anchors read the same layouts (docs-N.json). */
export const DOCS_SEED = 1234;
export const DOCS = 8;
export const VARIANTS: Record<string, Variant> = {
  noop: {},
  causal: { mask: () => causal() },
  "sliding-window-1024": { mask: () => slidingWindow(1024) },
  "prefix-lm": { mask: (n) => prefixLM(n / 4) },
  "document-causal": { mask: (n) => documentCausal(randomDocumentIds(n, DOCS, DOCS_SEED)) },
  "alibi-causal": { mask: () => causal(), score: (h) => alibi(h) },
  "softcap-causal": { mask: () => causal(), score: () => softcap(30) },
};

export interface Case {
  variant: string;
  n: number;
  batch: number;
  heads: number;
  d: number;
}

const arrays = new Map<string, Float32Array>();
/** Reused input arrays (filled once per size): uniform in [-2, 2), cheap to make at 33M elements. */
function input(name: string, n: number): Float32Array {
  const key = `${name}:${n}`;
  let a = arrays.get(key);
  if (!a) {
    for (const k of [...arrays.keys()]) if (k.startsWith(`${name}:`)) arrays.delete(k);
    a = new Float32Array(n);
    let s = (n * 2654435761 + name.charCodeAt(0)) >>> 0;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      a[i] = (s / 2 ** 32) * 4 - 2;
    }
    arrays.set(key, a);
  }
  return a;
}

/** One case as a flexAttention call: q, k, v and the options that carry its mods. */
export interface PublicCall {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  options: Pick<FlexAttentionOptions, "blockMask" | "scoreMod">;
  blockMask: BlockMask;
}

export function publicCall(c: Case): PublicCall {
  const v = VARIANTS[c.variant];
  if (!v) throw new Error(`unknown variant "${c.variant}"; one of ${Object.keys(VARIANTS).join(", ")}`);
  const shape = [c.batch, c.heads, c.n, c.d];
  const size = c.batch * c.heads * c.n * c.d;
  const blockMask = createBlockMask(v.mask?.(c.n) ?? ((_b, _h, _q, _kv) => true), { qLen: c.n, kvLen: c.n, blockSize: 128 });
  return {
    q: tensor(input("q", size), shape), k: tensor(input("k", size), shape), v: tensor(input("v", size), shape),
    // A dense case passes no BlockMask, as a user would.
    options: { ...(v.mask ? { blockMask } : {}), ...(v.score ? { scoreMod: v.score(c.heads) } : {}) },
    blockMask,
  };
}

/**
 * Max relative error of a few output rows against the float64 reference (each row on its own
 * scale, max(1, max |ref|)): the first row, the last, and random ones; Infinity where an output
 * is NaN. `inv` is the call's invocation with `out` holding the output to check.
 */
export function spotCheck(inv: KernelInvocation, rows = 12): number {
  const p = inv.problem;
  let seed = 99;
  const rnd = (m: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), seed % m);
  const picked: QueryRow[] = Array.from({ length: rows }, (_, t) => {
    const b = rnd(p.batch), h = rnd(p.qHeads);
    return { b, h, i: t === 0 ? 0 : t === 1 ? p.qLen - 1 : rnd(p.qLen) };
  });
  return Math.max(0, ...compareEachRow(inv, picked).map((e) => (e.badElements ? Infinity : e.outError)));
}
