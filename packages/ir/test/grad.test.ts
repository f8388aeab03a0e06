import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FlexAttnError, type ModGraph, type ScoreMod, abs, buffer, differentiateScoreMod, evaluate, evaluateGradient, exp, exp2, log,
  log2, max, min, mod, sigmoid, sqrt, tanh, toF32, toI32, traceMaskMod, traceScoreMod, where,
} from "@flexattn/ir";
import { LIBRARY_SCORE_MODS, mulberry32 } from "@flexattn/masks";
import { type Buffers, buildScore, scoreArb } from "./arbitrary.js";

interface Point { score: number; b: number; h: number; q: number; kv: number }

/**
 * Central finite differences of the IR evaluator (f32 semantics) against the derived graphs.
 * A point where the one-sided differences disagree sits on a kink or a jump (min/max/abs, a load
 * index read from a float buffer): the derivative there is a convention, not a limit, so it is skipped.
 */
function checkAgainstFiniteDifferences(graph: ModGraph, points: readonly Point[]): { checked: number; skipped: number } {
  const grad = differentiateScoreMod(graph);
  const data = graph.buffers.map((b) => b.data!);
  const f = (p: Point, bufs = data) => evaluate(graph, p, bufs) as number;
  const h = 2 ** -8;
  let checked = 0;
  let skipped = 0;
  const compare = (got: number, plus: number, minus: number, center: number, what: string) => {
    if (![plus, minus, center].every(Number.isFinite)) return;
    const right = (plus - center) / h;
    const left = (center - minus) / h;
    const scale = Math.max(1, Math.abs(right), Math.abs(left));
    if (Math.abs(right - left) > 0.05 * scale) {
      skipped++;
      return;
    }
    const fd = (plus - minus) / (2 * h);
    expect(Math.abs(got - fd), `${what}: derived ${got}, finite difference ${fd}`).toBeLessThanOrEqual(0.02 * scale + 1e-3);
    checked++;
  };
  for (const p of points) {
    const g = evaluateGradient(grad, p);
    const c = f(p);
    compare(g.dScore, f({ ...p, score: p.score + h }), f({ ...p, score: p.score - h }), c, `∂/∂score at ${JSON.stringify(p)}`);
    // Every element of every f32 buffer: the sites' weights summed per offset, 0 elsewhere.
    graph.buffers.forEach((spec, slot) => {
      if (spec.dtype !== "f32") return;
      for (let e = 0; e < spec.data!.length; e++) {
        const at = (delta: number) => {
          const copy = Float32Array.from(spec.data as Float32Array);
          copy[e] += delta;
          return f(p, data.map((d, i) => (i === slot ? copy : d)));
        };
        const derived = g.sites.filter((s) => s.slot === slot && s.offset === e).reduce((a, s) => a + s.weight, 0);
        compare(derived, at(h), at(-h), c, `∂/∂${spec.name}[${e}] at ${JSON.stringify(p)}`);
      }
    });
  }
  return { checked, skipped };
}

function randomPoints(n: number, seed: number, scoreRange = 4): Point[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => ({
    score: (r() * 2 - 1) * scoreRange, b: Math.floor(r() * 2), h: Math.floor(r() * 4), q: Math.floor(r() * 40), kv: Math.floor(r() * 40),
  }));
}

const N = 16;
const biasTable = buffer(Float32Array.from({ length: 2 * N - 1 }, (_, i) => Math.sin(i) * 0.7), { name: "relBias" });
const headBuckets = buffer(Float32Array.from({ length: 4 * 6 }, (_, i) => Math.cos(i * 1.3)), { shape: [4, 6], name: "bucketBias" });
const scales = buffer(Float32Array.from([0.5, 1.5, -0.75, 2]), { name: "scales" });
const ids = buffer(Int32Array.from({ length: 40 }, (_, i) => (i * 7) % 5), { name: "ids" });

const HANDWRITTEN: Record<string, ScoreMod> = {
  "learnable relative bias [2N-1]": (s, _b, _h, q, kv) => s.add(biasTable.at(q.sub(kv).add(N - 1))),
  "learnable [H, buckets] bias": (s, _b, h, q, kv) => s.add(headBuckets.at(h, min(abs(q.sub(kv)), 5))),
  "bias read at an index from an i32 buffer": (s, _b, _h, q, _kv) => s.add(headBuckets.at(ids.at(q).mod(4), ids.at(q))),
  "two reads of one table, scaled by another": (s, _b, h, q, kv) => s.mul(scales.at(h)).add(biasTable.at(q.sub(kv).add(N - 1)).mul(biasTable.at(kv.mod(N)))),
  "every unary op": (s, _b, _h, _q, _kv) =>
    exp(tanh(s)).add(exp2(sigmoid(s))).add(log(abs(s).add(0.5))).add(log2(s.mul(s).add(1))).add(sqrt(s.mul(s).add(0.25))).add(s.neg()),
  "div, f32 mod, min, max, where": (s, _b, h, q, kv) =>
    where(q.ge(kv), s.div(scales.at(h).add(3)), mod(s, 1.75).add(max(s, scales.at(h))).sub(min(s.mul(0.5), -0.25))),
  "a mask through the score": (s, _b, _h, q, kv) => where(kv.gt(q), -Infinity, s.mul(toF32(q.sub(kv)).mul(0.1).add(1))),
  "integer paths only": (s, _b, _h, q, kv) => s.add(toF32(toI32(scales.at(q.mod(4)).mul(3)))).add(toF32(kv)),
};

describe("differentiateScoreMod: against central finite differences of the evaluator", () => {
  for (const entry of LIBRARY_SCORE_MODS) {
    it(`library score mod ${entry.name}`, () => {
      const graph = traceScoreMod(entry.create({ B: 2, H: 4, qLen: 40, kvLen: 40 }));
      const { checked } = checkAgainstFiniteDifferences(graph, randomPoints(24, 11, 40));
      expect(checked).toBeGreaterThan(20);
    });
  }
  for (const [name, fn] of Object.entries(HANDWRITTEN)) {
    it(name, () => {
      const { checked } = checkAgainstFiniteDifferences(traceScoreMod(fn), randomPoints(24, 5));
      expect(checked).toBeGreaterThan(10);
    });
  }

  it("on random score mods", () => {
    const bufs: Buffers = {
      ibuf: buffer(Int32Array.from({ length: 16 }, (_, i) => ((i * 7919) % 23) - 11), { name: "tbl" }),
      fbuf: buffer(Float32Array.from({ length: 8 }, (_, i) => ((i * 37) % 11) / 4 - 1.25), { name: "ftbl" }),
    };
    let checked = 0;
    let skipped = 0;
    fc.assert(
      fc.property(scoreArb, fc.integer({ min: 1, max: 2 ** 30 }), (e, seed) => {
        const graph = traceScoreMod((s, b, h, q, kv) => buildScore(e, s, { b, h, q, kv }, bufs, 4));
        const r = checkAgainstFiniteDifferences(graph, randomPoints(3, seed));
        checked += r.checked;
        skipped += r.skipped;
      }),
      { numRuns: 150 },
    );
    expect(checked).toBeGreaterThan(10 * skipped);
  });
});

describe("differentiateScoreMod: structure and conventions", () => {
  it("derived graphs are simplified and keep the forward's buffer slots", () => {
    const g = traceScoreMod((s, _b, _h, q, kv) => s.add(biasTable.at(q.sub(kv).add(N - 1))));
    const grad = differentiateScoreMod(g);
    expect(grad.dScore.nodes).toHaveLength(1); // the constant 1
    expect(evaluate(grad.dScore, { score: 3, b: 0, h: 0, q: 0, kv: 0 })).toBe(1);
    expect(grad.buffers).toHaveLength(1);
    const [site] = grad.buffers[0].sites;
    expect(site.weight.nodes).toHaveLength(1);
    expect(site.offset.buffers).toBe(g.buffers);
    expect(evaluate(site.offset, { score: 0, b: 0, h: 0, q: 3, kv: 5 })).toBe(13);
    expect(evaluate(site.offset, { score: 0, b: 0, h: 0, q: 0, kv: 20 })).toBe(-1); // out of range: read 0, no gradient
  });

  it("shares the forward's subexpressions: tanh's derivative reuses tanh", () => {
    const grad = differentiateScoreMod(traceScoreMod((s, _b, _h, _q, _kv) => tanh(s.div(5)).mul(5)));
    expect(grad.dScore.nodes.filter((n) => n.op === "tanh")).toHaveLength(1);
  });

  it("min/max split a tie half and half, abs has derivative 0 at 0, where routes to the branch taken", () => {
    const at = (fn: ScoreMod, score: number, q = 0) => evaluateGradient(differentiateScoreMod(traceScoreMod(fn)), { score, b: 0, h: 0, q, kv: 0 }).dScore;
    expect(at((s, _b, _h, _q, _kv) => max(s, 1), 1)).toBe(0.5);
    expect(at((s, _b, _h, _q, _kv) => min(s, 1), 1)).toBe(0.5);
    expect(at((s, _b, _h, _q, _kv) => max(s, 1), 2)).toBe(1);
    expect(at((s, _b, _h, _q, _kv) => max(s, 1), 0)).toBe(0);
    expect(at((s, _b, _h, _q, _kv) => abs(s), 0)).toBe(0);
    expect(at((s, _b, _h, _q, _kv) => abs(s), -2)).toBe(-1);
    expect(at((s, _b, _h, q, _kv) => where(q.gt(3), s.mul(3), -Infinity), 1, 5)).toBe(3);
    expect(at((s, _b, _h, q, _kv) => where(q.gt(3), s.mul(3), -Infinity), 1, 2)).toBe(0);
  });

  it("integer paths and i32 buffers carry no gradient", () => {
    const grad = differentiateScoreMod(traceScoreMod((s, _b, _h, q, _kv) => s.add(toF32(ids.at(q))).add(toF32(toI32(s.mul(4))))));
    expect(evaluate(grad.dScore, { score: 0.3, b: 0, h: 0, q: 1, kv: 0 })).toBe(1);
    expect(grad.buffers).toHaveLength(0); // ids is i32
  });

  it("refuses a mask mod and a buffer read at a score-dependent index", () => {
    expect(() => differentiateScoreMod(traceMaskMod((_b, _h, q, kv) => kv.le(q)))).toThrow(/mask mod has no gradient/);
    const g = traceScoreMod((s, _b, _h, _q, _kv) => s.add(biasTable.at(toI32(s).add(N - 1))));
    expect(() => differentiateScoreMod(g)).toThrow(FlexAttnError);
    expect(() => differentiateScoreMod(g)).toThrow(/relBias.*index computed from the score/);
    // A load at a score-dependent index that receives no gradient (read only through a comparison) is fine.
    const compared = traceScoreMod((s, _b, _h, _q, _kv) => where(biasTable.at(toI32(s).add(N - 1)).gt(0), s, s.mul(2)));
    expect(evaluateGradient(differentiateScoreMod(compared), { score: 0.5, b: 0, h: 0, q: 0, kv: 0 }).dScore).toBe(biasTable.data[N - 1] > 0 ? 1 : 2);
  });
});
