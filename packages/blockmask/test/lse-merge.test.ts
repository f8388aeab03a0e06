import { describe, expect, it } from "vitest";
import { FlexAttnError } from "@flexattn/ir";
import { mulberry32 } from "@flexattn/masks";
import { mergeAttentionPartial } from "@flexattn/blockmask";

/** Softmax attention of one row over the keys in `keys` (float64): out [dv] and lse. */
function attendRow(s: number[], v: number[][], keys: number[]): { out: number[]; lse: number } {
  const dv = v[0].length;
  if (keys.length === 0) return { out: new Array(dv).fill(0), lse: -Infinity };
  const m = Math.max(...keys.map((j) => s[j]));
  let l = 0;
  const out = new Array(dv).fill(0);
  for (const j of keys) {
    const p = Math.exp(s[j] - m);
    l += p;
    for (let d = 0; d < dv; d++) out[d] += p * v[j][d];
  }
  return { out: out.map((x) => x / l), lse: m + Math.log(l) };
}

describe("mergeAttentionPartial", () => {
  it("merging attention over disjoint key sets equals attention over their union (any split, any order)", () => {
    const rand = mulberry32(5);
    const rows = 9;
    const keys = 40;
    const dv = 3;
    for (let trial = 0; trial < 20; trial++) {
      const s = Array.from({ length: rows }, () => Array.from({ length: keys }, () => (rand() - 0.5) * 40));
      const v = Array.from({ length: keys }, () => Array.from({ length: dv }, () => rand() * 2 - 1));
      // Up to 4 parts; row 0 sees no key in any part, others get random splits (some parts empty).
      const parts = 1 + Math.floor(rand() * 4);
      const owner = Array.from({ length: keys }, () => Math.floor(rand() * parts));
      const keysOf = (row: number, part: number) => (row === 0 ? [] : Array.from({ length: keys }, (_, j) => j).filter((j) => owner[j] === part && (row + j) % 5 !== 0));
      const acc = { out: new Float64Array(rows * dv), lse: new Float64Array(rows).fill(-Infinity) };
      for (let part = parts - 1; part >= 0; part--) {
        const partial = { out: new Float64Array(rows * dv), lse: new Float64Array(rows) };
        for (let r = 0; r < rows; r++) {
          const a = attendRow(s[r], v, keysOf(r, part));
          partial.out.set(a.out, r * dv);
          partial.lse[r] = a.lse;
        }
        mergeAttentionPartial(acc, partial);
      }
      for (let r = 0; r < rows; r++) {
        const all = Array.from({ length: keys }, (_, j) => j).filter((j) => r !== 0 && (r + j) % 5 !== 0);
        const want = attendRow(s[r], v, all);
        if (want.lse === -Infinity) expect(acc.lse[r]).toBe(-Infinity);
        else expect(Math.abs(acc.lse[r] - want.lse)).toBeLessThan(1e-12 * Math.max(1, Math.abs(want.lse)));
        for (let d = 0; d < dv; d++) expect(Math.abs(acc.out[r * dv + d] - want.out[d])).toBeLessThan(1e-12);
      }
      expect(Array.from(acc.out.subarray(0, dv))).toEqual([0, 0, 0]);
    }
  });

  it("works on Float32 arrays and row subarrays; large LSE gaps do not overflow", () => {
    const acc = { out: new Float32Array([1, 2, 5, 6]), lse: new Float32Array([1000, -1000]) };
    mergeAttentionPartial(
      { out: acc.out.subarray(2), lse: acc.lse.subarray(1) },
      { out: new Float32Array([7, 8]), lse: new Float32Array([-1000 + Math.log(3)]) },
    );
    expect(Array.from(acc.out.subarray(0, 2))).toEqual([1, 2]); // rows outside the subarray untouched
    expect(acc.out[2]).toBeCloseTo(6.5, 4); // (5 + 3·7) / 4
    expect(acc.out[3]).toBeCloseTo(7.5, 4);
    expect(acc.lse[1]).toBeCloseTo(-1000 + Math.log(4), 3);
    mergeAttentionPartial(acc, { out: new Float32Array([3, 4, 0, 0]), lse: new Float32Array([-1000, -Infinity]) });
    expect(Array.from(acc.out.subarray(0, 2))).toEqual([1, 2]);
    expect(acc.lse[0]).toBe(1000);
  });

  it("refuses mismatched shapes and NaN or +inf LSEs", () => {
    const a = { out: new Float64Array(4), lse: new Float64Array(2) };
    expect(() => mergeAttentionPartial(a, { out: new Float64Array(6), lse: new Float64Array(2) })).toThrow(FlexAttnError);
    expect(() => mergeAttentionPartial(a, { out: new Float64Array(4), lse: new Float64Array([0, Number.NaN]) })).toThrow(/finite or -inf/);
    expect(() => mergeAttentionPartial(a, { out: new Float64Array(4), lse: new Float64Array([Infinity, 0]) })).toThrow(/finite or -inf/);
  });
});
