/**
 * The WGSL benchmarks' cases (wgsl-bench, wgsl-matrix-bisect): the protocol's variants, their
 * inputs (uniform in [-2, 2), made once per size), kernel invocations, and a float64 spot check.
 */
import { type MaskMod, type ModGraph, type ScoreMod, evaluate, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { alibi, causal, documentCausal, prefixLM, randomDocumentIds, slidingWindow, softcap } from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import { type BlockMaskTables, type KernelInvocation, defaultStrides, resolveProblem } from "@flexattn/template";

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

/** Max relative error of a few output rows against a float64 reference evaluated from the mods. */
export function spotCheck(inv: KernelInvocation, rows = 12): number {
  const p = inv.problem;
  const q = inv.q.data as Float32Array, k = inv.k.data as Float32Array, v = inv.v.data as Float32Array;
  const [sb, sh, ss] = inv.strides.q;
  let err = 0;
  let seed = 99;
  const rnd = (m: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), seed % m);
  const s = new Float64Array(p.kvLen);
  for (let t = 0; t < rows; t++) {
    const b = rnd(p.batch), h = rnd(p.qHeads), i = t === 0 ? 0 : t === 1 ? p.qLen - 1 : rnd(p.qLen);
    const qo = b * sb + h * sh + i * ss;
    let m = -Infinity;
    for (let j = 0; j < p.kvLen; j++) {
      if (inv.mask && !evaluate(inv.mask, { b, h, q: i, kv: j })) { s[j] = -Infinity; continue; }
      const ko = b * sb + h * sh + j * ss;
      let dot = 0;
      for (let d = 0; d < p.qkHeadDim; d++) dot += q[qo + d] * k[ko + d];
      let x = dot * p.scale;
      if (inv.score) x = evaluate(inv.score, { score: x, b, h, q: i, kv: j }) as number;
      s[j] = x;
      m = Math.max(m, x);
    }
    let l = 0;
    for (let j = 0; j < p.kvLen; j++) l += s[j] === -Infinity ? 0 : Math.exp(s[j] - m);
    const ref = new Float64Array(p.vHeadDim);
    for (let j = 0; j < p.kvLen; j++) {
      if (s[j] === -Infinity) continue;
      const w = Math.exp(s[j] - m) / l;
      const vo = b * sb + h * sh + j * ss;
      for (let d = 0; d < p.vHeadDim; d++) ref[d] += w * v[vo + d];
    }
    const maxRef = Math.max(1, ...ref.map(Math.abs));
    for (let d = 0; d < p.vHeadDim; d++) {
      const got = inv.out[qo + d];
      const e = Number.isNaN(got) ? Infinity : Math.abs(got - ref[d]) / maxRef;
      err = Math.max(err, e);
    }
  }
  return err;
}
