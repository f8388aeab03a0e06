/**
 * Tile classification without a dense mask. A quadtree over the block grid asks interval
 * analysis about whole regions, so large always-true / always-false areas are decided at
 * once. An undecided tile is searched (interval analysis on sub-rectangles, then element-wise
 * on small pieces) only until one true and one false element are seen: that makes it partial.
 * Exact by construction: a tile is full or empty only when every in-range element says so.
 */
import type { BufferRangeFn, CompiledMaskFn, InputRanges, ModGraph, Truth } from "@flexattn/ir";
import { IntervalAnalyzer, compileJsMod } from "@flexattn/ir";
import { makeBufferRange } from "./range-summary.js";
import { BLOCK_EMPTY, BLOCK_FULL, BLOCK_PARTIAL, type IndexOffsets } from "./types.js";

/** Pieces of at most this many elements are evaluated element by element. */
const LEAF_AREA = 64;

export interface GridGeometry {
  qLen: number;
  kvLen: number;
  blockQ: number;
  blockKv: number;
  numQBlocks: number;
  numKvBlocks: number;
}

export class TileClassifier {
  private readonly analyzer: IntervalAnalyzer;
  private readonly fn: CompiledMaskFn;
  private readonly bufferRange: BufferRangeFn | undefined;
  /** Mutated in place for every query: no allocation per region. */
  private readonly ranges: InputRanges = { b: { lo: 0, hi: 0 }, h: { lo: 0, hi: 0 }, q: { lo: 0, hi: 0 }, kv: { lo: 0, hi: 0 } };
  private state: Uint8Array = new Uint8Array(0);
  private b = 0;
  private h = 0;
  private seenTrue = false;
  private seenFalse = false;
  /** Number of interval-analysis queries and element evaluations, for tests and benches. */
  readonly stats = { intervalQueries: 0, elementEvaluations: 0 };

  constructor(
    graph: ModGraph,
    private readonly geo: GridGeometry,
    private readonly offsets: IndexOffsets,
  ) {
    this.analyzer = new IntervalAnalyzer(graph);
    this.fn = compileJsMod(graph) as CompiledMaskFn;
    this.bufferRange = makeBufferRange(graph);
  }

  /** Fill `state` ([QB, KVB], zeroed by the caller) for global batch b and head h. */
  classify(b: number, h: number, state: Uint8Array): void {
    this.state = state;
    this.b = b;
    this.h = h;
    this.ranges.b.lo = this.ranges.b.hi = b;
    this.ranges.h.lo = this.ranges.h.hi = h;
    this.region(0, this.geo.numQBlocks, 0, this.geo.numKvBlocks);
  }

  /** Truth of the mask over local element ranges [q0, q1] × [k0, k1] (inclusive). */
  private truth(q0: number, q1: number, k0: number, k1: number): Truth {
    const r = this.ranges;
    r.q.lo = q0 + this.offsets.q;
    r.q.hi = q1 + this.offsets.q;
    r.kv.lo = k0 + this.offsets.kv;
    r.kv.hi = k1 + this.offsets.kv;
    this.stats.intervalQueries++;
    return this.analyzer.truth(r, this.bufferRange);
  }

  /** Blocks [qb0, qb1) × [kb0, kb1); elements past qLen / kvLen are out of range and ignored. */
  private region(qb0: number, qb1: number, kb0: number, kb1: number): void {
    const g = this.geo;
    const q0 = qb0 * g.blockQ;
    const q1 = Math.min(qb1 * g.blockQ, g.qLen) - 1;
    const k0 = kb0 * g.blockKv;
    const k1 = Math.min(kb1 * g.blockKv, g.kvLen) - 1;
    const t = this.truth(q0, q1, k0, k1);
    if (t === "false") return; // state is already BLOCK_EMPTY
    if (t === "true") {
      for (let qb = qb0; qb < qb1; qb++) this.state.fill(BLOCK_FULL, qb * g.numKvBlocks + kb0, qb * g.numKvBlocks + kb1);
      return;
    }
    if (qb1 - qb0 === 1 && kb1 - kb0 === 1) {
      this.state[qb0 * g.numKvBlocks + kb0] = this.refineTile(q0, q1, k0, k1);
      return;
    }
    const qm = qb1 - qb0 > 1 ? (qb0 + qb1) >> 1 : qb1;
    const km = kb1 - kb0 > 1 ? (kb0 + kb1) >> 1 : kb1;
    this.region(qb0, qm, kb0, km);
    if (km < kb1) this.region(qb0, qm, km, kb1);
    if (qm < qb1) {
      this.region(qm, qb1, kb0, km);
      if (km < kb1) this.region(qm, qb1, km, kb1);
    }
  }

  /** A tile interval analysis could not decide: look for one true and one false element. */
  private refineTile(q0: number, q1: number, k0: number, k1: number): number {
    this.seenTrue = false;
    this.seenFalse = false;
    this.search(q0, q1, k0, k1);
    if (this.seenTrue && this.seenFalse) return BLOCK_PARTIAL;
    return this.seenTrue ? BLOCK_FULL : BLOCK_EMPTY;
  }

  /**
   * Search an undecided rectangle: ask about each quarter first (cheap), then descend into the
   * undecided quarters, stopping as soon as both a true and a false element are known.
   */
  private search(q0: number, q1: number, k0: number, k1: number): void {
    if ((q1 - q0 + 1) * (k1 - k0 + 1) <= LEAF_AREA) {
      this.scan(q0, q1, k0, k1);
      return;
    }
    const qm = q1 > q0 ? (q0 + q1) >> 1 : q1; // first half [q0, qm], second [qm + 1, q1]
    const km = k1 > k0 ? (k0 + k1) >> 1 : k1;
    const hasQ2 = qm < q1;
    const hasK2 = km < k1;
    let undecided = 0; // bit i: quarter i still unknown
    for (let i = 0; i < 4; i++) {
      if ((i & 1 && !hasK2) || (i & 2 && !hasQ2)) continue;
      const t = this.truth(i & 2 ? qm + 1 : q0, i & 2 ? q1 : qm, i & 1 ? km + 1 : k0, i & 1 ? k1 : km);
      if (t === "true") this.seenTrue = true;
      else if (t === "false") this.seenFalse = true;
      else undecided |= 1 << i;
      if (this.seenTrue && this.seenFalse) return;
    }
    for (let i = 0; i < 4; i++) {
      if (!(undecided & (1 << i))) continue;
      this.search(i & 2 ? qm + 1 : q0, i & 2 ? q1 : qm, i & 1 ? km + 1 : k0, i & 1 ? k1 : km);
      if (this.seenTrue && this.seenFalse) return;
    }
  }

  /** Element-wise evaluation of a small piece, with the same early exit. */
  private scan(q0: number, q1: number, k0: number, k1: number): void {
    const { fn, b, h } = this;
    const qo = this.offsets.q;
    const ko = this.offsets.kv;
    for (let q = q0; q <= q1; q++) {
      for (let kv = k0; kv <= k1; kv++) {
        this.stats.elementEvaluations++;
        if (fn(b, h, q + qo, kv + ko)) this.seenTrue = true;
        else this.seenFalse = true;
        if (this.seenTrue && this.seenFalse) return;
      }
    }
  }
}
