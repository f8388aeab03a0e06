import { describe, expect, it } from "vitest";
import { buffer, traceMaskMod, traceScoreMod, printGraph, evaluate, compileJsMod, IntervalAnalyzer, tanh, where } from "@flexattn/ir";

describe("smoke", () => {
  it("traces", () => {
    const docs = buffer(Int32Array.from([0, 0, 1, 1]), { name: "docs" });
    const g = traceMaskMod((b, h, q, kv) => q.ge(kv).and(docs.at(q).eq(docs.at(kv))));
    console.log(printGraph(g));
    expect(evaluate(g, { b: 0, h: 0, q: 1, kv: 0 })).toBe(true);
    expect(evaluate(g, { b: 0, h: 0, q: 2, kv: 0 })).toBe(false);
    const fn = compileJsMod(g) as any;
    expect(fn(0, 0, 3, 2)).toBe(true);
    const s = traceScoreMod((s, b, h, q, kv) => tanh(s.div(30)).mul(30).add(q.sub(kv)));
    console.log(printGraph(s));
    const a = new IntervalAnalyzer(g);
    expect(a.truth({ b: { lo: 0, hi: 0 }, h: { lo: 0, hi: 0 }, q: { lo: 0, hi: 1 }, kv: { lo: 2, hi: 3 } })).toBe("false");
    expect(() => traceMaskMod((b, h, q, kv) => (q as any) >= kv)).toThrow(/q.ge\(kv\)/);
  });
});
