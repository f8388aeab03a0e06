import { describe, expect, it } from "vitest";
import {
  FlexAttnError, buffer, evaluate, exp, floorDiv, graphFromJSON, graphToJSON, max, min, mod, printGraph, tanh, toF32,
  toI32, traceMaskMod, traceScoreMod, where, bindBuffers,
} from "@flexattn/ir";

const causal = (_b: any, _h: any, q: any, kv: any) => q.ge(kv);

describe("tracing", () => {
  it("records a mask as a bool graph and evaluates it", () => {
    const g = traceMaskMod(causal);
    expect(g.kind).toBe("mask");
    expect(g.nodes.at(-1)!.dtype).toBe("bool");
    expect(evaluate(g, { b: 0, h: 0, q: 5, kv: 3 })).toBe(true);
    expect(evaluate(g, { b: 0, h: 0, q: 3, kv: 5 })).toBe(false);
  });

  it("hash-conses identical subexpressions into one node (CSE)", () => {
    const g = traceMaskMod((_b, _h, q, kv) => q.sub(kv).le(8).and(q.sub(kv).ge(0)));
    const subs = g.nodes.filter((n) => n.op === "sub");
    expect(subs.length).toBe(1);
  });

  it("commutative operands are canonicalised: a+b and b+a share a node", () => {
    const g = traceMaskMod((_b, _h, q, kv) => q.add(kv).eq(kv.add(q)));
    // (q + kv) == (q + kv) folds to true for integers.
    expect(g.nodes.length).toBe(1);
    expect(g.nodes[0].value).toBe(true);
  });

  it("folds constants and simplifies algebraically", () => {
    const g = traceScoreMod((s, _b, _h, _q, _kv) => s.mul(1).add(0).add(toF32(2).mul(3)));
    expect(printGraph(g)).toContain("(score + 6.0)");
    const m = traceMaskMod((_b, _h, q, kv) => q.ge(kv).and(true).or(false));
    expect(m.nodes.filter((n) => n.op === "and" || n.op === "or").length).toBe(0);
    const n = traceMaskMod((_b, _h, q, _kv) => q.add(3).add(-3).eq(q));
    expect(n.nodes.length).toBe(1);
  });

  it("keys depend on structure, dtypes and shapes, never on buffer data", () => {
    const mk = (data: Int32Array) => {
      const docs = buffer(data, { name: "docs" });
      return traceMaskMod((_b, _h, q, kv) => docs.at(q).eq(docs.at(kv)));
    };
    const a = mk(Int32Array.from([0, 0, 1, 1]));
    const b = mk(Int32Array.from([5, 6, 7, 8]));
    const c = mk(Int32Array.from([0, 0, 1, 1, 2]));
    expect(a.key).toBe(b.key);
    expect(a.key).not.toBe(c.key);
    expect(evaluate(a, { b: 0, h: 0, q: 0, kv: 1 })).toBe(true);
    expect(evaluate(b, { b: 0, h: 0, q: 0, kv: 1 })).toBe(false);
    expect(traceMaskMod(causal).key).not.toBe(traceMaskMod((_b, _h, q, kv) => q.gt(kv)).key);
  });

  it("round-trips through JSON, including infinities", () => {
    const docs = buffer(Float32Array.from([0.5, 1.5]), { name: "slopes" });
    const g = traceScoreMod((s, _b, h, q, kv) => where(kv.gt(q), -Infinity, s.add(docs.at(h).mul(kv.sub(q)))));
    const json = JSON.parse(JSON.stringify(graphToJSON(g)));
    const back = bindBuffers(graphFromJSON(json), [docs.data]);
    expect(back.key).toBe(g.key);
    for (const env of [{ score: 0.25, b: 0, h: 1, q: 3, kv: 1 }, { score: 1, b: 0, h: 0, q: 1, kv: 4 }]) {
      expect(evaluate(back, env)).toBe(evaluate(g, env));
    }
    json.nodes[0].op = "bogus";
    expect(() => graphFromJSON(json)).toThrow(FlexAttnError);
  });

  it("prints a readable expression with shared subexpressions bound once", () => {
    const g = traceMaskMod((_b, _h, q, kv) => q.sub(kv).le(8).and(q.sub(kv).ge(0)));
    const text = printGraph(g);
    expect(text).toMatch(/let v\d+: i32 = \(q - kv\)/);
    expect(text).toContain("mask mod (b, h, q, kv) -> bool");
  });

  it("captures 2-D buffers and buffers in graph order", () => {
    const table = buffer(Int32Array.from([1, 2, 3, 4, 5, 6]), { shape: [2, 3], name: "table" });
    const other = buffer(Int32Array.from([7]), { name: "other" });
    const g = traceMaskMod((b, _h, q, _kv) => table.at(b, q).gt(other.at(0)).or(table.at(b, q).eq(2)));
    expect(g.buffers.map((x) => x.name)).toEqual(["table", "other"]);
    expect(evaluate(g, { b: 0, h: 0, q: 1, kv: 0 })).toBe(true);
    expect(evaluate(g, { b: 0, h: 0, q: 2, kv: 0 })).toBe(false);
    // out-of-range loads read 0
    expect(evaluate(g, { b: 0, h: 0, q: 9, kv: 0 })).toBe(false);
  });
});

describe("bad input gets a clear error", () => {
  it("coercing a traced value to a primitive names the method to use", () => {
    expect(() => traceMaskMod((_b, _h, q, kv) => (q as any) >= kv)).toThrow(/q\.ge\(kv\)/);
    expect(() => traceMaskMod((_b, _h, q, _kv) => ((q as any) > 3 ? true : false))).toThrow(FlexAttnError);
    expect(() => traceMaskMod((_b, _h, q, _kv) => `${q}` === "1")).toThrow(/string/);
    expect(() => traceScoreMod((s, _b, _h, _q, _kv) => (s as any) + 1)).toThrow(/where\(cond, a, b\)/);
  });

  it("wrong arity", () => {
    expect(() => traceMaskMod(((q: any, kv: any) => q.ge(kv)) as any)).toThrow(/takes 2 parameters.*takes 4/);
    expect(() => traceMaskMod(((s: any, b: any, h: any, q: any, kv: any) => s) as any)).toThrow(/5 parameters is a score mod/);
    expect(() => traceScoreMod(causal as any)).toThrow(/4 parameters is a mask mod/);
    expect(() => traceMaskMod(42 as any)).toThrow(/must be a function/);
  });

  it("a mask returning non-bool, a score mod returning bool", () => {
    expect(() => traceMaskMod((_b, _h, q, kv) => q.sub(kv))).toThrow(/must return a boolean.*i32/);
    expect(() => traceMaskMod((_b, _h, _q, _kv) => 1)).toThrow(/must return a boolean/);
    expect(() => traceScoreMod((_s, _b, _h, q, kv) => q.ge(kv))).toThrow(/returned a boolean/);
    expect(() => traceMaskMod((() => {}) as any)).toThrow();
    expect(() => traceMaskMod(((_b: any, _h: any, _q: any, _kv: any) => undefined) as any)).toThrow(/undefined/);
  });

  it("mixing types where it matters", () => {
    expect(() => traceMaskMod((_b, _h, q, kv) => q.ge(kv).add(1).eq(1))).toThrow(/booleans are not numbers/);
    expect(() => traceMaskMod((_b, _h, q, kv) => q.and(kv) as any)).toThrow(/needs booleans/);
    expect(() => traceMaskMod((_b, _h, q, kv) => where(q, kv, q).eq(1))).toThrow(/boolean condition/);
    // i32 meets f32 as f32, like PyTorch: allowed
    const g = traceScoreMod((s, _b, _h, q, kv) => s.add(q.sub(kv)));
    expect(evaluate(g, { score: 0.5, b: 0, h: 0, q: 3, kv: 1 })).toBe(2.5);
  });

  it("buffer indices: float index, out-of-range constant, wrong rank, wrong data", () => {
    const docs = buffer(Int32Array.from([0, 1, 2]), { name: "docs" });
    expect(() => traceMaskMod((_b, _h, q, _kv) => docs.at(toF32(q)).eq(0))).toThrow(/indices must be i32/);
    expect(() => traceMaskMod((_b, _h, _q, _kv) => docs.at(1.5).eq(0))).toThrow(/not an integer/);
    expect(() => traceMaskMod((_b, _h, _q, _kv) => docs.at(3).eq(0))).toThrow(/out of range/);
    expect(() => traceMaskMod((_b, _h, q, kv) => docs.at(q, kv).eq(0))).toThrow(/1 dimension/);
    expect(() => buffer([1, 2, 3] as any)).toThrow(/Int32Array/);
    expect(() => buffer(Int32Array.from([1, 2, 3]), { shape: [2, 2] })).toThrow(/holds 4 elements/);
    expect(() => docs.at(0)).toThrow(/inside a mask or score mod/);
  });

  it("errors thrown by the mod are reported with the mod's name", () => {
    function myMask(_b: any, _h: any, _q: any, _kv: any): any {
      throw new Error("boom");
    }
    expect(() => traceMaskMod(myMask)).toThrow(/mask mod "myMask".*boom/);
  });
});

describe("free functions", () => {
  it("compute what they say", () => {
    const g = traceScoreMod((s, _b, _h, q, kv) =>
      tanh(s).add(exp(0)).add(toF32(floorDiv(q, -2))).add(toF32(mod(kv, -3))).add(toF32(min(q, kv))).add(toF32(max(q, kv))).add(toF32(toI32(s.mul(10)))),
    );
    const s = 0.37;
    const q = 7;
    const kv = 5;
    const expected = Math.fround(
      Math.fround(Math.fround(Math.fround(Math.fround(Math.fround(Math.fround(Math.tanh(s)) + 1) + Math.floor(q / -2)) + -1) + 5) + 7) + 3,
    );
    expect(evaluate(g, { score: s, b: 0, h: 0, q, kv })).toBe(expected);
  });
});
