/**
 * The attention problem: sizes, dtype, layout, scale and offsets. Head dims, dtype and the
 * GQA structure are compile-time; lengths, batch, head counts and strides are runtime.
 */
import { FlexAttnError } from "@flexattn/ir";
import type { StorageDType } from "./tensor.js";

export type Layout = "bhsd" | "bshd";

export interface AttentionProblem {
  batch: number;
  qHeads: number;
  kvHeads: number;
  qLen: number;
  kvLen: number;
  qkHeadDim: number;
  vHeadDim: number;
  dtype: StorageDType;
  /** Softmax scale; defaults to 1/sqrt(qkHeadDim). */
  scale?: number;
  /** Added to query / key indices before the mods see them (global positions). */
  qOffset?: number;
  kvOffset?: number;
  /** Also write the log-sum-exp (natural log, f32, -inf for fully masked rows). */
  returnLse?: boolean;
  /** Memory layout of q, k, v and out when no explicit strides are given. Default "bhsd". */
  layout?: Layout;
}

export type ResolvedProblem = Required<AttentionProblem>;

export const MIN_HEAD_DIM = 16;
export const MAX_HEAD_DIM = 256;

function positiveInt(name: string, v: unknown): number {
  // Kernels index with 32-bit integers.
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v >= 2 ** 31) {
    throw new FlexAttnError(`${name} must be a positive integer below 2^31, got ${String(v)}`);
  }
  return v;
}

/** Validate a problem and fill its defaults. */
export function resolveProblem(p: AttentionProblem): ResolvedProblem {
  if (p === null || typeof p !== "object") {
    throw new FlexAttnError(`the problem must be an object { batch, qHeads, kvHeads, qLen, kvLen, qkHeadDim, vHeadDim, dtype, … }, got ${String(p)}`);
  }
  const batch = positiveInt("batch", p.batch);
  const qHeads = positiveInt("qHeads", p.qHeads);
  const kvHeads = positiveInt("kvHeads", p.kvHeads);
  const qLen = positiveInt("qLen", p.qLen);
  const kvLen = positiveInt("kvLen", p.kvLen);
  const qkHeadDim = positiveInt("qkHeadDim", p.qkHeadDim);
  const vHeadDim = positiveInt("vHeadDim", p.vHeadDim);
  if (qHeads % kvHeads !== 0) {
    throw new FlexAttnError(`qHeads (${qHeads}) must be a multiple of kvHeads (${kvHeads}) for grouped-query attention`);
  }
  for (const [name, d] of [["qkHeadDim", qkHeadDim], ["vHeadDim", vHeadDim]] as const) {
    if (d < MIN_HEAD_DIM || d > MAX_HEAD_DIM) {
      throw new FlexAttnError(`${name} ${d} is outside the supported range [${MIN_HEAD_DIM}, ${MAX_HEAD_DIM}]`);
    }
  }
  if (!["f32", "f16", "bf16"].includes(p.dtype)) throw new FlexAttnError(`dtype must be f32, f16 or bf16, got ${String(p.dtype)}`);
  const scale = p.scale ?? 1 / Math.sqrt(qkHeadDim);
  if (!Number.isFinite(scale)) throw new FlexAttnError(`scale must be a finite number, got ${scale}`);
  const qOffset = p.qOffset ?? 0;
  const kvOffset = p.kvOffset ?? 0;
  for (const [name, o] of [["qOffset", qOffset], ["kvOffset", kvOffset]] as const) {
    if (!Number.isInteger(o) || o < 0 || o > 2 ** 30) throw new FlexAttnError(`${name} must be an integer in [0, 2^30], got ${o}`);
  }
  const layout = p.layout ?? "bhsd";
  if (layout !== "bhsd" && layout !== "bshd") throw new FlexAttnError(`layout must be "bhsd" or "bshd", got ${String(layout)}`);
  return {
    batch, qHeads, kvHeads, qLen, kvLen, qkHeadDim, vHeadDim, dtype: p.dtype, scale, qOffset, kvOffset,
    returnLse: p.returnLse ?? false, layout,
  };
}

export const groupSize = (p: AttentionProblem): number => p.qHeads / p.kvHeads;

/** Element strides [b, h, s, d] of a tensor with `heads` heads of `dim`, in a layout. */
export function layoutStrides(layout: Layout, heads: number, len: number, dim: number): [number, number, number, number] {
  return layout === "bhsd" ? [heads * len * dim, len * dim, dim, 1] : [len * heads * dim, dim, heads * dim, 1];
}

/** Strides of every tensor of the problem: q, k, v, out as [b, h, s, d]; lse is [b, h, s] contiguous. */
export interface ProblemStrides {
  q: readonly number[];
  k: readonly number[];
  v: readonly number[];
  out: readonly number[];
}

export function defaultStrides(p: ResolvedProblem): ProblemStrides {
  return {
    q: layoutStrides(p.layout, p.qHeads, p.qLen, p.qkHeadDim),
    k: layoutStrides(p.layout, p.kvHeads, p.kvLen, p.qkHeadDim),
    v: layoutStrides(p.layout, p.kvHeads, p.kvLen, p.vHeadDim),
    out: layoutStrides(p.layout, p.qHeads, p.qLen, p.vHeadDim),
  };
}

/** Useful FLOPs of the dense problem: 2·qk + 2·pv multiply-adds per (query, key) pair. */
export function attentionFlops(p: AttentionProblem, density = 1): number {
  return 2 * p.batch * p.qHeads * p.qLen * p.kvLen * (p.qkHeadDim + p.vHeadDim) * density;
}
