import { describe, expect, it } from "vitest";
import { buffer, min, abs } from "@flexattn/ir";
import { alibi, causal, documentCausal, mulberry32, randomDocumentIds, softcap } from "@flexattn/masks";
import {
  type BackwardCall, type ConformanceCase, type Tensor, instantiateCase, randomNormal, referenceAttention, referenceBackward,
} from "@flexattn/template";

const small = { batch: 1, qHeads: 2, kvHeads: 2, qLen: 20, kvLen: 24, qkHeadDim: 16, vHeadDim: 16, dtype: "f32", returnLse: true } as const;

const CASES: ConformanceCase[] = [
  {
    name: "noop", problem: { ...small, batch: 2 }, blockSize: [8, 8], tags: [],
  },
  {
    name: "causal + learnable relative bias [2N-1], GQA, ragged", problem: { ...small, qHeads: 4, kvHeads: 2, qLen: 24, kvLen: 24 }, blockSize: [8, 8], tags: [],
    mask: () => causal(),
    score: (ctx) => {
      const bias = buffer(randomNormal(47, ctx.rand), { name: "relBias" });
      return (s, _b, _h, q, kv) => s.add(bias.at(q.sub(kv).add(23)));
    },
  },
  {
    name: "softcap, fully masked rows, offsets", problem: { ...small, qOffset: 4, kvOffset: 2 }, blockSize: [8, 8], tags: [],
    mask: () => (_b, _h, q, kv) => q.ge(12).and(kv.le(q)),
    score: () => softcap(4),
  },
  {
    name: "alibi (a captured slope table), document-causal", problem: { ...small, batch: 2 }, blockSize: [8, 8], tags: [],
    mask: (ctx) => documentCausal(randomDocumentIds(24, 3, Math.floor(ctx.rand() * 1e6))),
    score: () => alibi(2),
  },
  {
    name: "[H, buckets] bias table", problem: { ...small }, blockSize: [8, 8], tags: [],
    score: (ctx) => {
      const table = buffer(randomNormal(2 * 6, ctx.rand), { shape: [2, 6], name: "bucketBias" });
      return (s, _b, h, q, kv) => s.add(table.at(h, min(abs(q.sub(kv)), 5)));
    },
  },
];

/** L = Σ dOut ∘ out, by the float64 forward reference. */
function loss(call: BackwardCall): number {
  const { out } = referenceAttention(call);
  const dOut = call.dOut.data as Float32Array;
  let l = 0;
  for (let i = 0; i < out.length; i++) l += dOut[i] * out[i];
  return l;
}

function withDOut(cs: ConformanceCase, seed: number): BackwardCall {
  const inst = instantiateCase(cs, seed);
  const p = inst.problem;
  const shape = [p.batch, p.qHeads, p.qLen, p.vHeadDim];
  const dOut: Tensor = { data: randomNormal(shape.reduce((a, b) => a * b, 1), mulberry32(seed + 1)), shape, dtype: "f32" };
  return { ...inst, dOut };
}

describe("referenceBackward: against central finite differences of the float64 forward reference", () => {
  for (const cs of CASES) {
    it(cs.name, () => {
      const seed = (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0;
      const call = withDOut(cs, seed);
      const ref = referenceBackward(call);
      const h = 2 ** -7;
      const rand = mulberry32(seed + 2);
      // The reference's own forward agrees with referenceAttention.
      const fwd = referenceAttention(call);
      fwd.out.forEach((x, i) => {
        expect(ref.out[i]).toBeCloseTo(x, 12);
      });
      const check = (name: string, data: Float32Array, got: Float64Array, entries: number[]) => {
        const scale = Math.max(1e-3, ...Array.from(got, Math.abs));
        for (const e of entries) {
          const x = data[e];
          data[e] = x + h;
          const plus = loss(call);
          data[e] = x - h;
          const minus = loss(call);
          data[e] = x;
          const fd = (plus - minus) / (2 * h);
          expect(Math.abs(fd - got[e]), `${name}[${e}] seed ${seed}: reference ${got[e]}, finite difference ${fd}`).toBeLessThanOrEqual(2e-3 * scale);
        }
      };
      const pick = (n: number) => Array.from({ length: 10 }, () => Math.floor(rand() * n));
      // q, k, v are contiguous bhsd here, so the gradient's flat index is the data's.
      check("dq", call.q.data as Float32Array, ref.dq, pick(ref.dq.length));
      check("dk", call.k.data as Float32Array, ref.dk, pick(ref.dk.length));
      check("dv", call.v.data as Float32Array, ref.dv, pick(ref.dv.length));
      for (const bg of ref.dBuffers) {
        const data = call.score!.buffers[bg.slot].data as Float32Array;
        check(`d${bg.name}`, data, bg.grad, Array.from(data, (_, i) => i));
        expect(bg.grad.some((g) => g !== 0)).toBe(true);
      }
      for (const g of [ref.dq, ref.dk, ref.dv]) expect(g.every(Number.isFinite)).toBe(true);
    });
  }

  it("fully masked rows have zero gradients and -inf LSE, never NaN", () => {
    const call = withDOut(CASES[2], 9);
    const ref = referenceBackward(call);
    const D = call.problem.qkHeadDim;
    for (let i = 0; i < 8; i++) {
      expect(ref.lse[i]).toBe(-Infinity);
      expect(Array.from(ref.dq.subarray(i * D, (i + 1) * D)).every((x) => x === 0)).toBe(true);
    }
    expect(ref.dq.subarray(12 * D, 13 * D).some((x) => x !== 0)).toBe(true);
  });
});
