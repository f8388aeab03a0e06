/** Building, checking, transposing and cropping PyTorch-layout block tables. */
import { FlexAttnError } from "@flexattn/ir";
import { BLOCK_FULL, BLOCK_PARTIAL, type BlockTables, type TableDims } from "./types.js";

/** One direction's pair of tables: counts [rows] and indices [rows, width]. */
export interface TablePair {
  num: Int32Array;
  idx: Int32Array;
}

export function tableEntries(d: TableDims): number {
  return d.Bm * d.Hm * d.numQBlocks * d.numKvBlocks;
}

export function allocateTables(d: TableDims): BlockTables {
  const rows = d.Bm * d.Hm * d.numQBlocks;
  const cols = d.Bm * d.Hm * d.numKvBlocks;
  const n = tableEntries(d);
  return {
    kvNumBlocks: new Int32Array(rows),
    kvIndices: new Int32Array(n),
    fullKvNumBlocks: new Int32Array(rows),
    fullKvIndices: new Int32Array(n),
    qNumBlocks: new Int32Array(cols),
    qIndices: new Int32Array(n),
    fullQNumBlocks: new Int32Array(cols),
    fullQIndices: new Int32Array(n),
  };
}

/**
 * Write table entry (bm, hm) from its [QB, KVB] state grid: kv rows and q columns in one
 * pass (rows are visited in order, so every q list comes out ascending).
 */
export function writeFromStates(t: BlockTables, d: TableDims, bm: number, hm: number, state: Uint8Array): void {
  const QB = d.numQBlocks;
  const KVB = d.numKvBlocks;
  const entry = bm * d.Hm + hm;
  const row0 = entry * QB;
  const col0 = entry * KVB;
  const { kvIndices, fullKvIndices, qNumBlocks, qIndices, fullQNumBlocks, fullQIndices } = t;
  for (let qb = 0; qb < QB; qb++) {
    const src = qb * KVB;
    const dst = (row0 + qb) * KVB;
    let partial = 0;
    let full = 0;
    for (let kb = 0; kb < KVB; kb++) {
      const s = state[src + kb];
      if (s === 0) continue;
      const col = col0 + kb;
      if (s === BLOCK_PARTIAL) {
        kvIndices[dst + partial++] = kb;
        qIndices[col * QB + qNumBlocks[col]++] = qb;
      } else if (s === BLOCK_FULL) {
        fullKvIndices[dst + full++] = kb;
        fullQIndices[col * QB + fullQNumBlocks[col]++] = qb;
      }
    }
    t.kvNumBlocks[row0 + qb] = partial;
    t.fullKvNumBlocks[row0 + qb] = full;
  }
}

/** The q-direction tables ([Bm, Hm, KVB], [Bm, Hm, KVB, QB]) of a kv-direction pair. */
export function transposeKv(kv: TablePair, d: TableDims): TablePair {
  const QB = d.numQBlocks;
  const KVB = d.numKvBlocks;
  const num = new Int32Array(d.Bm * d.Hm * KVB);
  const idx = new Int32Array(tableEntries(d));
  for (let entry = 0; entry < d.Bm * d.Hm; entry++) {
    for (let qb = 0; qb < QB; qb++) {
      const row = entry * QB + qb;
      const n = kv.num[row];
      for (let j = 0; j < n; j++) {
        const col = entry * KVB + kv.idx[row * KVB + j];
        idx[col * QB + num[col]++] = qb;
      }
    }
  }
  return { num, idx };
}

/**
 * Check a user-supplied kv pair and return a normalized copy: counts in [0, KVB], indices in
 * range and distinct, the valid prefix sorted ascending, padding zeroed.
 */
export function normalizeKv(what: string, kv: TablePair, d: TableDims): TablePair {
  const KVB = d.numKvBlocks;
  const rows = d.Bm * d.Hm * d.numQBlocks;
  if (kv.num.length !== rows) {
    throw new FlexAttnError(`${what}: the counts table has ${kv.num.length} entries, expected Bm·Hm·QB = ${rows}`);
  }
  if (kv.idx.length !== rows * KVB) {
    throw new FlexAttnError(`${what}: the indices table has ${kv.idx.length} entries, expected Bm·Hm·QB·KVB = ${rows * KVB}`);
  }
  const num = Int32Array.from(kv.num);
  const idx = new Int32Array(rows * KVB);
  const seen = new Uint8Array(KVB);
  for (let row = 0; row < rows; row++) {
    const n = num[row];
    if (!Number.isInteger(n) || n < 0 || n > KVB) {
      throw new FlexAttnError(`${what}: row ${row} has ${n} blocks, outside [0, ${KVB}]`);
    }
    const valid = idx.subarray(row * KVB, row * KVB + n);
    valid.set(kv.idx.subarray(row * KVB, row * KVB + n));
    for (const k of valid) {
      if (k < 0 || k >= KVB) throw new FlexAttnError(`${what}: row ${row} lists block ${k}, outside [0, ${KVB})`);
      if (seen[k]) throw new FlexAttnError(`${what}: row ${row} lists block ${k} twice`);
      seen[k] = 1;
    }
    for (const k of valid) seen[k] = 0;
    valid.sort();
  }
  return { num, idx };
}

/** Reject a block listed as both partial and full in the same row. */
export function checkDisjoint(partial: TablePair, full: TablePair, d: TableDims): void {
  const KVB = d.numKvBlocks;
  const mark = new Uint8Array(KVB);
  for (let row = 0; row < partial.num.length; row++) {
    for (let j = 0; j < partial.num[row]; j++) mark[partial.idx[row * KVB + j]] = 1;
    for (let j = 0; j < full.num[row]; j++) {
      const k = full.idx[row * KVB + j];
      if (mark[k]) throw new FlexAttnError(`fromKvBlocks: row ${row} lists block ${k} as both partial and full`);
    }
    for (let j = 0; j < partial.num[row]; j++) mark[partial.idx[row * KVB + j]] = 0;
  }
}

/**
 * Copy kv rows into a new table shape: entry (bm, hm) of the result takes source entry
 * pick(bm, hm), rows [qStart, qStart + QB'), keeping only blocks below KVB'.
 */
export function remapKv(kv: TablePair, src: TableDims, dst: TableDims, pick: (bm: number, hm: number) => number, qStart: number): TablePair {
  const num = new Int32Array(dst.Bm * dst.Hm * dst.numQBlocks);
  const idx = new Int32Array(tableEntries(dst));
  for (let bm = 0; bm < dst.Bm; bm++) {
    for (let hm = 0; hm < dst.Hm; hm++) {
      const from = pick(bm, hm);
      const to = bm * dst.Hm + hm;
      for (let qb = 0; qb < dst.numQBlocks; qb++) {
        const srcRow = from * src.numQBlocks + qStart + qb;
        const dstRow = to * dst.numQBlocks + qb;
        let n = 0;
        for (let j = 0; j < kv.num[srcRow]; j++) {
          const k = kv.idx[srcRow * src.numKvBlocks + j];
          if (k < dst.numKvBlocks) idx[dstRow * dst.numKvBlocks + n++] = k;
        }
        num[dstRow] = n;
      }
    }
  }
  return { num, idx };
}

/** All eight tables from the two kv pairs. */
export function tablesFromKv(partial: TablePair, full: TablePair, d: TableDims): BlockTables {
  const q = transposeKv(partial, d);
  const fq = transposeKv(full, d);
  return {
    kvNumBlocks: partial.num,
    kvIndices: partial.idx,
    fullKvNumBlocks: full.num,
    fullKvIndices: full.idx,
    qNumBlocks: q.num,
    qIndices: q.idx,
    fullQNumBlocks: fq.num,
    fullQIndices: fq.idx,
  };
}
