/** Build all block tables of a traced mask: classify each (b, h) grid, then write the tables. */
import type { ModGraph } from "@flexattn/ir";
import { FlexAttnError, usedInputs } from "@flexattn/ir";
import { TileClassifier } from "./classify.js";
import { allocateTables, tableEntries, writeFromStates } from "./tables.js";
import type { BlockMaskShape, BlockTables, IndexOffsets, TableDims } from "./types.js";

/** Tables above this many entries (per table) are refused: 2^28 Int32 entries is 1 GiB each. */
export const MAX_TABLE_ENTRIES = 2 ** 28;

export interface BuildStats {
  intervalQueries: number;
  elementEvaluations: number;
}

/** Table dims for a graph: Bm = 1 when the mask never reads b (likewise Hm for h). */
export function tableDims(graph: ModGraph | undefined, shape: BlockMaskShape, blockSize: readonly [number, number]): TableDims {
  const used = graph ? usedInputs(graph) : new Set<string>();
  const dims = {
    Bm: used.has("b") ? shape.B : 1,
    Hm: used.has("h") ? shape.H : 1,
    numQBlocks: Math.ceil(shape.qLen / blockSize[0]),
    numKvBlocks: Math.ceil(shape.kvLen / blockSize[1]),
  };
  if (tableEntries(dims) > MAX_TABLE_ENTRIES) {
    throw new FlexAttnError(
      `a BlockMask of ${dims.Bm}×${dims.Hm}×${dims.numQBlocks}×${dims.numKvBlocks} blocks is too large ` +
        `(over ${MAX_TABLE_ENTRIES} table entries); use a larger blockSize`,
    );
  }
  return dims;
}

export function buildTables(
  graph: ModGraph,
  shape: BlockMaskShape,
  blockSize: readonly [number, number],
  offsets: IndexOffsets,
): { dims: TableDims; tables: BlockTables; stats: BuildStats } {
  const dims = tableDims(graph, shape, blockSize);
  const tables = allocateTables(dims);
  const classifier = new TileClassifier(
    graph,
    { qLen: shape.qLen, kvLen: shape.kvLen, blockQ: blockSize[0], blockKv: blockSize[1], ...dims },
    offsets,
  );
  // One state grid ([QB, KVB] bytes) reused for every (b, h): block-level, never element-level.
  const state = new Uint8Array(dims.numQBlocks * dims.numKvBlocks);
  for (let bm = 0; bm < dims.Bm; bm++) {
    for (let hm = 0; hm < dims.Hm; hm++) {
      if (bm + hm > 0) state.fill(0);
      classifier.classify(bm + offsets.b, hm + offsets.h, state);
      writeFromStates(tables, dims, bm, hm, state);
    }
  }
  return { dims, tables, stats: { ...classifier.stats } };
}
