/** createBlockMask: the BlockMask of a mask mod, built by interval analysis, never from a dense mask. */
import type { MaskMod, ModGraph } from "@flexattn/ir";
import { FlexAttnError, checkBufferIndices, rootOf, traceMaskMod } from "@flexattn/ir";
import { BlockMask } from "./block-mask.js";
import { buildTables } from "./build.js";
import { NO_OFFSETS } from "./types.js";
import { isMaskGraph, positiveInt, requireBlockSize } from "./validate.js";

export interface CreateBlockMaskOptions {
  /** Batch size (default 1). Tables broadcast (Bm = 1) when the mask ignores b. */
  B?: number;
  /** Heads (default 1). Tables broadcast (Hm = 1) when the mask ignores h. */
  H?: number;
  qLen: number;
  kvLen: number;
  /** One size for both, or [q, kv]; default [128, 128]. */
  blockSize?: number | readonly [number, number];
}

/** Classify every (b, h, q-block, kv-block) tile of `mask` as full, partial or empty, exactly. */
export function createBlockMask(mask: MaskMod | ModGraph, options: CreateBlockMaskOptions): BlockMask {
  const what = "createBlockMask";
  if (typeof options !== "object" || options === null) {
    throw new FlexAttnError(`${what}(): pass options { qLen, kvLen, B?, H?, blockSize? }`);
  }
  const graph = toGraph(mask);
  const shape = {
    B: positiveInt(what, "B", options.B ?? 1),
    H: positiveInt(what, "H", options.H ?? 1),
    qLen: positiveInt(what, "qLen", options.qLen),
    kvLen: positiveInt(what, "kvLen", options.kvLen),
  };
  const blockSize = requireBlockSize(what, options.blockSize);
  // A load whose index is provably out of range for every position can only read 0: a bug.
  checkBufferIndices(graph, {
    b: { lo: 0, hi: shape.B - 1 },
    h: { lo: 0, hi: shape.H - 1 },
    q: { lo: 0, hi: shape.qLen - 1 },
    kv: { lo: 0, hi: shape.kvLen - 1 },
  });
  const { dims, tables, stats } = buildTables(graph, shape, blockSize, NO_OFFSETS);
  return new BlockMask({ shape, blockSize, dims, tables, maskGraph: isConstantTrue(graph) ? undefined : graph, source: graph, stats });
}

function toGraph(mask: MaskMod | ModGraph): ModGraph {
  if (typeof mask === "function") return traceMaskMod(mask);
  if (isMaskGraph(mask)) return mask;
  if (typeof mask === "object" && mask !== null && (mask as ModGraph).kind === "score") {
    throw new FlexAttnError("createBlockMask(): got a score-mod graph; pass a mask mod (b, h, q, kv) => bool");
  }
  throw new FlexAttnError(`createBlockMask(): mask must be a mask mod (b, h, q, kv) => bool or its traced ModGraph, got ${mask === null ? "null" : typeof mask}`);
}

/** A mask that is literally `true` needs no mask in kernels (noop). */
function isConstantTrue(graph: ModGraph): boolean {
  const root = graph.nodes[rootOf(graph)];
  return root.op === "const" && root.value === true;
}
