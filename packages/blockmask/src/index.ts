export { createBlockMask } from "./create.js";
export type { CreateBlockMaskOptions } from "./create.js";
export { BlockMask, TO_DENSE_LIMIT } from "./block-mask.js";
export type { BlockCounts, FromKvBlocksOptions, SliceOptions } from "./block-mask.js";
export { MAX_TABLE_ENTRIES } from "./build.js";
export type { BuildStats } from "./build.js";
export { PICTURE_LEGEND, SVG_COLORS, blockMaskSvg } from "./picture.js";
export type { CellState, PictureOptions, SvgPictureOptions, SvgSource } from "./picture.js";
export { RangeMinMax, makeBufferRange } from "./range-summary.js";
export { DEFAULT_BLOCK_SIZE } from "./validate.js";
export { BLOCK_EMPTY, BLOCK_PARTIAL, BLOCK_FULL } from "./types.js";
export type { BlockState, BlockMaskShape, BlockTables, IndexOffsets, TableDims } from "./types.js";
export { checkMaskDataUnchanged, snapshotMaskData } from "./mask-data.js";
export type { MaskDataHolder } from "./mask-data.js";
export { transposeKv } from "./tables.js";
export type { TablePair } from "./tables.js";
export { gridWork, sliceBlocks } from "./pair-slice.js";
export type { BlockRange, RectWork } from "./pair-slice.js";
export {
  DEFAULT_STRIPES_PER_RANK, SHARD_STRATEGIES, planContextParallel, planCost, planForLayout, ringSchedule, shardLayout, shardPairs,
  sliceChunkPair,
} from "./context-parallel.js";
export type {
  ChunkPair, ContextParallelPlan, PlanCandidate, PlanCost, PlanOptions, RingSchedule, RingStep, ShardLayout, ShardLayoutOptions,
  ShardPair, ShardStrategy,
} from "./context-parallel.js";
export { mergeAttentionPartial } from "./lse-merge.js";
export type { AttentionPartial } from "./lse-merge.js";
