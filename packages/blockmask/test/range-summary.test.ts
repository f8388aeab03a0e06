import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { RangeMinMax, makeBufferRange } from "@flexattn/blockmask";
import { buffer, traceMaskMod } from "@flexattn/ir";

function bruteRange(d: ArrayLike<number>, l: number, r: number): { lo: number; hi: number; nan: boolean } {
  let lo = Infinity;
  let hi = -Infinity;
  let nan = false;
  for (let i = l; i <= r; i++) {
    if (Number.isNaN(d[i])) nan = true;
    else { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
  }
  return { lo, hi, nan };
}

describe("RangeMinMax", () => {
  it("matches brute force on every range of short arrays around the chunk size", () => {
    for (const n of [1, 2, 31, 32, 33, 64, 65, 100]) {
      const d = Int32Array.from({ length: n }, (_, i) => ((i * 7919) % 23) - 11);
      const s = new RangeMinMax(d);
      for (let l = 0; l < n; l++) for (let r = l; r < n; r++) {
        const want = bruteRange(d, l, r);
        expect(s.query(l, r)).toEqual({ lo: want.lo, hi: want.hi });
      }
    }
  });

  it("matches brute force on random arrays and ranges (i32 and f32 with ±Inf and NaN)", () => {
    const value = fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.constantFrom(Infinity, -Infinity, NaN));
    fc.assert(fc.property(
      fc.array(value, { minLength: 1, maxLength: 3000 }), fc.nat(), fc.nat(), fc.boolean(),
      (values, x, y, f32) => {
        const d = f32 ? Float32Array.from(values) : Int32Array.from(values.map((v) => (Number.isFinite(v) ? v : 7)));
        const l = x % d.length;
        const r = l + (y % (d.length - l));
        const got = new RangeMinMax(d).query(l, r);
        const want = bruteRange(d, l, r);
        if (want.nan) expect(got).toEqual({ lo: -Infinity, hi: Infinity, nan: true });
        else expect(got).toEqual({ lo: want.lo, hi: want.hi });
      },
    ), { numRuns: 300 });
  });
});

describe("makeBufferRange", () => {
  it("bounds 1-D loads by the index range, clipped to the buffer", () => {
    const docs = buffer(Int32Array.from([0, 0, 1, 1, 2, 2, 3, 3]), { name: "docs" });
    const g = traceMaskMod((_b, _h, q, kv) => docs.at(q).eq(docs.at(kv)));
    const range = makeBufferRange(g)!;
    expect(range(0, [{ lo: 2, hi: 5 }])).toEqual({ lo: 1, hi: 2 });
    expect(range(0, [{ lo: -4, hi: 1 }])).toEqual({ lo: 0, hi: 0 });
    expect(range(0, [{ lo: 7, hi: 100 }])).toEqual({ lo: 3, hi: 3 });
  });

  it("bounds 2-D loads per row when the row is one value, else defers to whole-buffer bounds", () => {
    const t = buffer(Int32Array.from([5, 6, 7, 8, 0, 1, 2, 3]), { name: "t", shape: [2, 4] });
    const g = traceMaskMod((b, _h, q, _kv) => t.at(b, q).gt(2));
    const range = makeBufferRange(g)!;
    expect(range(0, [{ lo: 1, hi: 1 }, { lo: 1, hi: 2 }])).toEqual({ lo: 1, hi: 2 });
    expect(range(0, [{ lo: 0, hi: 0 }, { lo: 0, hi: 9 }])).toEqual({ lo: 5, hi: 8 });
    expect(range(0, [{ lo: 0, hi: 1 }, { lo: 0, hi: 1 }])).toBeUndefined();
  });

  it("is undefined for graphs without buffers", () => {
    expect(makeBufferRange(traceMaskMod((_b, _h, q, kv) => q.ge(kv)))).toBeUndefined();
  });
});
