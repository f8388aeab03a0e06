/** Input checks with messages that say what was wrong and what is expected. */
import type { ModGraph } from "@flexattn/ir";
import { FlexAttnError } from "@flexattn/ir";

export const DEFAULT_BLOCK_SIZE = 128;

export function positiveInt(fn: string, name: string, x: unknown): number {
  if (typeof x !== "number" || !Number.isInteger(x) || x < 1 || x >= 2 ** 31) {
    throw new FlexAttnError(`${fn}(): ${name} must be a positive integer below 2^31, got ${typeof x === "number" ? x : typeof x}`);
  }
  return x;
}

/** A block size: one positive integer for both, or [q, kv]; default 128 × 128. */
export function requireBlockSize(fn: string, blockSize: unknown): [number, number] {
  if (blockSize === undefined) return [DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE];
  const pair = typeof blockSize === "number" ? [blockSize, blockSize] : blockSize;
  if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((x) => Number.isInteger(x) && x >= 1 && x < 2 ** 31)) {
    throw new FlexAttnError(
      `${fn}(): blockSize must be a positive integer or [q, kv] of positive integers, got ${JSON.stringify(blockSize)}`,
    );
  }
  return [pair[0], pair[1]];
}

export function isMaskGraph(x: unknown): x is ModGraph {
  const g = x as ModGraph;
  return typeof x === "object" && x !== null && g.kind === "mask" && Array.isArray(g.nodes) && Array.isArray(g.buffers);
}
