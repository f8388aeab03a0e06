import { describe, expect, it } from "vitest";
import { FlexAttnError, buffer } from "@flexattn/ir";
import type { MaskMod } from "@flexattn/ir";
import { causal, documentCausal, mulberry32, noop, randomDocumentIds, slidingWindow } from "@flexattn/masks";
import {
  type BlockMask, type ShardPair, SHARD_STRATEGIES, createBlockMask, gridWork, planContextParallel, planForLayout,
  type RingSchedule, shardLayout, shardPairs, sliceBlocks, sliceChunkPair,
} from "@flexattn/blockmask";
import { decodeKvTables } from "./brute.js";

const N = 512;
const MASKS: [string, MaskMod][] = [
  ["causal", causal()],
  ["document-causal", documentCausal(randomDocumentIds(N, 5, 3))],
  ["sliding window 40", slidingWindow(40)],
];

/** Block state (0/1/2) of entry e, block (qb, kb) of a BlockMask. */
function stateAt(m: BlockMask, dense: Uint8Array, e: number, qb: number, kb: number): number {
  return dense[(e * m.numQBlocks + qb) * m.numKvBlocks + kb];
}

describe("sliceBlocks: a rectangle of a BlockMask", () => {
  it("agrees with the unsliced BlockMask on every block, with local tables and global offsets", () => {
    const rand = mulberry32(7);
    for (const [name, mod] of MASKS) {
      for (const blockSize of [[16, 16], [16, 32], [32, 16]] as const) {
        const qLen = 500; // ragged last block in both directions
        const m = createBlockMask(mod, { qLen, kvLen: qLen, blockSize });
        const whole = decodeKvTables(m);
        for (let t = 0; t < 12; t++) {
          const qs = Math.floor(rand() * m.numQBlocks);
          const qe = qs + 1 + Math.floor(rand() * (m.numQBlocks - qs));
          const ks = Math.floor(rand() * m.numKvBlocks);
          const ke = ks + 1 + Math.floor(rand() * (m.numKvBlocks - ks));
          const s = sliceBlocks(m, [qs, qe], [ks, ke]);
          const sub = decodeKvTables(s); // also checks the layout invariants
          expect([s.numQBlocks, s.numKvBlocks], name).toEqual([qe - qs, ke - ks]);
          expect(s.offsets).toEqual({ b: 0, h: 0, q: qs * blockSize[0], kv: ks * blockSize[1] });
          expect(s.shape.qLen).toBe(Math.min(qe * blockSize[0], qLen) - qs * blockSize[0]);
          expect(s.shape.kvLen).toBe(Math.min(ke * blockSize[1], qLen) - ks * blockSize[1]);
          expect(s.maskGraph).toBe(m.maskGraph);
          for (let qb = 0; qb < qe - qs; qb++) {
            for (let kb = 0; kb < ke - ks; kb++) expect(stateAt(s, sub, 0, qb, kb)).toBe(stateAt(m, whole, 0, qs + qb, ks + kb));
          }
          // The q tables are the transpose of the sliced kv tables.
          const cols = Array.from(s.qNumBlocks).reduce((a, b) => a + b, 0) + Array.from(s.fullQNumBlocks).reduce((a, b) => a + b, 0);
          expect(cols).toBe(sub.filter((x) => x !== 0).length);
        }
      }
    }
  });

  it("equals the BlockMask built directly for the rectangle with the mask shifted by its offsets", () => {
    const docs = randomDocumentIds(N, 4, 1);
    const ids = buffer(docs);
    const m = createBlockMask(documentCausal(docs), { qLen: N, kvLen: N, blockSize: 32 });
    const s = sliceBlocks(m, [4, 12], [2, 9]);
    const [qo, ko] = [s.offsets.q, s.offsets.kv];
    const shifted: MaskMod = (_b, _h, q, kv) => q.add(qo).ge(kv.add(ko)).and(ids.at(q.add(qo)).eq(ids.at(kv.add(ko))));
    const direct = createBlockMask(shifted, { qLen: s.shape.qLen, kvLen: s.shape.kvLen, blockSize: 32 });
    expect(Array.from(decodeKvTables(s))).toEqual(Array.from(decodeKvTables(direct)));
  });

  it("keeps batch and head entries, and refuses empty or out-of-range rectangles", () => {
    const headMask: MaskMod = (_b, h, q, kv) => q.sub(kv).le(h.mul(16)).and(q.ge(kv));
    const m = createBlockMask(headMask, { B: 2, H: 3, qLen: 128, kvLen: 128, blockSize: 16 });
    const s = sliceBlocks(m, [2, 6], [0, 4]);
    expect([s.Bm, s.Hm, s.shape.B, s.shape.H]).toEqual([m.Bm, m.Hm, 2, 3]);
    const whole = decodeKvTables(m);
    const sub = decodeKvTables(s);
    for (let e = 0; e < m.Bm * m.Hm; e++) {
      for (let qb = 0; qb < 4; qb++) for (let kb = 0; kb < 4; kb++) expect(stateAt(s, sub, e, qb, kb)).toBe(stateAt(m, whole, e, qb + 2, kb));
    }
    expect(() => sliceBlocks(m, [3, 3], [0, 1])).toThrow(FlexAttnError);
    expect(() => sliceBlocks(m, [0, 9], [0, 1])).toThrow(/within \[0, 8\]/);
    expect(() => sliceBlocks(m, [0, 1], [-1, 1])).toThrow(/kvBlocks/);
  });

  it("gridWork counts every computed block once", () => {
    for (const [, mod] of MASKS) {
      const m = createBlockMask(mod, { B: 2, H: 2, qLen: N, kvLen: N, blockSize: 16 });
      const w = gridWork(m, [0, 5, 17, 32], [0, 1, 20, 32]);
      const c = m.blockCounts();
      expect(w.flat().reduce((a, x) => a + x.partial, 0)).toBe(c.partial);
      expect(w.flat().reduce((a, x) => a + x.full, 0)).toBe(c.full);
      const s = sliceBlocks(m, [5, 17], [1, 20]).blockCounts();
      expect(w[1][1]).toEqual({ partial: s.partial, full: s.full });
    }
  });
});

describe("shardLayout", () => {
  it("deals equal chunks of whole blocks, every chunk to exactly one rank", () => {
    for (const strategy of SHARD_STRATEGIES) {
      for (const W of [1, 2, 3, 4]) {
        const l = shardLayout(strategy, { seqLen: 72 * 32, worldSize: W, blockSize: [16, 32], stripesPerRank: 3 });
        const all = l.ranks.flat().sort((a, b) => a - b);
        expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i));
        expect(new Set(l.ranks.map((r) => r.length)).size).toBe(1);
        expect(l.chunkLen * all.length).toBe(l.seqLen);
        expect(l.chunkLen % 32).toBe(0);
      }
    }
    expect(shardLayout("zigzag", { seqLen: 256, worldSize: 2, blockSize: 16 }).ranks).toEqual([[0, 3], [1, 2]]);
    expect(shardLayout("striped", { seqLen: 256, worldSize: 2, blockSize: 16, stripesPerRank: 2 }).ranks).toEqual([[0, 2], [1, 3]]);
  });

  it("refuses a length that does not split into equal chunks of whole blocks, naming the length to pad to", () => {
    expect(() => shardLayout("contiguous", { seqLen: 500, worldSize: 2, blockSize: 16 })).toThrow(/multiple of 32; got 500.*Pad the sequence to 512/);
    expect(() => shardLayout("zigzag", { seqLen: 96, worldSize: 2, blockSize: [16, 32] })).toThrow(/multiple of 128/);
    expect(() => shardLayout("contiguous", { seqLen: 256, worldSize: 0, blockSize: 16 })).toThrow(/worldSize/);
    const m = createBlockMask(causal(), { qLen: 500, kvLen: 500, blockSize: 16 });
    expect(() => planContextParallel(m, 2)).toThrow(/no sharding fits/);
    const rect = createBlockMask(causal(), { qLen: 256, kvLen: 512, blockSize: 16 });
    expect(() => planContextParallel(rect, 2)).toThrow(/one sequence for queries and keys/);
  });
});

/** Simulate the ring: which shard each rank holds per step, given the sends. */
function simulate(pairs: ShardPair[][], W: number, steps: RingSchedule["steps"]): Map<string, number> {
  const computed = new Map<string, number>();
  let holds: (number | undefined)[] = Array.from({ length: W }, (_, r) => r);
  for (let s = 0; s < W; s++) {
    const next: (number | undefined)[] = new Array(W).fill(undefined);
    for (let r = 0; r < W; r++) {
      const x = steps[s][r];
      expect(x.recv).toBe(steps[s][(r - 1 + W) % W].send);
      if (x.compute) {
        expect(holds[r], `rank ${r} computes at step ${s} without its shard`).toBe(x.kvRank);
        const key = `${r},${x.kvRank}`;
        computed.set(key, (computed.get(key) ?? 0) + 1);
      }
      if (x.send) {
        expect(holds[r]).toBe(x.kvRank);
        next[(r + 1) % W] = holds[r];
      }
    }
    holds = next;
  }
  for (let r = 0; r < W; r++) for (let j = 0; j < W; j++) if (pairs[r][j].chunkPairs.length === 0) expect(computed.has(`${r},${j}`)).toBe(false);
  return computed;
}

describe("ring schedule", () => {
  it("computes every non-empty pair exactly once, with the shard present, and nothing else", () => {
    for (const [name, mod] of [...MASKS, ["noop", noop()] as [string, MaskMod]]) {
      const m = createBlockMask(mod, { qLen: N, kvLen: N, blockSize: 16 });
      for (const W of [1, 2, 4]) {
        for (const strategy of SHARD_STRATEGIES) {
          const plan = planForLayout(m, shardLayout(strategy, { seqLen: N, worldSize: W, blockSize: 16 }));
          const computed = simulate(plan.pairs, W, plan.schedule.steps);
          const nonEmpty = plan.pairs.flat().filter((p) => p.chunkPairs.length > 0);
          expect(computed.size, `${name} ${strategy} W=${W}`).toBe(nonEmpty.length);
          for (const v of computed.values()) expect(v).toBe(1);
          // Work over all pairs = the whole mask's computed blocks.
          const c = m.blockCounts();
          expect(plan.cost.rankWork.reduce((a, b) => a + b, 0)).toBe(c.full + c.partial);
          // Every shard visits each rank at one step: the held shard runs over all kv ranks.
          for (let r = 0; r < W; r++) expect(new Set(plan.schedule.steps.map((st) => st[r].kvRank)).size).toBe(W);
        }
      }
    }
  });

  it("skips sends no later rank needs (causal, contiguous: a shard stops at the last rank)", () => {
    const m = createBlockMask(causal(), { qLen: N, kvLen: N, blockSize: 16 });
    const plan = planForLayout(m, shardLayout("contiguous", { seqLen: N, worldSize: 4, blockSize: 16 }));
    // Shard j is needed by ranks j..3 only: 3 - j sends, 6 in all (a full ring sends 12).
    expect(plan.cost.sends).toBe(6);
    expect(plan.schedule.steps[0].map((x) => x.send)).toEqual([true, true, true, false]);
    expect(plan.schedule.steps[3].every((x) => !x.send && !x.recv)).toBe(true);
    const dense = planForLayout(createBlockMask(noop(), { qLen: N, kvLen: N, blockSize: 16 }), plan.layout);
    expect(dense.cost.sends).toBe(12);
    // Sliding window: each shard is needed by its own rank and the next only.
    const sw = planForLayout(createBlockMask(slidingWindow(40), { qLen: N, kvLen: N, blockSize: 16 }), plan.layout);
    expect(sw.cost.sends).toBe(3);
  });
});

describe("planContextParallel: sharding chosen from the per-pair work", () => {
  it("balances causal and document-causal masks better than contiguous shards", () => {
    const n = 2048;
    for (const [name, mod] of [["causal", causal()], ["document-causal", documentCausal(randomDocumentIds(n, 3, 11))]] as const) {
      const m = createBlockMask(mod, { qLen: n, kvLen: n, blockSize: 32 });
      for (const W of [2, 4]) {
        const plan = planContextParallel(m, W);
        const contiguous = plan.candidates.find((c) => c.strategy === "contiguous")!.cost!;
        expect(plan.layout.strategy, `${name} W=${W}`).not.toBe("contiguous");
        expect(plan.cost.criticalPath).toBeLessThan(contiguous.criticalPath);
        expect(plan.cost.imbalance).toBeLessThan(contiguous.imbalance);
        if (name === "causal") expect(plan.cost.imbalance).toBeLessThan(1.05);
        for (const c of plan.candidates) expect(plan.cost.criticalPath).toBeLessThanOrEqual(c.cost!.criticalPath);
      }
    }
  });

  it("keeps contiguous shards where they are already balanced (noop, sliding window, one rank)", () => {
    for (const mod of [noop(), slidingWindow(40)]) {
      const m = createBlockMask(mod, { qLen: N, kvLen: N, blockSize: 16 });
      expect(planContextParallel(m, 4).layout.strategy).toBe("contiguous");
    }
    expect(planContextParallel(createBlockMask(causal(), { qLen: N, kvLen: N, blockSize: 16 }), 1).layout.strategy).toBe("contiguous");
  });

  it("skips a strategy that cannot split the length, and uses the others", () => {
    const m = createBlockMask(causal(), { qLen: 192, kvLen: 192, blockSize: 16 });
    const plan = planContextParallel(m, 2, { stripesPerRank: 4 }); // 192 = 2·2·48: zigzag fits, 8 stripes of 24 do not
    expect(plan.candidates.find((c) => c.strategy === "striped")!.refused).toMatch(/multiple of 128/);
    expect(plan.layout.strategy).toBe("zigzag");
  });

  it("chunk pairs list only non-empty kernel calls whose sub-masks tile the pair", () => {
    const m = createBlockMask(documentCausal(randomDocumentIds(N, 6, 2)), { qLen: N, kvLen: N, blockSize: 16 });
    const plan = planForLayout(m, shardLayout("zigzag", { seqLen: N, worldSize: 2, blockSize: 16 }));
    for (const p of plan.pairs.flat()) {
      for (const cp of p.chunkPairs) {
        const s = sliceChunkPair(m, cp).blockCounts();
        expect(s.partial + s.full).toBeGreaterThan(0);
        expect([s.partial, s.full]).toEqual([cp.partial, cp.full]);
        expect(plan.layout.ranks[p.qRank][cp.qLocalStart / plan.layout.chunkLen]).toBe(cp.qChunk);
        expect(plan.layout.ranks[p.kvRank][cp.kvLocalStart / plan.layout.chunkLen]).toBe(cp.kvChunk);
      }
    }
    expect(shardPairs(m, plan.layout)).toEqual(plan.pairs);
  });
});
