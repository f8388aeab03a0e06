import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  IntervalAnalyzer, buffer, compileJsMod, evaluate, evaluateBatch, floorDivI32, modI32, f32ToI32, toF32, traceMaskMod,
  traceScoreMod,
} from "@flexattn/ir";
import { type Buffers, buildBool, buildInt, exprArbs } from "./arbitrary.js";

const data = Int32Array.from({ length: 16 }, (_, i) => ((i * 7919) % 23) - 11);
const bufs: Buffers = {
  ibuf: buffer(data, { name: "tbl" }),
  fbuf: buffer(Float32Array.from({ length: 8 }, (_, i) => ((i * 37) % 11) / 4 - 1.25), { name: "ftbl" }),
  fmat: buffer(Float32Array.from({ length: 12 }, (_, i) => ((i * 29) % 13) / 8 - 0.75), { shape: [3, 4], name: "fmat" }),
};
const point = fc.record({
  b: fc.integer({ min: 0, max: 3 }), h: fc.integer({ min: 0, max: 3 }),
  q: fc.integer({ min: -5, max: 300 }), kv: fc.integer({ min: -5, max: 300 }),
});

describe("semantics", () => {
  it("floor division and modulo follow Python", () => {
    const cases: [number, number, number, number][] = [
      [7, 2, 3, 1], [-7, 2, -4, 1], [7, -2, -4, -1], [-7, -2, 3, -1], [0, 5, 0, 0], [5, 0, 0, 0],
      [-2147483648, -1, -2147483648, 0], [2147483647, 1, 2147483647, 0], [-1, 2147483647, -1, 2147483646],
    ];
    for (const [a, b, fd, m] of cases) {
      expect(floorDivI32(a, b)).toBe(fd);
      expect(modI32(a, b)).toBe(m);
    }
  });
  it("f32 → i32 truncates, saturates and maps NaN to 0", () => {
    expect([2.9, -2.9, 1e20, -1e20, NaN].map(f32ToI32)).toEqual([2, -2, 2147483647, -2147483648, 0]);
  });
  it("i32 arithmetic wraps", () => {
    const g = traceMaskMod((_b, _h, q, kv) => q.add(2147483647).mul(kv).lt(0));
    expect(evaluate(g, { b: 0, h: 0, q: 1, kv: 1 })).toBe(true); // 2147483647 + 1 wraps negative
  });
});

describe("property: compiled JS equals the evaluator", () => {
  it("on random mask expressions", () => {
    fc.assert(
      fc.property(exprArbs.bool, fc.array(point, { minLength: 8, maxLength: 8 }), (expr, pts) => {
        const g = traceMaskMod((b, h, q, kv) => buildBool(expr, { b, h, q, kv }, bufs));
        const fn = compileJsMod(g) as (b: number, h: number, q: number, kv: number) => boolean;
        for (const p of pts) expect(fn(p.b, p.h, p.q, p.kv)).toBe(evaluate(g, p));
      }),
      { numRuns: 300 },
    );
  });
  it("on random integer score expressions, scalar and batched", () => {
    fc.assert(
      fc.property(exprArbs.int, fc.array(point, { minLength: 6, maxLength: 6 }), (expr, pts) => {
        const g = traceScoreMod((s, b, h, q, kv) => s.add(toF32(q.mul(0).add(buildInt(expr, { b, h, q, kv }, bufs)))));
        const fn = compileJsMod(g) as (s: number, b: number, h: number, q: number, kv: number) => number;
        const batch = evaluateBatch(g, {
          length: pts.length, score: 0.5, b: pts.map((p) => p.b), h: pts.map((p) => p.h), q: pts.map((p) => p.q), kv: pts.map((p) => p.kv),
        });
        pts.forEach((p, i) => {
          const ref = evaluate(g, { ...p, score: 0.5 });
          expect(fn(0.5, p.b, p.h, p.q, p.kv)).toBe(ref);
          expect(batch[i]).toBe(ref);
        });
      }),
      { numRuns: 200 },
    );
  });
});

describe("property: interval analysis is sound", () => {
  const range = fc.tuple(fc.integer({ min: -5, max: 200 }), fc.integer({ min: 0, max: 60 })).map(([lo, w]) => ({ lo, hi: lo + w }));
  it("every sampled value lies in the computed interval; decided masks hold everywhere", () => {
    fc.assert(
      fc.property(exprArbs.bool, exprArbs.int, range, range, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (bexpr, iexpr, qr, kr, seed) => {
        const mask = traceMaskMod((b, h, q, kv) => buildBool(bexpr, { b, h, q, kv }, bufs));
        const score = traceScoreMod((_s, b, h, q, kv) => toF32(q.mul(0).add(buildInt(iexpr, { b, h, q, kv }, bufs))));
        const ranges = { b: { lo: 0, hi: 1 }, h: { lo: 0, hi: 2 }, q: qr, kv: kr };
        const truth = new IntervalAnalyzer(mask).truth(ranges);
        const vals = new IntervalAnalyzer(score).run(ranges);
        const root = vals[vals.length - 1];
        let s = seed;
        for (let i = 0; i < 40; i++) {
          s = (Math.imul(s, 1103515245) + 12345) >>> 0;
          const pick = (r: { lo: number; hi: number }, k: number) => r.lo + ((s >>> k) % (r.hi - r.lo + 1));
          const p = { b: pick(ranges.b, 1), h: pick(ranges.h, 3), q: pick(qr, 5), kv: pick(kr, 11) };
          const m = evaluate(mask, p);
          if (truth === "true") expect(m).toBe(true);
          if (truth === "false") expect(m).toBe(false);
          const v = evaluate(score, { ...p, score: 0 }) as number;
          expect(v).toBeGreaterThanOrEqual(root.lo);
          expect(v).toBeLessThanOrEqual(root.hi);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("decides common masks exactly on simple regions", () => {
    const causal = new IntervalAnalyzer(traceMaskMod((_b, _h, q, kv) => q.ge(kv)));
    const r = (lo: number, hi: number) => ({ lo, hi });
    const base = { b: r(0, 0), h: r(0, 0) };
    expect(causal.truth({ ...base, q: r(128, 255), kv: r(0, 127) })).toBe("true");
    expect(causal.truth({ ...base, q: r(0, 127), kv: r(128, 255) })).toBe("false");
    expect(causal.truth({ ...base, q: r(0, 127), kv: r(0, 127) })).toBe("unknown");
    const docs = buffer(Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1]), { name: "docs" });
    const doc = new IntervalAnalyzer(traceMaskMod((_b, _h, q, kv) => docs.at(q).eq(docs.at(kv))));
    const summary = (_slot: number, idx: readonly { lo: number; hi: number }[]) => {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = idx[0].lo; i <= idx[0].hi; i++) {
        lo = Math.min(lo, docs.data[i]);
        hi = Math.max(hi, docs.data[i]);
      }
      return { lo, hi };
    };
    expect(doc.truth({ ...base, q: r(0, 3), kv: r(0, 3) }, summary)).toBe("true");
    expect(doc.truth({ ...base, q: r(0, 3), kv: r(4, 7) }, summary)).toBe("false");
    expect(doc.truth({ ...base, q: r(2, 5), kv: r(4, 7) }, summary)).toBe("unknown");
  });
});
