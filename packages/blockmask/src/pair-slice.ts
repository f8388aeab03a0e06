/**
 * Slicing a BlockMask to a rectangle of blocks: the sub-BlockMask a kernel runs when its queries
 * are one range of the sequence and its keys another (a context-parallel shard pair).
 */
import { FlexAttnError } from "@flexattn/ir";
import { BlockMask } from "./block-mask.js";
import { type TablePair, tableEntries, tablesFromKv } from "./tables.js";
import type { TableDims } from "./types.js";

/** A half-open range of block indices [start, end). */
export type BlockRange = readonly [start: number, end: number];

/** Blocks computed inside a rectangle of a BlockMask, over the logical B × H. */
export interface RectWork {
  /** Partial blocks (the mask is applied). */
  partial: number;
  /** Full blocks (the mask is skipped). */
  full: number;
}

function checkRange(fn: string, name: string, r: BlockRange, n: number): void {
  const ok = Array.isArray(r) && r.length === 2 && Number.isInteger(r[0]) && Number.isInteger(r[1]) && r[0] >= 0 && r[0] < r[1] && r[1] <= n;
  if (!ok) throw new FlexAttnError(`${fn}(): ${name} ${JSON.stringify(r)} must be a non-empty block range [start, end) within [0, ${n}]`);
}

/** Keep rows [qs, qe) and, in each, the blocks in [ks, ke), renumbered from ks. */
function cropKv(kv: TablePair, src: TableDims, dst: TableDims, qs: number, ks: number): TablePair {
  const num = new Int32Array(dst.Bm * dst.Hm * dst.numQBlocks);
  const idx = new Int32Array(tableEntries(dst));
  const ke = ks + dst.numKvBlocks;
  for (let entry = 0; entry < dst.Bm * dst.Hm; entry++) {
    for (let qb = 0; qb < dst.numQBlocks; qb++) {
      const srcRow = entry * src.numQBlocks + qs + qb;
      const dstRow = entry * dst.numQBlocks + qb;
      let n = 0;
      for (let j = 0; j < kv.num[srcRow]; j++) {
        const k = kv.idx[srcRow * src.numKvBlocks + j];
        if (k >= ks && k < ke) idx[dstRow * dst.numKvBlocks + n++] = k - ks;
      }
      num[dstRow] = n;
    }
  }
  return { num, idx };
}

/**
 * The sub-BlockMask of query blocks `qBlocks` and key blocks `kvBlocks`: its tables index the
 * rectangle's own blocks from 0, its shape covers the rectangle's tokens (the last block may be
 * ragged at the sequence end), and `offsets.q` / `offsets.kv` are where the rectangle starts, so
 * a kernel called with `qOffset = offsets.q`, `kvOffset = offsets.kv` on the matching slices of
 * Q and K/V computes exactly these blocks of the unsliced attention, with true positions in the
 * mods. Batch and head entries are kept (Bm, Hm unchanged).
 */
export function sliceBlocks(mask: BlockMask, qBlocks: BlockRange, kvBlocks: BlockRange): BlockMask {
  const fn = "sliceBlocks";
  checkRange(fn, "qBlocks", qBlocks, mask.numQBlocks);
  checkRange(fn, "kvBlocks", kvBlocks, mask.numKvBlocks);
  const [qs, qe] = qBlocks;
  const [ks, ke] = kvBlocks;
  const [bq, bkv] = mask.blockSize;
  const dims: TableDims = { Bm: mask.Bm, Hm: mask.Hm, numQBlocks: qe - qs, numKvBlocks: ke - ks };
  const partial = cropKv({ num: mask.kvNumBlocks, idx: mask.kvIndices }, mask, dims, qs, ks);
  const full = cropKv({ num: mask.fullKvNumBlocks, idx: mask.fullKvIndices }, mask, dims, qs, ks);
  return new BlockMask({
    shape: {
      B: mask.shape.B,
      H: mask.shape.H,
      qLen: Math.min(qe * bq, mask.shape.qLen) - qs * bq,
      kvLen: Math.min(ke * bkv, mask.shape.kvLen) - ks * bkv,
    },
    blockSize: mask.blockSize,
    dims,
    tables: tablesFromKv(partial, full, dims),
    maskGraph: mask.maskGraph,
    // adjust() can regrow the slice from its mask (a noop mask has none: its slices only shrink).
    source: mask.maskGraph,
    maskData: mask.maskData,
    offsets: { ...mask.offsets, q: mask.offsets.q + qs * bq, kv: mask.offsets.kv + ks * bkv },
  });
}

/**
 * Partial and full blocks of every rectangle of a grid: query blocks cut at `qCuts`, key blocks
 * at `kvCuts` (ascending block indices from 0 to numQBlocks / numKvBlocks). One pass over the
 * tables; result[i][j] is rectangle (qCuts[i]..qCuts[i+1], kvCuts[j]..kvCuts[j+1]).
 */
export function gridWork(mask: BlockMask, qCuts: readonly number[], kvCuts: readonly number[]): RectWork[][] {
  const fn = "gridWork";
  const checkCuts = (name: string, cuts: readonly number[], n: number) => {
    const ok = cuts.length >= 2 && cuts[0] === 0 && cuts[cuts.length - 1] === n && cuts.every((c, i) => i === 0 || (Number.isInteger(c) && c > cuts[i - 1]));
    if (!ok) throw new FlexAttnError(`${fn}(): ${name} must rise strictly from 0 to ${n}, got [${cuts.join(", ")}]`);
  };
  checkCuts("qCuts", qCuts, mask.numQBlocks);
  checkCuts("kvCuts", kvCuts, mask.numKvBlocks);
  const kvPiece = new Int32Array(mask.numKvBlocks);
  for (let j = 0; j + 1 < kvCuts.length; j++) kvPiece.fill(j, kvCuts[j], kvCuts[j + 1]);
  const work = qCuts.slice(1).map(() => kvCuts.slice(1).map(() => ({ partial: 0, full: 0 })));
  const repeat = (mask.shape.B / mask.Bm) * (mask.shape.H / mask.Hm);
  const KVB = mask.numKvBlocks;
  for (let i = 0; i + 1 < qCuts.length; i++) {
    for (let entry = 0; entry < mask.Bm * mask.Hm; entry++) {
      for (let qb = qCuts[i]; qb < qCuts[i + 1]; qb++) {
        const row = entry * mask.numQBlocks + qb;
        for (let j = 0; j < mask.kvNumBlocks[row]; j++) work[i][kvPiece[mask.kvIndices[row * KVB + j]]].partial += repeat;
        for (let j = 0; j < mask.fullKvNumBlocks[row]; j++) work[i][kvPiece[mask.fullKvIndices[row * KVB + j]]].full += repeat;
      }
    }
  }
  return work;
}
