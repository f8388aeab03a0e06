/**
 * BlockMask: which (query block, key block) tiles attention computes, with PyTorch's tables
 * and field meaning, so masks interoperate. Built by createBlockMask or fromKvBlocks.
 */
import type { BufferData, MaskMod, ModGraph } from "@flexattn/ir";
import { FlexAttnError, traceMaskMod } from "@flexattn/ir";
import { buildTables, type BuildStats } from "./build.js";
import { renderPicture, type PictureOptions } from "./picture.js";
import { checkDisjoint, normalizeKv, remapKv, tableEntries, tablesFromKv, type TablePair } from "./tables.js";
import {
  BLOCK_FULL, BLOCK_PARTIAL, NO_OFFSETS, type BlockMaskShape, type BlockTables, type IndexOffsets, type TableDims,
} from "./types.js";
import { isMaskGraph, positiveInt, requireBlockSize } from "./validate.js";
import { checkMaskDataUnchanged, snapshotMaskData } from "./mask-data.js";

/** toDense() refuses to build more than this many block entries (16 Mi, 16 MiB). */
export const TO_DENSE_LIMIT = 2 ** 24;

/** @internal Everything a BlockMask is made of. */
export interface BlockMaskInit {
  shape: BlockMaskShape;
  blockSize: readonly [number, number];
  dims: TableDims;
  tables: BlockTables;
  /** The mask applied to partial blocks; undefined when none is needed (noop) or known. */
  maskGraph?: ModGraph;
  /** The graph the tables were built from, kept to rebuild on adjust() (also for noop). */
  source?: ModGraph;
  offsets?: IndexOffsets;
  stats?: BuildStats;
  /** Copies of maskGraph's buffer data the tables were built from; default: taken now. */
  maskData?: readonly (BufferData | undefined)[];
}

export interface FromKvBlocksOptions {
  /** [Bm, Hm, QB] partial-block counts. */
  kvNumBlocks: Int32Array;
  /** [Bm, Hm, QB, KVB] partial-block indices (valid ones first; they are sorted on the way in). */
  kvIndices: Int32Array;
  fullKvNumBlocks?: Int32Array;
  fullKvIndices?: Int32Array;
  /** Default [128, 128]. */
  blockSize?: number | readonly [number, number];
  /** Default QB · blockSize[0]. */
  qLen?: number;
  /** Default KVB · blockSize[1]. */
  kvLen?: number;
  /** Table batch / head dims (default 1: broadcast). */
  Bm?: number;
  Hm?: number;
  /** Logical batch / heads (default Bm / Hm); Bm must be 1 or B, Hm 1 or H. */
  B?: number;
  H?: number;
  /** The mask for partial blocks; without one, kernels apply no mask inside partial blocks. */
  maskGraph?: ModGraph | MaskMod;
}

export interface SliceOptions {
  /** Keep one batch (the result has B = 1). */
  b?: number;
  /** Keep one head (the result has H = 1). */
  h?: number;
  /** Keep query-block rows [start, end). */
  qBlocks?: readonly [number, number];
}

export interface BlockCounts {
  full: number;
  partial: number;
  empty: number;
  total: number;
}

export class BlockMask implements BlockTables, TableDims {
  readonly shape: BlockMaskShape;
  readonly blockSize: readonly [number, number];
  readonly Bm: number;
  readonly Hm: number;
  readonly numQBlocks: number;
  readonly numKvBlocks: number;
  readonly kvNumBlocks: Int32Array;
  readonly kvIndices: Int32Array;
  readonly fullKvNumBlocks: Int32Array;
  readonly fullKvIndices: Int32Array;
  readonly qNumBlocks: Int32Array;
  readonly qIndices: Int32Array;
  readonly fullQNumBlocks: Int32Array;
  readonly fullQIndices: Int32Array;
  /** The mask kernels apply inside partial blocks; undefined for noop or fromKvBlocks without a mask. */
  readonly maskGraph: ModGraph | undefined;
  /** Added by kernels to local b, h, q, kv before calling the mask (non-zero after slice()). */
  readonly offsets: IndexOffsets;
  /** Construction work (createBlockMask only): interval queries and element evaluations. */
  readonly stats: BuildStats | undefined;
  /**
   * Copies of the mask's captured buffers as the tables were built from them: a call with this
   * BlockMask is refused once the buffers hold other data (the tables would describe the old).
   */
  readonly maskData: readonly (BufferData | undefined)[] | undefined;
  private readonly source: ModGraph | undefined;

  /** @internal Use createBlockMask or BlockMask.fromKvBlocks. */
  constructor(init: BlockMaskInit) {
    this.shape = Object.freeze({ ...init.shape });
    this.blockSize = Object.freeze([init.blockSize[0], init.blockSize[1]] as const);
    ({ Bm: this.Bm, Hm: this.Hm, numQBlocks: this.numQBlocks, numKvBlocks: this.numKvBlocks } = init.dims);
    const t = init.tables;
    this.kvNumBlocks = t.kvNumBlocks;
    this.kvIndices = t.kvIndices;
    this.fullKvNumBlocks = t.fullKvNumBlocks;
    this.fullKvIndices = t.fullKvIndices;
    this.qNumBlocks = t.qNumBlocks;
    this.qIndices = t.qIndices;
    this.fullQNumBlocks = t.fullQNumBlocks;
    this.fullQIndices = t.fullQIndices;
    this.maskGraph = init.maskGraph;
    this.source = init.source;
    this.offsets = Object.freeze({ ...(init.offsets ?? NO_OFFSETS) });
    this.stats = init.stats;
    this.maskData = init.maskData ?? snapshotMaskData(init.maskGraph);
  }

  /** Build from kv tables (PyTorch's from_kv_blocks): checks them and computes the q tables. */
  static fromKvBlocks(o: FromKvBlocksOptions): BlockMask {
    const what = "fromKvBlocks";
    for (const key of ["kvNumBlocks", "kvIndices", "fullKvNumBlocks", "fullKvIndices"] as const) {
      if (o[key] !== undefined && !(o[key] instanceof Int32Array)) {
        throw new FlexAttnError(`${what}: ${key} must be an Int32Array`);
      }
    }
    if (!o.kvNumBlocks || !o.kvIndices) throw new FlexAttnError(`${what}: kvNumBlocks and kvIndices are required`);
    if ((o.fullKvNumBlocks === undefined) !== (o.fullKvIndices === undefined)) {
      throw new FlexAttnError(`${what}: pass both fullKvNumBlocks and fullKvIndices, or neither`);
    }
    const blockSize = requireBlockSize(what, o.blockSize);
    const Bm = positiveInt(what, "Bm", o.Bm ?? 1);
    const Hm = positiveInt(what, "Hm", o.Hm ?? 1);
    const B = positiveInt(what, "B", o.B ?? Bm);
    const H = positiveInt(what, "H", o.H ?? Hm);
    if (Bm !== 1 && Bm !== B) throw new FlexAttnError(`${what}: Bm = ${Bm} must be 1 (broadcast) or B = ${B}`);
    if (Hm !== 1 && Hm !== H) throw new FlexAttnError(`${what}: Hm = ${Hm} must be 1 (broadcast) or H = ${H}`);
    const rows = o.kvNumBlocks.length;
    const numQBlocks = rows / (Bm * Hm);
    const numKvBlocks = o.kvIndices.length / rows;
    if (rows === 0 || !Number.isInteger(numQBlocks) || !Number.isInteger(numKvBlocks) || numKvBlocks < 1) {
      throw new FlexAttnError(
        `${what}: kvNumBlocks (${rows} entries) and kvIndices (${o.kvIndices.length}) do not form ` +
          `[Bm=${Bm}, Hm=${Hm}, QB] and [Bm, Hm, QB, KVB] tables`,
      );
    }
    const qLen = positiveInt(what, "qLen", o.qLen ?? numQBlocks * blockSize[0]);
    const kvLen = positiveInt(what, "kvLen", o.kvLen ?? numKvBlocks * blockSize[1]);
    if (Math.ceil(qLen / blockSize[0]) !== numQBlocks || Math.ceil(kvLen / blockSize[1]) !== numKvBlocks) {
      throw new FlexAttnError(
        `${what}: qLen ${qLen} and kvLen ${kvLen} with blockSize [${blockSize.join(", ")}] need ` +
          `${Math.ceil(qLen / blockSize[0])}×${Math.ceil(kvLen / blockSize[1])} blocks, the tables have ${numQBlocks}×${numKvBlocks}`,
      );
    }
    const dims: TableDims = { Bm, Hm, numQBlocks, numKvBlocks };
    const partial = normalizeKv(`${what} (kvNumBlocks/kvIndices)`, { num: o.kvNumBlocks, idx: o.kvIndices }, dims);
    const full: TablePair = o.fullKvNumBlocks
      ? normalizeKv(`${what} (fullKvNumBlocks/fullKvIndices)`, { num: o.fullKvNumBlocks, idx: o.fullKvIndices! }, dims)
      : { num: new Int32Array(rows), idx: new Int32Array(tableEntries(dims)) };
    checkDisjoint(partial, full, dims);
    let maskGraph: ModGraph | undefined;
    if (typeof o.maskGraph === "function") maskGraph = traceMaskMod(o.maskGraph);
    else if (o.maskGraph !== undefined) {
      if (!isMaskGraph(o.maskGraph)) throw new FlexAttnError(`${what}: maskGraph must be a mask ModGraph or a mask mod`);
      maskGraph = o.maskGraph;
    }
    return new BlockMask({
      shape: { B, H, qLen, kvLen },
      blockSize,
      dims,
      tables: tablesFromKv(partial, full, dims),
      maskGraph,
      source: maskGraph,
    });
  }

  /** Full / partial / empty block counts over the logical B × H (broadcast entries counted B/Bm · H/Hm times). */
  blockCounts(): BlockCounts {
    let full = 0;
    let partial = 0;
    for (let i = 0; i < this.kvNumBlocks.length; i++) {
      partial += this.kvNumBlocks[i];
      full += this.fullKvNumBlocks[i];
    }
    const repeat = (this.shape.B / this.Bm) * (this.shape.H / this.Hm);
    const total = this.shape.B * this.shape.H * this.numQBlocks * this.numKvBlocks;
    return { full: full * repeat, partial: partial * repeat, empty: total - (full + partial) * repeat, total };
  }

  /** Fraction of blocks computed (full or partial): effective FLOPs = dense FLOPs · density. */
  density(): number {
    const c = this.blockCounts();
    return (c.full + c.partial) / c.total;
  }

  /** Percentage of blocks not computed, as PyTorch's BlockMask.sparsity(). */
  sparsity(): number {
    return 100 * (1 - this.density());
  }

  /** Block states [Bm, Hm, QB, KVB]: 0 empty, 1 partial, 2 full. Refused above TO_DENSE_LIMIT entries. */
  toDense(): { data: Uint8Array; shape: [number, number, number, number] } {
    const entries = tableEntries(this);
    if (entries > TO_DENSE_LIMIT) {
      throw new FlexAttnError(
        `toDense(): ${this.Bm}×${this.Hm}×${this.numQBlocks}×${this.numKvBlocks} = ${entries} blocks is over the ` +
          `limit of ${TO_DENSE_LIMIT}; use slice() or the tables directly`,
      );
    }
    const data = new Uint8Array(entries);
    const KVB = this.numKvBlocks;
    for (let row = 0; row < this.kvNumBlocks.length; row++) {
      for (let j = 0; j < this.kvNumBlocks[row]; j++) data[row * KVB + this.kvIndices[row * KVB + j]] = BLOCK_PARTIAL;
      for (let j = 0; j < this.fullKvNumBlocks[row]; j++) data[row * KVB + this.fullKvIndices[row * KVB + j]] = BLOCK_FULL;
    }
    return { data, shape: [this.Bm, this.Hm, this.numQBlocks, this.numKvBlocks] };
  }

  /** A picture: header (shape, block size, sparsity), legend, and one grid per (b, h) entry. */
  toString(options?: PictureOptions): string {
    return renderPicture({ ...this, shape: this.shape, tables: this, sparsity: this.sparsity() }, options);
  }

  /** One batch, one head and/or a range of query-block rows; the mask graph is kept, with offsets. */
  slice(o: SliceOptions = {}): BlockMask {
    const what = "slice";
    const { B, H } = this.shape;
    const index = (name: string, x: number | undefined, n: number) => {
      if (x !== undefined && (!Number.isInteger(x) || x < 0 || x >= n)) {
        throw new FlexAttnError(`${what}(): ${name} = ${x} is outside [0, ${n})`);
      }
      return x;
    };
    const b = index("b", o.b, B);
    const h = index("h", o.h, H);
    const [qs, qe] = o.qBlocks ?? [0, this.numQBlocks];
    if (!Number.isInteger(qs) || !Number.isInteger(qe) || qs < 0 || qe > this.numQBlocks || qs >= qe) {
      throw new FlexAttnError(`${what}(): qBlocks [${qs}, ${qe}) must be a non-empty range within [0, ${this.numQBlocks})`);
    }
    const dims: TableDims = {
      Bm: b === undefined ? this.Bm : 1,
      Hm: h === undefined ? this.Hm : 1,
      numQBlocks: qe - qs,
      numKvBlocks: this.numKvBlocks,
    };
    const pick = (bm: number, hm: number) => ((b ?? bm) % this.Bm) * this.Hm + ((h ?? hm) % this.Hm);
    const partial = remapKv({ num: this.kvNumBlocks, idx: this.kvIndices }, this, dims, pick, qs);
    const full = remapKv({ num: this.fullKvNumBlocks, idx: this.fullKvIndices }, this, dims, pick, qs);
    const qStart = qs * this.blockSize[0];
    return new BlockMask({
      shape: {
        B: b === undefined ? B : 1,
        H: h === undefined ? H : 1,
        qLen: Math.min(qe * this.blockSize[0], this.shape.qLen) - qStart,
        kvLen: this.shape.kvLen,
      },
      blockSize: this.blockSize,
      dims,
      tables: tablesFromKv(partial, full, dims),
      maskGraph: this.maskGraph,
      source: this.source,
      maskData: this.maskData,
      offsets: { b: this.offsets.b + (b ?? 0), h: this.offsets.h + (h ?? 0), q: this.offsets.q + qStart, kv: this.offsets.kv },
    });
  }

  /**
   * New sequence lengths (PyTorch's _adjust). Shrinking crops to the upper-left corner (edge
   * blocks stay correct, if conservatively partial); growing rebuilds from the mask graph and
   * is an error without one.
   */
  adjust(qLen: number, kvLen: number): BlockMask {
    positiveInt("adjust", "qLen", qLen);
    positiveInt("adjust", "kvLen", kvLen);
    const shape = { ...this.shape, qLen, kvLen };
    if (qLen > this.shape.qLen || kvLen > this.shape.kvLen) {
      if (!this.source) {
        throw new FlexAttnError(
          `adjust(): cannot grow from ${this.shape.qLen}×${this.shape.kvLen} to ${qLen}×${kvLen} without a mask graph ` +
            `(this BlockMask came from fromKvBlocks without one); build a new one with createBlockMask`,
        );
      }
      // The kept rows describe the data at build time: growing from changed data would mix both.
      checkMaskDataUnchanged(this, "adjust()");
      const { dims, tables, stats } = buildTables(this.source, shape, this.blockSize, this.offsets);
      return new BlockMask({ ...this.init(), shape, dims, tables, stats });
    }
    const dims: TableDims = {
      Bm: this.Bm,
      Hm: this.Hm,
      numQBlocks: Math.ceil(qLen / this.blockSize[0]),
      numKvBlocks: Math.ceil(kvLen / this.blockSize[1]),
    };
    const pick = (bm: number, hm: number) => bm * this.Hm + hm;
    const partial = remapKv({ num: this.kvNumBlocks, idx: this.kvIndices }, this, dims, pick, 0);
    const full = remapKv({ num: this.fullKvNumBlocks, idx: this.fullKvIndices }, this, dims, pick, 0);
    return new BlockMask({ ...this.init(), shape, dims, tables: tablesFromKv(partial, full, dims) });
  }

  private init(): Omit<BlockMaskInit, "shape" | "dims" | "tables"> {
    return { blockSize: this.blockSize, maskGraph: this.maskGraph, source: this.source, offsets: this.offsets, maskData: this.maskData };
  }
}
