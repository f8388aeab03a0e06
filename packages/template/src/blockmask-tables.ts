/** What a kernel reads from a BlockMask (structurally satisfied by @flexattn/blockmask's BlockMask). */
import { type BufferData, FlexAttnError, type ModGraph } from "@flexattn/ir";
import { type BlockMaskShape, type BlockTables, type IndexOffsets, type TableDims, checkMaskDataUnchanged } from "@flexattn/blockmask";
import type { ResolvedProblem } from "./problem.js";

export type BlockMaskTables = TableDims &
  Pick<BlockTables, "kvNumBlocks" | "kvIndices"> &
  Partial<Pick<BlockTables, "fullKvNumBlocks" | "fullKvIndices">> & {
    readonly blockSize: readonly [number, number];
    readonly shape: BlockMaskShape;
    readonly maskGraph?: ModGraph;
    /** Non-zero after BlockMask.slice(): where the slice starts in the mask's coordinates. */
    readonly offsets?: IndexOffsets;
    /**
     * Copies of the mask's captured buffers as they were when the tables were built (per
     * maskGraph buffer; undefined where the graph had no data): a call refuses a BlockMask
     * whose mask data changed since (checkMaskDataUnchanged).
     */
    readonly maskData?: readonly (BufferData | undefined)[];
  };

/** A BlockMask with every block full: what "no block mask" means. */
export function denseTables(qLen: number, kvLen: number, blockSize: readonly [number, number] = [128, 128]): BlockMaskTables {
  const numQBlocks = Math.ceil(qLen / blockSize[0]);
  const numKvBlocks = Math.ceil(kvLen / blockSize[1]);
  const fullKvIndices = new Int32Array(numQBlocks * numKvBlocks);
  for (let r = 0; r < numQBlocks; r++) for (let c = 0; c < numKvBlocks; c++) fullKvIndices[r * numKvBlocks + c] = c;
  return {
    blockSize, shape: { B: 1, H: 1, qLen, kvLen }, Bm: 1, Hm: 1, numQBlocks, numKvBlocks,
    kvNumBlocks: new Int32Array(numQBlocks), kvIndices: new Int32Array(numQBlocks * numKvBlocks),
    fullKvNumBlocks: new Int32Array(numQBlocks).fill(numKvBlocks), fullKvIndices,
  };
}

/** Full tables, zero-filled when the BlockMask has no full blocks. */
export function fullTablesOf(t: BlockMaskTables): { fullKvNumBlocks: Int32Array; fullKvIndices: Int32Array } {
  return {
    fullKvNumBlocks: t.fullKvNumBlocks ?? new Int32Array(t.Bm * t.Hm * t.numQBlocks),
    fullKvIndices: t.fullKvIndices ?? new Int32Array(t.Bm * t.Hm * t.numQBlocks * t.numKvBlocks),
  };
}

const FROM = "pass the BlockMask from createBlockMask (or BlockMask.fromKvBlocks for tables of your own)";

/**
 * Check that a value passed as a BlockMask has the fields a kernel reads, with consistent sizes,
 * before anything reads them. `tables: false` checks only what compilation reads (block size and
 * mask graph).
 */
export function checkBlockMaskInput(x: unknown, what = "blockMask", tables = true): asserts x is BlockMaskTables {
  if (x === null || typeof x !== "object" || Array.isArray(x) || ArrayBuffer.isView(x)) {
    const got = x === null ? "null" : Array.isArray(x) ? "an array" : typeof x === "object" ? (x as object).constructor?.name ?? "an object" : typeof x;
    throw new FlexAttnError(`${what} must be a BlockMask, got ${got}; ${FROM}`);
  }
  const t = x as Record<string, unknown>;
  const missing = (field: string, expected: string) => new FlexAttnError(`${what} must be a BlockMask: it has no valid ${field} (${expected}, got ${describeField(t[field])}); ${FROM}`);
  const bs = t.blockSize;
  if (!Array.isArray(bs) || bs.length !== 2 || !bs.every((v) => Number.isInteger(v) && v >= 1)) throw missing("blockSize", "[q, kv] positive integers");
  const g = t.maskGraph as ModGraph | undefined;
  if (g !== undefined && (g === null || typeof g !== "object" || g.kind !== "mask" || !Array.isArray(g.nodes))) {
    throw missing("maskGraph", "a traced mask mod graph, or absent");
  }
  if (!tables) return;
  const sh = t.shape as Record<string, unknown> | undefined;
  if (!sh || typeof sh !== "object" || !["B", "H", "qLen", "kvLen"].every((k) => Number.isInteger(sh[k]) && (sh[k] as number) >= 1)) {
    throw missing("shape", "{ B, H, qLen, kvLen } positive integers");
  }
  for (const k of ["Bm", "Hm", "numQBlocks", "numKvBlocks"]) if (!Number.isInteger(t[k]) || (t[k] as number) < 1) throw missing(k, "a positive integer");
  const rows = (t.Bm as number) * (t.Hm as number) * (t.numQBlocks as number);
  const sizes: [string, number, boolean][] = [
    ["kvNumBlocks", rows, true], ["kvIndices", rows * (t.numKvBlocks as number), true],
    ["fullKvNumBlocks", rows, false], ["fullKvIndices", rows * (t.numKvBlocks as number), false],
  ];
  for (const [k, n, required] of sizes) {
    if (t[k] === undefined && !required) continue;
    if (!(t[k] instanceof Int32Array) || (t[k] as Int32Array).length !== n) {
      throw missing(k, `an Int32Array of ${n} elements (Bm·Hm·numQBlocks${k.endsWith("Indices") ? "·numKvBlocks" : ""})`);
    }
  }
}

function describeField(v: unknown): string {
  if (v === undefined || v === null) return String(v);
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of ${(v as Int32Array).length}`;
  if (Array.isArray(v)) return `[${v.join(", ")}]`;
  return typeof v === "object" ? "an object" : `${typeof v} ${String(v)}`;
}

/** Reject a BlockMask built for other lengths, batch or head counts, or from other mask data. */
export function checkBlockMask(t: BlockMaskTables, p: ResolvedProblem): void {
  const where = `BlockMask (built for qLen ${t.shape.qLen}, kvLen ${t.shape.kvLen}, B ${t.shape.B}, H ${t.shape.H})`;
  checkMaskDataUnchanged(t, where);
  if (t.shape.qLen !== p.qLen || t.shape.kvLen !== p.kvLen) {
    const hint = t.shape.qLen >= p.qLen && t.shape.kvLen >= p.kvLen ? `; crop it with blockMask.adjust(${p.qLen}, ${p.kvLen})` : "; rebuild it with createBlockMask for these lengths";
    throw new FlexAttnError(`${where} does not match the inputs (qLen ${p.qLen}, kvLen ${p.kvLen})${hint}`);
  }
  const o = t.offsets;
  if (o && (o.b !== 0 || o.h !== 0)) {
    throw new FlexAttnError(`${where} was sliced to one batch entry or head (offsets b ${o.b}, h ${o.h}); kernels need the whole batch and head range: pass the unsliced BlockMask`);
  }
  if (o && (o.q !== p.qOffset || o.kv !== p.kvOffset)) {
    throw new FlexAttnError(
      `${where} was sliced to start at query ${o.q}, key ${o.kv}, but the call uses qOffset ${p.qOffset}, kvOffset ${p.kvOffset}: ` +
        `pass qOffset: ${o.q}, kvOffset: ${o.kv} so the mods see the same positions as the BlockMask`,
    );
  }
  // A mask that reads b or h, built for fewer batch entries / heads than the call has, would be
  // broadcast from entry 0: silently the wrong blocks for the others.
  const reads = (name: "b" | "h") => t.maskGraph?.nodes.some((n) => n.op === "input" && n.input === name) ?? false;
  if (reads("h") && t.shape.H !== p.qHeads) {
    throw new FlexAttnError(`${where}: its mask depends on the head, but it was built for ${t.shape.H} head(s) and the call has ${p.qHeads}; build it with H: ${p.qHeads}`);
  }
  if (reads("b") && t.shape.B !== p.batch) {
    throw new FlexAttnError(`${where}: its mask depends on the batch index, but it was built for batch ${t.shape.B} and the call has ${p.batch}; build it with B: ${p.batch}`);
  }
  if (t.Bm !== 1 && t.Bm !== p.batch) throw new FlexAttnError(`${where} has ${t.Bm} batch entries; the inputs have batch ${p.batch}`);
  if (t.Hm !== 1 && t.Hm !== p.qHeads) throw new FlexAttnError(`${where} has ${t.Hm} head entries; the inputs have ${p.qHeads} query heads`);
  if (t.numQBlocks !== Math.ceil(p.qLen / t.blockSize[0]) || t.numKvBlocks !== Math.ceil(p.kvLen / t.blockSize[1])) {
    throw new FlexAttnError(`${where} has a table size inconsistent with its block size ${t.blockSize.join("×")}`);
  }
}
