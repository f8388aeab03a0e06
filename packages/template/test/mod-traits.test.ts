import { describe, expect, it } from "vitest";
import { abs, buffer, min, tanh, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { modTraits } from "../src/index.js";

describe("modTraits", () => {
  const rel = buffer(new Float32Array(127), { name: "rel" });
  const buckets = buffer(new Float32Array(32), { shape: [4, 8], name: "buckets" });
  const slopes = buffer(new Float32Array(4), { name: "slopes" });
  const docs = buffer(new Int32Array(64), { name: "docs" });
  const causal = traceMaskMod((_b, _h, q, kv) => q.ge(kv));

  it("a score mod gathers per element when a load's index moves with both q and kv", () => {
    const gathers = (score: Parameters<typeof traceScoreMod>[0]) => modTraits({ mask: causal, score: traceScoreMod(score) }).gathersPerElement;
    expect(gathers((s, _b, _h, q, kv) => s.add(rel.at(q.sub(kv).add(63))))).toBe(true);
    expect(gathers((s, _b, h, q, kv) => s.add(buckets.at(h, min(abs(q.sub(kv)).floorDiv(8), 7))))).toBe(true);
    // A per-head slope times the distance loads once per head; a table by query row alone once per row.
    expect(gathers((s, _b, h, q, kv) => s.add(slopes.at(h).mul(q.sub(kv))))).toBe(false);
    expect(gathers((s, _b, _h, q, _kv) => s.add(rel.at(q)))).toBe(false);
    expect(gathers((s, _b, _h, _q, _kv) => tanh(s.div(30)).mul(30))).toBe(false);
  });

  it("reads the mask's loads and the score's transcendentals separately", () => {
    const doc = traceMaskMod((_b, _h, q, kv) => docs.at(q).eq(docs.at(kv)));
    expect(modTraits({ mask: doc, score: null })).toEqual({ transcendental: false, dataDependent: true, gathersPerElement: false });
    const soft = traceScoreMod((s, _b, _h, _q, _kv) => tanh(s.div(30)).mul(30));
    expect(modTraits({ mask: null, score: soft })).toEqual({ transcendental: true, dataDependent: false, gathersPerElement: false });
  });
});
