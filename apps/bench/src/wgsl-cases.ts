/**
 * The WGSL benchmarks' cases (wgsl-bench, wgsl-matrix-bisect): the protocol's variants, their
 * inputs (uniform in [-2, 2), made once per size), kernel invocations, and a float64 spot check.
 */
import { type MaskMod, type ModGraph, type ScoreMod, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { alibi, causal, documentCausal, prefixLM, randomDocumentIds, slidingWindow, softcap } from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import { type BlockMaskTables, type KernelInvocation, type QueryRow, compareEachRow, defaultStrides, resolveProblem } from "@flexattn/template";

// ---- the protocol's variants -------------------------------------------------------------

interface Variant {
  mask?: (n: number) => MaskMod;
  score?: (heads: number) => ScoreMod;
}

export const DOCS_SEED = 1234;
export const VARIANTS: Record<string, Variant> = {
  noop: {},
  causal: { mask: () => causal() },
  "sliding-window-1024": { mask: () => slidingWindow(1024) },
  "prefix-lm": { mask: (n) => prefixLM(n / 4) },
  "document-causal": { mask: (n) => documentCausal(randomDocumentIds(n, 8, DOCS_SEED)) },
  "alibi-causal": { mask: () => causal(), score: (h) => alibi(h) },
  "softcap-causal": { mask: () => causal(), score: () => softcap(30) },
};

// ---- inputs ------------------------------------------------------------------------------

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

export interface Case {
  variant: string;
  n: number;
  batch: number;
  heads: number;
  d: number;
}

export function invocation(c: Case): { inv: KernelInvocation; density: number } {
  const v = VARIANTS[c.variant];
  const maskFn = v.mask?.(c.n);
  const mask: ModGraph | null = maskFn ? traceMaskMod(maskFn) : null;
  const score = v.score ? traceScoreMod(v.score(c.heads)) : null;
  const problem = resolveProblem({ batch: c.batch, qHeads: c.heads, kvHeads: c.heads, qLen: c.n, kvLen: c.n, qkHeadDim: c.d, vHeadDim: c.d, dtype: "f32" });
  const bm = createBlockMask(maskFn ?? ((_b, _h, _q, _kv) => true), { qLen: c.n, kvLen: c.n, blockSize: 128 });
  const size = c.batch * c.heads * c.n * c.d;
  const shape = [c.batch, c.heads, c.n, c.d];
  const strides = defaultStrides(problem);
  const inv: KernelInvocation = {
    problem, strides, mask, score, blockMask: bm as unknown as BlockMaskTables,
    q: { data: input("q", size), shape, dtype: "f32", strides: strides.q },
    k: { data: input("k", size), shape, dtype: "f32", strides: strides.k },
    v: { data: input("v", size), shape, dtype: "f32", strides: strides.v },
    out: input("out", size),
    lse: new Float32Array(0),
  };
  return { inv, density: bm.density() };
}

/**
 * Max relative error of a few output rows against the float64 reference (each row on its own
 * scale, max(1, max |ref|)): the first row, the last, and random ones; Infinity where an output is NaN.
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

/** Largest |a − b| over two outputs of one invocation; Infinity where a is NaN. */
export function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Number.isNaN(a[i]) ? Infinity : Math.abs(a[i] - b[i]));
  return m;
}
