/**
 * The float64 reference: dense attention over the mod semantics (mods evaluated by the IR
 * evaluator, independent of every renderer) and the BlockMask's block structure.
 */
import { type ModGraph, evaluate } from "@flexattn/ir";
import type { BlockMaskTables } from "./blockmask-tables.js";
import { fullTablesOf } from "./blockmask-tables.js";
import type { ResolvedProblem } from "./problem.js";
import { type Tensor, stridesOf, toFloat32 } from "./tensor.js";

export interface AttentionCall {
  problem: ResolvedProblem;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  mask: ModGraph | null;
  score: ModGraph | null;
  blockMask: BlockMaskTables;
}

export interface ReferenceResult {
  /** [B, Hq, qLen, Dv], contiguous. */
  out: Float64Array;
  /** [B, Hq, qLen]; -inf for fully masked rows. */
  lse: Float64Array;
}

/** Per kv block of a query-block row: 0 skipped, 1 partial (mask applies), 2 full. */
function blockRowKinds(t: BlockMaskTables, b: number, h: number, row: number): Uint8Array {
  const kinds = new Uint8Array(t.numKvBlocks);
  const base = ((b % t.Bm) * t.Hm + (h % t.Hm)) * t.numQBlocks + row;
  const { fullKvNumBlocks, fullKvIndices } = fullTablesOf(t);
  for (let i = 0; i < t.kvNumBlocks[base]; i++) kinds[t.kvIndices[base * t.numKvBlocks + i]] = 1;
  for (let i = 0; i < fullKvNumBlocks[base]; i++) kinds[fullKvIndices[base * t.numKvBlocks + i]] = 2;
  return kinds;
}

/** Query position (b, h, i) of an attention call. */
export interface QueryRow {
  b: number;
  h: number;
  i: number;
}

/**
 * Row scores of an attention call: for row (b, h, i), x[j] = (q·k_j)·scale and s[j] = scoreMod(x[j])
 * for the keys the BlockMask and mask keep, s[j] = -inf for the others; listed[j], when passed,
 * is 1 for the keys of the blocks the BlockMask lists for the row's query block (partial or
 * full), 0 for the others. Returns the row's max score (NaN when a score is NaN). The inputs are
 * converted once, when the function is made.
 */
export function rowScorer(call: AttentionCall): (row: QueryRow, x: Float64Array, s: Float64Array, listed?: Uint8Array) => number {
  const { problem: p, mask, score, blockMask: t } = call;
  const q = toFloat32(call.q.data, call.q.dtype);
  const k = toFloat32(call.k.data, call.k.dtype);
  const [qsb, qsh, qss] = stridesOf(call.q);
  const [ksb, ksh, kss] = stridesOf(call.k);
  const group = p.qHeads / p.kvHeads;
  const [bq, bkv] = t.blockSize;
  let kindsOf: { key: string; kinds: Uint8Array } = { key: "", kinds: new Uint8Array(0) };
  return ({ b, h, i }, x, s, listed) => {
    const hk = Math.floor(h / group);
    const key = `${b}:${h}:${Math.floor(i / bq)}`;
    if (kindsOf.key !== key) kindsOf = { key, kinds: blockRowKinds(t, b, h, Math.floor(i / bq)) };
    const { kinds } = kindsOf;
    const qi = i + p.qOffset;
    let m = -Infinity;
    let nan = false;
    for (let j = 0; j < p.kvLen; j++) {
      const kind = kinds[Math.floor(j / bkv)];
      const kj = j + p.kvOffset;
      if (listed) listed[j] = kind === 0 ? 0 : 1;
      if (kind === 0 || (kind === 1 && mask && !evaluate(mask, { b, h, q: qi, kv: kj }))) {
        s[j] = -Infinity;
        continue;
      }
      let dot = 0;
      for (let d = 0; d < p.qkHeadDim; d++) dot += q[b * qsb + h * qsh + i * qss + d] * k[b * ksb + hk * ksh + j * kss + d];
      x[j] = dot * p.scale;
      s[j] = score ? (evaluate(score, { score: x[j], b, h, q: qi, kv: kj }) as number) : x[j];
      if (s[j] > m) m = s[j];
      else if (Number.isNaN(s[j])) nan = true;
    }
    return nan ? NaN : m;
  };
}

/**
 * The reference row by row: out receives row (b, h, i)'s vHeadDim outputs at `at`, and the row's
 * LSE is returned. The inputs are converted once, when the function is made.
 *
 * Every key of a block the BlockMask lists for the row (j < kvLen) adds w·V[j] in IEEE
 * arithmetic, w = 0 for a masked key, so a NaN or ±inf in such a key's V makes those output
 * columns NaN (0·NaN, 0·inf), as matrix-unit P·V and PyTorch's flex_attention do; keys of
 * unlisted blocks are never read (NUMERICS.zeroWeights).
 */
function rowReference(call: AttentionCall): (row: QueryRow, out: Float64Array, at: number) => number {
  const p = call.problem;
  const scores = rowScorer(call);
  const v = toFloat32(call.v.data, call.v.dtype);
  const [vsb, vsh, vss] = stridesOf(call.v);
  const group = p.qHeads / p.kvHeads;
  const x = new Float64Array(p.kvLen);
  const s = new Float64Array(p.kvLen);
  const listed = new Uint8Array(p.kvLen);
  return (row, out, at) => {
    const { b, h } = row;
    const hk = Math.floor(h / group);
    const m = scores(row, x, s, listed);
    if (Number.isNaN(m)) {
      // IEEE propagation: a NaN score poisons its whole row.
      out.fill(NaN, at, at + p.vHeadDim);
      return NaN;
    }
    let l = 0;
    for (let j = 0; j < p.kvLen; j++) {
      const w = s[j] === -Infinity ? 0 : Math.exp(s[j] - m);
      s[j] = w;
      l += w;
    }
    // A fully masked row (l = 0: every weight 0) has LSE -inf and out = Σ 0·V over its listed keys:
    // 0, or NaN in a column where one of them holds NaN/±inf.
    for (let j = 0; j < p.kvLen; j++) {
      if (!listed[j]) continue;
      const w = l === 0 ? 0 : s[j] / l;
      for (let d = 0; d < p.vHeadDim; d++) out[at + d] += w * v[b * vsb + hk * vsh + j * vss + d];
    }
    return l === 0 ? -Infinity : m + Math.log(l);
  };
}

export function referenceAttention(call: AttentionCall): ReferenceResult {
  const p = call.problem;
  const out = new Float64Array(p.batch * p.qHeads * p.qLen * p.vHeadDim);
  const lse = new Float64Array(p.batch * p.qHeads * p.qLen);
  const row = rowReference(call);
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.qHeads; h++)
      for (let i = 0; i < p.qLen; i++) {
        const r = (b * p.qHeads + h) * p.qLen + i;
        lse[r] = row({ b, h, i }, out, r * p.vHeadDim);
      }
  return { out, lse };
}

/** The reference for some rows only (a spot check of a large call): rows.length × vHeadDim outputs and the rows' LSEs. */
export function referenceRows(call: AttentionCall, rows: readonly QueryRow[]): ReferenceResult {
  const dv = call.problem.vHeadDim;
  const out = new Float64Array(rows.length * dv);
  const row = rowReference(call);
  const lse = Float64Array.from(rows, (r, n) => row(r, out, n * dv));
  return { out, lse };
}
