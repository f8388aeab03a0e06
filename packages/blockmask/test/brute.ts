/**
 * Test oracles, written independently of the package: dense element-wise evaluation with the
 * IR's reference evaluator, tile classification from it, and a table checker.
 */
import { expect } from "vitest";
import { evaluateBatch, usedInputs } from "@flexattn/ir";
import type { ModGraph } from "@flexattn/ir";
import type { BlockMask } from "@flexattn/blockmask";

export interface Problem { B: number; H: number; qLen: number; kvLen: number; blockSize: [number, number] }

/** Expected [Bm, Hm, QB, KVB] states (0 empty, 1 partial, 2 full) from a dense evaluation. */
export function bruteForceStates(graph: ModGraph, p: Problem): { Bm: number; Hm: number; QB: number; KVB: number; states: Uint8Array } {
  const used = usedInputs(graph);
  const Bm = used.has("b") ? p.B : 1;
  const Hm = used.has("h") ? p.H : 1;
  const [bq, bk] = p.blockSize;
  const QB = Math.ceil(p.qLen / bq);
  const KVB = Math.ceil(p.kvLen / bk);
  const states = new Uint8Array(Bm * Hm * QB * KVB);
  const kvs = Int32Array.from({ length: p.kvLen }, (_, i) => i);
  const trues = new Int32Array(QB * KVB);
  for (let b = 0; b < Bm; b++) {
    for (let h = 0; h < Hm; h++) {
      trues.fill(0);
      for (let q = 0; q < p.qLen; q++) {
        const row = evaluateBatch(graph, { length: p.kvLen, b, h, q, kv: kvs });
        for (let kv = 0; kv < p.kvLen; kv++) if (row[kv]) trues[Math.floor(q / bq) * KVB + Math.floor(kv / bk)]++;
      }
      for (let qb = 0; qb < QB; qb++) {
        for (let kb = 0; kb < KVB; kb++) {
          const area = (Math.min((qb + 1) * bq, p.qLen) - qb * bq) * (Math.min((kb + 1) * bk, p.kvLen) - kb * bk);
          const t = trues[qb * KVB + kb];
          states[((b * Hm + h) * QB + qb) * KVB + kb] = t === 0 ? 0 : t === area ? 2 : 1;
        }
      }
    }
  }
  return { Bm, Hm, QB, KVB, states };
}

/** Decode the kv tables into states, checking layout invariants on the way. */
export function decodeKvTables(m: BlockMask): Uint8Array {
  const { Bm, Hm, numQBlocks: QB, numKvBlocks: KVB } = m;
  const states = new Uint8Array(Bm * Hm * QB * KVB);
  const decode = (num: Int32Array, idx: Int32Array, value: number) => {
    expect(num.length).toBe(Bm * Hm * QB);
    expect(idx.length).toBe(Bm * Hm * QB * KVB);
    for (let row = 0; row < num.length; row++) {
      const n = num[row];
      if (n < 0 || n > KVB) throw new Error(`row ${row}: count ${n}`);
      for (let j = 0; j < KVB; j++) {
        const k = idx[row * KVB + j];
        if (j >= n) {
          if (k !== 0) throw new Error(`row ${row}: padding ${j} is ${k}, not 0`);
          continue;
        }
        if (k < 0 || k >= KVB) throw new Error(`row ${row}: index ${k} out of range`);
        if (j > 0 && k <= idx[row * KVB + j - 1]) throw new Error(`row ${row}: indices not ascending`);
        if (states[row * KVB + k] !== 0) throw new Error(`row ${row}: block ${k} listed twice`);
        states[row * KVB + k] = value;
      }
    }
  };
  decode(m.kvNumBlocks, m.kvIndices, 1);
  decode(m.fullKvNumBlocks, m.fullKvIndices, 2);
  return states;
}

/** The q tables must be exactly the transpose of the kv tables (ascending, padded with 0). */
export function checkQTables(m: BlockMask, states: Uint8Array): void {
  const { Bm, Hm, numQBlocks: QB, numKvBlocks: KVB } = m;
  for (const [num, idx, value] of [[m.qNumBlocks, m.qIndices, 1], [m.fullQNumBlocks, m.fullQIndices, 2]] as const) {
    expect(num.length).toBe(Bm * Hm * KVB);
    expect(idx.length).toBe(Bm * Hm * KVB * QB);
    for (let e = 0; e < Bm * Hm; e++) {
      for (let kb = 0; kb < KVB; kb++) {
        const col = e * KVB + kb;
        const expected: number[] = [];
        for (let qb = 0; qb < QB; qb++) if (states[(e * QB + qb) * KVB + kb] === value) expected.push(qb);
        const got = Array.from(idx.subarray(col * QB, (col + 1) * QB));
        expect(num[col]).toBe(expected.length);
        expect(got).toEqual([...expected, ...new Array(QB - expected.length).fill(0)]);
      }
    }
  }
}

/** Layout checks plus exact agreement with brute force; returns a short mismatch list. */
export function compareWithBruteForce(m: BlockMask, graph: ModGraph, p: Problem): string[] {
  const want = bruteForceStates(graph, p);
  expect([m.Bm, m.Hm, m.numQBlocks, m.numKvBlocks]).toEqual([want.Bm, want.Hm, want.QB, want.KVB]);
  const got = decodeKvTables(m);
  checkQTables(m, got);
  const bad: string[] = [];
  const names = ["empty", "partial", "full"];
  for (let i = 0; i < got.length && bad.length < 8; i++) {
    if (got[i] !== want.states[i]) {
      const kb = i % want.KVB;
      const qb = Math.floor(i / want.KVB) % want.QB;
      const e = Math.floor(i / (want.KVB * want.QB));
      bad.push(`entry ${e} tile (${qb}, ${kb}): got ${names[got[i]]}, brute force ${names[want.states[i]]}`);
    }
  }
  return bad;
}
