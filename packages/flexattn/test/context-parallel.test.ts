/**
 * Context parallelism end to end on the JS backend: every rank's kernel calls (one per non-empty
 * chunk pair, on the pair's sub-BlockMask with its offsets), merged by LSE, equal single-device
 * attention over the whole sequence (float64 reference).
 */
import { describe, expect, it } from "vitest";
import type { MaskMod, ScoreMod } from "@flexattn/ir";
import {
  type BlockMask, type ContextParallelPlan, SHARD_STRATEGIES, type Tensor, causal, createBlockMask, documentCausal, flexAttention,
  mergeAttentionPartial, planContextParallel, planForLayout, randomDocumentIds, randomTensor, referenceAttention, relativePosition,
  resolveProblem, shardLayout, sliceChunkPair, slidingWindow, traceScoreMod,
} from "../src/index.js";

const [B, H, N, D] = [1, 2, 256, 16];
const BLOCK = 16;

/** Rank r's local shard of a [B, H, N, D] tensor: its chunks, in order, contiguous. */
function shardOf(t: Tensor, plan: ContextParallelPlan, rank: number): Tensor {
  const { chunkLen, ranks } = plan.layout;
  const chunks = ranks[rank];
  const L = chunks.length * chunkLen;
  const src = t.data as Float32Array;
  const data = new Float32Array(B * H * L * D);
  for (let bh = 0; bh < B * H; bh++) {
    chunks.forEach((c, i) => {
      data.set(src.subarray((bh * N + c * chunkLen) * D, (bh * N + (c + 1) * chunkLen) * D), (bh * L + i * chunkLen) * D);
    });
  }
  return { data, shape: [B, H, L, D], dtype: "f32" };
}

/** A view of `len` positions from `start` of a local [B, H, L, D] shard (strided, no copy). */
function rowsOf(t: Tensor, start: number, len: number): Tensor {
  const L = t.shape[2];
  return { data: (t.data as Float32Array).subarray(start * D), shape: [B, H, len, D], dtype: "f32", strides: [H * L * D, L * D, D, 1] };
}

/**
 * Run the ring as the schedule says, every rank in turn per step; returns the global output and
 * LSE assembled from the ranks' shards, and how many kernel calls ran.
 */
async function runRing(mask: BlockMask, plan: ContextParallelPlan, q: Tensor, k: Tensor, v: Tensor, scoreMod?: ScoreMod) {
  const { worldSize: W, chunkLen, ranks } = plan.layout;
  const L = ranks[0].length * chunkLen;
  const local = ranks.map((_, r) => ({ q: shardOf(q, plan, r), k: shardOf(k, plan, r), v: shardOf(v, plan, r) }));
  const acc = ranks.map(() => ({ out: new Float32Array(B * H * L * D), lse: new Float32Array(B * H * L).fill(-Infinity) }));
  let calls = 0;
  for (const step of plan.schedule.steps) {
    for (let r = 0; r < W; r++) {
      const { kvRank, compute } = step[r];
      if (!compute) continue;
      for (const cp of plan.pairs[r][kvRank].chunkPairs) {
        const kvShard = local[kvRank];
        const { out, lse } = await flexAttention(
          rowsOf(local[r].q, cp.qLocalStart, chunkLen), rowsOf(kvShard.k, cp.kvLocalStart, chunkLen), rowsOf(kvShard.v, cp.kvLocalStart, chunkLen),
          { blockMask: sliceChunkPair(mask, cp), scoreMod, returnLse: true, backend: "js" },
        );
        calls++;
        for (let bh = 0; bh < B * H; bh++) {
          const row0 = bh * L + cp.qLocalStart;
          mergeAttentionPartial(
            { out: acc[r].out.subarray(row0 * D, (row0 + chunkLen) * D), lse: acc[r].lse.subarray(row0, row0 + chunkLen) },
            { out: (out.data as Float32Array).subarray(bh * chunkLen * D, (bh + 1) * chunkLen * D), lse: (lse.data as Float32Array).subarray(bh * chunkLen, (bh + 1) * chunkLen) },
          );
        }
      }
    }
  }
  const out = new Float64Array(B * H * N * D).fill(Number.NaN);
  const lse = new Float64Array(B * H * N).fill(Number.NaN);
  ranks.forEach((chunks, r) => {
    for (let bh = 0; bh < B * H; bh++) {
      chunks.forEach((c, i) => {
        for (let t = 0; t < chunkLen; t++) {
          const from = bh * L + i * chunkLen + t;
          const to = bh * N + c * chunkLen + t;
          lse[to] = acc[r].lse[from];
          for (let d = 0; d < D; d++) out[to * D + d] = acc[r].out[from * D + d];
        }
      });
    }
  });
  return { out, lse, calls };
}

const CASES: [string, MaskMod, ScoreMod | undefined][] = [
  ["causal", causal(), undefined],
  ["document-causal", documentCausal(randomDocumentIds(N, 5, 9)), undefined],
  ["sliding window 40 + relative-position score", slidingWindow(40), relativePosition()],
];

describe("context parallelism on the JS backend equals single-device attention", () => {
  for (const [name, maskMod, scoreMod] of CASES) {
    it(name, async () => {
      const mask = createBlockMask(maskMod, { qLen: N, kvLen: N, blockSize: BLOCK });
      const q = randomTensor([B, H, N, D], { seed: 1 });
      const k = randomTensor([B, H, N, D], { seed: 2 });
      const v = randomTensor([B, H, N, D], { seed: 3 });
      const problem = resolveProblem({ batch: B, qHeads: H, kvHeads: H, qLen: N, kvLen: N, qkHeadDim: D, vHeadDim: D, dtype: "f32", returnLse: true });
      const ref = referenceAttention({ problem, q, k, v, mask: mask.maskGraph ?? null, score: scoreMod ? traceScoreMod(scoreMod) : null, blockMask: mask });
      const plans = [1, 2, 4].flatMap((W) => [
        planContextParallel(mask, W),
        ...SHARD_STRATEGIES.map((s) => planForLayout(mask, shardLayout(s, { seqLen: N, worldSize: W, blockSize: BLOCK, stripesPerRank: 2 }))),
      ]);
      for (const plan of plans) {
        const label = `${name}: ${plan.layout.strategy} over ${plan.layout.worldSize}`;
        const got = await runRing(mask, plan, q, k, v, scoreMod);
        expect(got.calls, label).toBe(plan.cost.kernelCalls);
        for (let i = 0; i < ref.lse.length; i++) {
          expect(Number.isFinite(got.lse[i]), `${label}: row ${i} not written`).toBe(true);
          expect(Math.abs(got.lse[i] - ref.lse[i]), label).toBeLessThan(1e-4);
        }
        let err = 0;
        for (let i = 0; i < ref.out.length; i++) err = Math.max(err, Math.abs(got.out[i] - ref.out[i]));
        expect(err, label).toBeLessThan(1e-5);
      }
    });
  }

  it("refuses a sequence that does not split into equal shards of whole blocks", () => {
    const mask = createBlockMask(causal(), { qLen: 250, kvLen: 250, blockSize: BLOCK });
    expect(() => planContextParallel(mask, 2)).toThrow(/no sharding fits.*multiple of 32; got 250/);
  });
});
