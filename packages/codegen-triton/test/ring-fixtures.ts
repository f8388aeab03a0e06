/**
 * Context-parallel plans computed by @flexattn/blockmask, written as JSON for the Python ring's tests: the Python
 * port must produce the same layouts, pairs, schedules, costs and per-pair tables from the same whole-sequence tables.
 */
import { writeFileSync } from "node:fs";
import type { MaskMod } from "@flexattn/ir";
import {
  type BlockMask, type ContextParallelPlan, SHARD_STRATEGIES, createBlockMask, planContextParallel, planForLayout, shardLayout,
  sliceChunkPair,
} from "@flexattn/blockmask";
import { causal, documentCausal, randomDocumentIds, slidingWindow } from "@flexattn/masks";

/** The masks the Python tests rebuild as torch mods, by name and parameters. */
export interface RingMaskCase {
  name: "causal" | "document_causal" | "sliding_window";
  window?: number;
  docIds?: number[];
}

const SEQ = 256;
const BLOCK: [number, number] = [16, 32];
const STRIPES = 2;

function maskCases(): [RingMaskCase, MaskMod][] {
  const docs = randomDocumentIds(SEQ, 5, 21);
  return [
    [{ name: "causal" }, causal()],
    [{ name: "document_causal", docIds: Array.from(docs) }, documentCausal(docs)],
    [{ name: "sliding_window", window: 40 }, slidingWindow(40)],
  ];
}

function kvTables(m: BlockMask) {
  return {
    kvNumBlocks: Array.from(m.kvNumBlocks), kvIndices: Array.from(m.kvIndices),
    fullKvNumBlocks: Array.from(m.fullKvNumBlocks), fullKvIndices: Array.from(m.fullKvIndices),
    dims: [m.Bm, m.Hm, m.numQBlocks, m.numKvBlocks],
  };
}

function planJson(mask: BlockMask, plan: ContextParallelPlan) {
  return {
    layout: plan.layout,
    pairs: plan.pairs.map((row) =>
      row.map((p) => ({ ...p, chunkPairs: p.chunkPairs.map((cp) => ({ ...cp, tables: kvTables(sliceChunkPair(mask, cp)) })) })),
    ),
    steps: plan.schedule.steps,
    cost: plan.cost,
  };
}

/** Write the fixture file: per mask, the whole tables and the plans for 1, 2 and 4 ranks (chosen and per strategy). */
export function writeRingFixtures(path: string): void {
  const cases = maskCases().map(([c, mod]) => {
    const B = 1;
    const H = 2;
    const mask = createBlockMask(mod, { B, H, qLen: SEQ, kvLen: SEQ, blockSize: BLOCK });
    const plans = [1, 2, 4].flatMap((W) => [
      { choice: "auto", worldSize: W, ...planJson(mask, planContextParallel(mask, W, { stripesPerRank: STRIPES })) },
      ...SHARD_STRATEGIES.map((s) => ({
        choice: s, worldSize: W, ...planJson(mask, planForLayout(mask, shardLayout(s, { seqLen: SEQ, worldSize: W, blockSize: BLOCK, stripesPerRank: STRIPES }))),
      })),
    ]);
    return { mask: c, B, H, seqLen: SEQ, blockSize: BLOCK, stripesPerRank: STRIPES, tables: kvTables(mask), plans };
  });
  writeFileSync(path, JSON.stringify({ cases }));
}
