/** Shared shapes and constants of the BlockMask package. */

/** Block states as `toDense()` reports them. */
export const BLOCK_EMPTY = 0;
export const BLOCK_PARTIAL = 1;
export const BLOCK_FULL = 2;
export type BlockState = typeof BLOCK_EMPTY | typeof BLOCK_PARTIAL | typeof BLOCK_FULL;

/** The logical problem a BlockMask covers. */
export interface BlockMaskShape {
  readonly B: number;
  readonly H: number;
  readonly qLen: number;
  readonly kvLen: number;
}

/**
 * Global index of this mask's first batch, head, query and key. Kernels add them to the local
 * indices before calling the mask mod (zero unless the mask was sliced).
 */
export interface IndexOffsets {
  readonly b: number;
  readonly h: number;
  readonly q: number;
  readonly kv: number;
}

export const NO_OFFSETS: IndexOffsets = Object.freeze({ b: 0, h: 0, q: 0, kv: 0 });

/** Table dimensions: Bm, Hm are 1 where the mask ignores b, h (kernels index with b % Bm). */
export interface TableDims {
  readonly Bm: number;
  readonly Hm: number;
  readonly numQBlocks: number;
  readonly numKvBlocks: number;
}

/** PyTorch's eight block tables, Int32, row-major; valid indices first, ascending, padding 0. */
export interface BlockTables {
  /** [Bm, Hm, QB]: partial blocks per query-block row. */
  readonly kvNumBlocks: Int32Array;
  /** [Bm, Hm, QB, KVB]. */
  readonly kvIndices: Int32Array;
  /** [Bm, Hm, QB]: full blocks (mask skipped) per row. */
  readonly fullKvNumBlocks: Int32Array;
  /** [Bm, Hm, QB, KVB]. */
  readonly fullKvIndices: Int32Array;
  /** [Bm, Hm, KVB]: partial blocks per kv-block column (backward pass). */
  readonly qNumBlocks: Int32Array;
  /** [Bm, Hm, KVB, QB]. */
  readonly qIndices: Int32Array;
  readonly fullQNumBlocks: Int32Array;
  readonly fullQIndices: Int32Array;
}
