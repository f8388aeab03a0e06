/**
 * Merging attention computed over disjoint sets of keys: the exact combination by log-sum-exp
 * that a ring (or any split of the keys) needs.
 */
import { FlexAttnError } from "@flexattn/ir";

type Floats = Float32Array | Float64Array;

/**
 * Attention rows over some keys: `out` [rows, Dv] row-major and `lse` [rows], natural log, -inf
 * for a row that saw no key (its out is 0) — what kernels return with returnLse.
 */
export interface AttentionPartial {
  out: Floats;
  lse: Floats;
}

/**
 * Merge `part` into `acc` in place, row by row, exactly: with m = max(lseA, lseB),
 * lse = m + ln(e^(lseA−m) + e^(lseB−m)) and out = (outA·e^(lseA−m) + outB·e^(lseB−m)) / (e^(lseA−m) + e^(lseB−m)).
 * Since out = Σ e^s v / Σ e^s and lse = ln Σ e^s over each key set, this is attention over the
 * union. A row with lse -inf contributes nothing; two such rows stay out 0, lse -inf. Start the
 * accumulator at out 0, lse -inf. Pass subarrays to merge a subset of rows.
 */
export function mergeAttentionPartial(acc: AttentionPartial, part: AttentionPartial): void {
  const rows = acc.lse.length;
  if (part.lse.length !== rows || acc.out.length !== part.out.length || (rows === 0 ? acc.out.length !== 0 : acc.out.length % rows !== 0)) {
    throw new FlexAttnError(
      `mergeAttentionPartial(): shapes differ: acc has ${rows} rows and ${acc.out.length} outputs, part ${part.lse.length} rows and ${part.out.length} outputs`,
    );
  }
  const dv = rows === 0 ? 0 : acc.out.length / rows;
  for (let i = 0; i < rows; i++) {
    const la = acc.lse[i];
    const lb = part.lse[i];
    if (Number.isNaN(la) || Number.isNaN(lb) || la === Infinity || lb === Infinity) {
      throw new FlexAttnError(`mergeAttentionPartial(): row ${i} has lse ${la} and ${lb}; an LSE must be finite or -inf`);
    }
    if (lb === -Infinity) continue;
    const m = Math.max(la, lb);
    const wa = Math.exp(la - m);
    const wb = Math.exp(lb - m);
    const sum = wa + wb;
    acc.lse[i] = m + Math.log(sum);
    const ca = wa / sum;
    const cb = wb / sum;
    for (let d = i * dv; d < (i + 1) * dv; d++) acc.out[d] = acc.out[d] * ca + part.out[d] * cb;
  }
}
