/**
 * Context parallelism: a sequence sharded across `worldSize` ranks, attention computed as a ring.
 * Each rank keeps its query shard and sees every key/value shard pass by once; for each (query
 * shard, key shard) pair it runs the kernel on the pair's sub-BlockMask and merges the partial
 * outputs by their log-sum-exp (mergeAttentionPartial). This module decides the sharding, the
 * per-pair work and the ring schedule from the BlockMask alone, so every runtime (the JS tests,
 * the Python ring over torch.distributed) follows the same plan.
 *
 * Shards are made of equal chunks of whole blocks. A rank's local sequence is its chunks in
 * order; kernels take one offset per dimension, so a (query shard, key shard) pair runs as one
 * kernel call per non-empty (query chunk, key chunk) pair.
 */
import { FlexAttnError } from "@flexattn/ir";
import type { BlockMask } from "./block-mask.js";
import { type BlockRange, type RectWork, gridWork, sliceBlocks } from "./pair-slice.js";

/**
 * How the sequence's chunks are dealt to ranks:
 * - `contiguous`: W chunks, rank r holds chunk r.
 * - `zigzag`: 2W chunks, rank r holds chunks r and 2W-1-r (balances causal-like masks).
 * - `striped`: s·W chunks dealt round-robin, rank r holds r, r+W, …, r+(s-1)W.
 */
export type ShardStrategy = "contiguous" | "zigzag" | "striped";

export const SHARD_STRATEGIES: readonly ShardStrategy[] = ["contiguous", "zigzag", "striped"];

/** Chunks per rank of `striped` unless told (more stripes balance better but cost more kernel calls). */
export const DEFAULT_STRIPES_PER_RANK = 4;

export interface ShardLayoutOptions {
  seqLen: number;
  worldSize: number;
  /** The BlockMask's block size: chunks are whole blocks in both directions. */
  blockSize: number | readonly [number, number];
  /** `striped` only: chunks per rank (default DEFAULT_STRIPES_PER_RANK). */
  stripesPerRank?: number;
}

export interface ShardLayout {
  readonly strategy: ShardStrategy;
  readonly worldSize: number;
  readonly seqLen: number;
  /** Tokens per chunk (a whole number of query blocks and of key blocks). */
  readonly chunkLen: number;
  /** ranks[r]: the global chunk indices rank r holds, in the order of its local sequence. */
  readonly ranks: readonly (readonly number[])[];
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function requirePositive(fn: string, name: string, x: unknown): number {
  if (typeof x !== "number" || !Number.isInteger(x) || x < 1) throw new FlexAttnError(`${fn}(): ${name} must be a positive integer, got ${String(x)}`);
  return x;
}

/** Chunk indices per rank for a strategy (no length checks). */
function dealChunks(strategy: ShardStrategy, W: number, stripes: number): number[][] {
  const ranks = Array.from({ length: W }, (_, r) => r);
  if (strategy === "contiguous") return ranks.map((r) => [r]);
  if (strategy === "zigzag") return ranks.map((r) => [r, 2 * W - 1 - r]);
  return ranks.map((r) => Array.from({ length: stripes }, (_, i) => r + i * W));
}

/**
 * Split `seqLen` tokens into equal chunks of whole blocks and deal them to ranks. Ranks get equal
 * shards (ring buffers are one size); a length that does not split so is refused with the nearest
 * length that does — pad the sequence (and mask the padding) to use it.
 */
export function shardLayout(strategy: ShardStrategy, o: ShardLayoutOptions): ShardLayout {
  const attempt = tryShardLayout(strategy, o);
  if ("refused" in attempt) throw new FlexAttnError(attempt.refused);
  return attempt.layout;
}

/** shardLayout, with a length that does not split returned as a reason instead of thrown (bad arguments still throw). */
function tryShardLayout(strategy: ShardStrategy, o: ShardLayoutOptions): { layout: ShardLayout } | { refused: string } {
  const fn = "shardLayout";
  if (!SHARD_STRATEGIES.includes(strategy)) throw new FlexAttnError(`${fn}(): strategy must be one of ${SHARD_STRATEGIES.join(", ")}, got ${String(strategy)}`);
  const seqLen = requirePositive(fn, "seqLen", o.seqLen);
  const W = requirePositive(fn, "worldSize", o.worldSize);
  const [bq, bkv] = typeof o.blockSize === "number" ? [o.blockSize, o.blockSize] : (o.blockSize ?? []);
  requirePositive(fn, "blockSize[0]", bq);
  requirePositive(fn, "blockSize[1]", bkv);
  const stripes = strategy === "striped" ? requirePositive(fn, "stripesPerRank", o.stripesPerRank ?? DEFAULT_STRIPES_PER_RANK) : 1;
  const ranks = dealChunks(strategy, W, stripes);
  const numChunks = W * ranks[0].length;
  const unit = (bq / gcd(bq, bkv)) * bkv;
  const quantum = numChunks * unit;
  if (seqLen % quantum !== 0) {
    return {
      refused:
        `${fn}(): ${strategy} sharding over ${W} rank(s) cuts the sequence into ${numChunks} equal chunks of whole ` +
        `${bq}×${bkv} blocks, so seqLen must be a multiple of ${quantum}; got ${seqLen}. ` +
        `Pad the sequence to ${Math.ceil(seqLen / quantum) * quantum} tokens (masking the padding) or pick another strategy`,
    };
  }
  return { layout: { strategy, worldSize: W, seqLen, chunkLen: seqLen / numChunks, ranks } };
}

/** One kernel call of a shard pair: a query chunk against a key chunk. */
export interface ChunkPair {
  qChunk: number;
  kvChunk: number;
  /** Where the chunk starts in its rank's local query / key shard (tokens). */
  qLocalStart: number;
  kvLocalStart: number;
  /** The chunk's blocks in the unsliced BlockMask (sliceBlocks(mask, qBlocks, kvBlocks) is its sub-mask). */
  qBlocks: BlockRange;
  kvBlocks: BlockRange;
  partial: number;
  full: number;
}

/** The work of one (query rank, key rank) pair: its non-empty chunk pairs and their block counts. */
export interface ShardPair {
  qRank: number;
  kvRank: number;
  partial: number;
  full: number;
  /** Only chunk pairs with at least one block: the others are skipped. */
  chunkPairs: ChunkPair[];
}

function requireSquareMask(fn: string, mask: BlockMask, layout: ShardLayout): void {
  const { qLen, kvLen } = mask.shape;
  if (qLen !== kvLen || qLen !== layout.seqLen) {
    throw new FlexAttnError(
      `${fn}(): context parallelism shards one sequence for queries and keys: the BlockMask is ${qLen}×${kvLen}, the layout covers ${layout.seqLen} tokens`,
    );
  }
  const [bq, bkv] = mask.blockSize;
  if (layout.chunkLen % bq !== 0 || layout.chunkLen % bkv !== 0) {
    throw new FlexAttnError(`${fn}(): chunks of ${layout.chunkLen} tokens are not whole ${bq}×${bkv} blocks; build the layout with the BlockMask's blockSize`);
  }
  if (mask.offsets.q !== 0 || mask.offsets.kv !== 0) {
    throw new FlexAttnError(`${fn}(): pass the unsliced BlockMask of the whole sequence (this one starts at query ${mask.offsets.q}, key ${mask.offsets.kv})`);
  }
}

/** pairs[qRank][kvRank]: every shard pair's work and kernel calls, from one pass over the tables. */
export function shardPairs(mask: BlockMask, layout: ShardLayout): ShardPair[][] {
  requireSquareMask("shardPairs", mask, layout);
  const [bq, bkv] = mask.blockSize;
  const numChunks = layout.seqLen / layout.chunkLen;
  const qPer = layout.chunkLen / bq;
  const kvPer = layout.chunkLen / bkv;
  const chunkWork: RectWork[][] = gridWork(
    mask,
    Array.from({ length: numChunks + 1 }, (_, c) => c * qPer),
    Array.from({ length: numChunks + 1 }, (_, c) => c * kvPer),
  );
  return layout.ranks.map((qChunks, qRank) =>
    layout.ranks.map((kvChunks, kvRank) => {
      const chunkPairs: ChunkPair[] = [];
      qChunks.forEach((qc, qi) => {
        kvChunks.forEach((kc, ki) => {
          const { partial, full } = chunkWork[qc][kc];
          if (partial + full === 0) return;
          chunkPairs.push({
            qChunk: qc, kvChunk: kc, qLocalStart: qi * layout.chunkLen, kvLocalStart: ki * layout.chunkLen,
            qBlocks: [qc * qPer, (qc + 1) * qPer], kvBlocks: [kc * kvPer, (kc + 1) * kvPer], partial, full,
          });
        });
      });
      const sum = (key: "partial" | "full") => chunkPairs.reduce((acc, c) => acc + c[key], 0);
      return { qRank, kvRank, partial: sum("partial"), full: sum("full"), chunkPairs };
    }),
  );
}

/** The sub-BlockMask of one kernel call (tables local to the chunk pair, offsets global). */
export function sliceChunkPair(mask: BlockMask, pair: ChunkPair): BlockMask {
  return sliceBlocks(mask, pair.qBlocks, pair.kvBlocks);
}

/** What one rank does in one ring step. */
export interface RingStep {
  /** The key/value shard this rank holds during the step: (rank − step) mod worldSize. */
  kvRank: number;
  /** Whether it runs the kernel (its pair with kvRank has blocks). */
  compute: boolean;
  /** Whether it sends the shard it holds to rank + 1 during the step (some later holder needs it). */
  send: boolean;
  /** Whether it receives the next step's shard from rank − 1 during the step (= that rank's send). */
  recv: boolean;
}

export interface RingSchedule {
  worldSize: number;
  /** steps[step][rank], worldSize steps. */
  steps: RingStep[][];
}

/**
 * The ring: in step s rank r holds key/value shard (r − s) mod W, computes its pair with it when
 * the pair has blocks, and meanwhile passes the shard on to r + 1 (double buffering: compute on
 * one buffer while the next arrives in the other). A send is skipped when no rank further along
 * the ring needs that shard — e.g. under a causal mask with contiguous shards, shard j is not
 * needed by ranks below j, so it stops at rank W − 1. The last step sends nothing.
 */
export function ringSchedule(pairs: ShardPair[][]): RingSchedule {
  const W = pairs.length;
  if (W < 1 || pairs.some((row) => row.length !== W)) throw new FlexAttnError("ringSchedule(): pairs must be a square [qRank][kvRank] table (from shardPairs)");
  const busy = (qRank: number, kvRank: number) => pairs[qRank][kvRank].chunkPairs.length > 0;
  const holder = (kvRank: number, step: number) => (kvRank + step) % W;
  // neededFrom[j][s]: some holder of shard j at step s or later computes with it.
  const neededFrom = Array.from({ length: W }, (_, j) => {
    const need = new Array<boolean>(W + 1).fill(false);
    for (let s = W - 1; s >= 0; s--) need[s] = need[s + 1] || busy(holder(j, s), j);
    return need;
  });
  const steps: RingStep[][] = [];
  for (let s = 0; s < W; s++) {
    const sends = Array.from({ length: W }, (_, r) => {
      const j = (((r - s) % W) + W) % W;
      return s < W - 1 && neededFrom[j][s + 1];
    });
    steps.push(
      sends.map((send, r) => {
        const kvRank = (((r - s) % W) + W) % W;
        return { kvRank, compute: busy(r, kvRank), send, recv: sends[(r - 1 + W) % W] };
      }),
    );
  }
  return { worldSize: W, steps };
}

/** What a plan costs, in blocks computed (partial + full) over the logical B × H. */
export interface PlanCost {
  /** Blocks each rank computes in total. */
  rankWork: number[];
  /** Per step, the most blocks any rank computes: the ring moves at the slowest rank's pace. */
  stepMax: number[];
  /** Σ stepMax: the ring's time in blocks when compute dominates. */
  criticalPath: number;
  /** max(rankWork) / mean(rankWork); 1 is perfect balance (1 also when nothing is computed). */
  imbalance: number;
  /** Kernel launches over all ranks (non-empty chunk pairs). */
  kernelCalls: number;
  /** Shard sends over all ranks and steps. */
  sends: number;
}

export function planCost(pairs: ShardPair[][], schedule: RingSchedule): PlanCost {
  const W = schedule.worldSize;
  const work = (p: ShardPair) => p.partial + p.full;
  const rankWork = pairs.map((row) => row.reduce((acc, p) => acc + work(p), 0));
  const stepMax = schedule.steps.map((step) => Math.max(...step.map((x, r) => (x.compute ? work(pairs[r][x.kvRank]) : 0))));
  const total = rankWork.reduce((a, b) => a + b, 0);
  return {
    rankWork,
    stepMax,
    criticalPath: stepMax.reduce((a, b) => a + b, 0),
    imbalance: total === 0 ? 1 : Math.max(...rankWork) / (total / W),
    kernelCalls: pairs.flat().reduce((acc, p) => acc + p.chunkPairs.length, 0),
    sends: schedule.steps.flat().filter((x) => x.send).length,
  };
}

/** A sharding of one BlockMask, with its shard pairs, ring schedule and cost. */
export interface ContextParallelPlan {
  layout: ShardLayout;
  pairs: ShardPair[][];
  schedule: RingSchedule;
  cost: PlanCost;
}

export interface PlanOptions {
  /** Strategies to consider (default all, in SHARD_STRATEGIES order; ties go to the earlier). */
  strategies?: readonly ShardStrategy[];
  /** `striped`: chunks per rank (default DEFAULT_STRIPES_PER_RANK). */
  stripesPerRank?: number;
}

/** A strategy the planner looked at: its cost, or why it cannot shard this sequence. */
export interface PlanCandidate {
  strategy: ShardStrategy;
  cost?: PlanCost;
  refused?: string;
}

/** The plan of one given layout. */
export function planForLayout(mask: BlockMask, layout: ShardLayout): ContextParallelPlan {
  const pairs = shardPairs(mask, layout);
  const schedule = ringSchedule(pairs);
  return { layout, pairs, schedule, cost: planCost(pairs, schedule) };
}

/**
 * The sharding of `mask` over `worldSize` ranks with the shortest ring (least critical-path work;
 * ties: fewer kernel calls, then the earlier strategy), chosen from the BlockMask's per-pair
 * work — so a causal mask gets a balanced sharding and a mask that is already balanced keeps
 * contiguous shards. Strategies that cannot split this length are skipped; if none can, the
 * error lists why.
 */
export function planContextParallel(
  mask: BlockMask,
  worldSize: number,
  options: PlanOptions = {},
): ContextParallelPlan & { candidates: PlanCandidate[] } {
  const strategies = options.strategies ?? SHARD_STRATEGIES;
  if (strategies.length === 0) throw new FlexAttnError("planContextParallel(): strategies is empty");
  const candidates: PlanCandidate[] = [];
  let best: ContextParallelPlan | undefined;
  for (const strategy of strategies) {
    const attempt = tryShardLayout(strategy, { seqLen: mask.shape.qLen, worldSize, blockSize: mask.blockSize, stripesPerRank: options.stripesPerRank });
    if ("refused" in attempt) {
      candidates.push({ strategy, refused: attempt.refused });
      continue;
    }
    const plan = planForLayout(mask, attempt.layout);
    candidates.push({ strategy, cost: plan.cost });
    const better =
      !best ||
      plan.cost.criticalPath < best.cost.criticalPath ||
      (plan.cost.criticalPath === best.cost.criticalPath && plan.cost.kernelCalls < best.cost.kernelCalls);
    if (better) best = plan;
  }
  if (!best) throw new FlexAttnError(`planContextParallel(): no sharding fits: ${candidates.map((c) => c.refused).join("; ")}`);
  return { ...best, candidates };
}
