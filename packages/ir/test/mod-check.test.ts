/** Mods that would silently record the wrong graph are refused at trace time, with what to write instead. */
import { describe, expect, it } from "vitest";
import {
  DEFAULT_CACHE_CAPACITY, FlexAttnError, LruCache, MAX_TRACED_NODES, type MaskMod, type ScoreMod, type Value, buffer, controlFlowInSource,
  declaredParameters, evaluate, traceMaskMod, traceScoreMod, where,
} from "@flexattn/ir";

const CONTROL_FLOW = /always truthy.*where\(cond, a, b\)/;

describe("JS control flow on traced values is refused", () => {
  it("if (comparison) return true; return false", () => {
    const m = (_b: Value, _h: Value, q: Value, kv: Value) => {
      if (q.ge(kv)) return true;
      return false;
    };
    expect(() => traceMaskMod(m)).toThrow(FlexAttnError);
    expect(() => traceMaskMod(m)).toThrow(CONTROL_FLOW);
  });

  it("if on a comparison kept in a variable (no source pattern: the tracer sees it dropped)", () => {
    const m = (_b: Value, _h: Value, q: Value, kv: Value) => {
      const later = kv.le(q);
      let r: Value | boolean = false;
      if (later) r = true;
      return r;
    };
    expect(() => traceMaskMod(m)).toThrow(/computed \(kv <= q\) but its result does not use it/);
  });

  it("cond ? a : b in a score mod", () => {
    const s: ScoreMod = (score, _b, _h, q, kv) => (q.ge(kv) ? score : score.mul(2));
    expect(() => traceScoreMod(s)).toThrow(CONTROL_FLOW);
    const c = (score: Value, _b: Value, _h: Value, q: Value, kv: Value) => {
      const later = q.lt(kv);
      return later ? score : score.mul(2);
    };
    expect(() => traceScoreMod(c)).toThrow(/computed \(q < kv\)/);
  });

  it("&& and || with a comparison on the left, and ! on one", () => {
    expect(() => traceMaskMod((_b, _h, q, kv) => q.ge(kv) && kv.ge(0))).toThrow(CONTROL_FLOW);
    // || short-circuits on the always-truthy left side: nothing is dropped, the source shows it.
    expect(() => traceMaskMod((_b, _h, q, kv) => q.ge(kv) || kv.lt(4))).toThrow(/left operand of \|\|/);
    expect(() => traceMaskMod((_b, _h, q, kv) => !q.ge(kv))).toThrow(/negates a traced comparison/);
  });

  it("a loop on a traced comparison: for (;cond;) from the source, any other one stopped by the operation cap", () => {
    const forLoop = (_b: Value, _h: Value, q: Value, kv: Value) => {
      let k = kv;
      for (; k.gt(q); k = k.sub(1)) {}
      return k.ge(0);
    };
    expect(() => traceMaskMod(forLoop)).toThrow(/"for \(; k\.gt\(q\);" loops on a traced comparison with for/);
    // for (;;) and while (true) with nothing traced inside would hang before any cap: refused from the source.
    expect(() => traceMaskMod((_b, _h, q, kv) => {
      for (;;) {}
      // biome-ignore lint/correctness/noUnreachable: the point of the test
      return q.ge(kv);
    })).toThrow(/"for\(;;\)" loops without a condition/);
    // The condition hidden in a variable: no source pattern, so the loop runs until the cap stops it.
    const hidden = (_b: Value, _h: Value, q: Value, kv: Value) => {
      let k = kv;
      let more: Value | boolean = k.gt(q);
      while (more) {
        k = k.sub(1);
        more = k.gt(q);
      }
      return k.ge(0);
    };
    expect(() => traceMaskMod(hidden)).toThrow(new RegExp(`over ${MAX_TRACED_NODES} operations.*never ends`));
  });

  it("Math.random() or a clock in a mod is refused: it would run once and become a constant", () => {
    expect(() => traceScoreMod((s, _b, _h, _q, _kv) => s.add(Math.random()))).toThrow(/calls Math\.random\(\), which runs once while the mod is traced/);
    expect(() => traceMaskMod((_b, _h, q, kv) => (Date.now() > 0 ? q.ge(kv) : q.le(kv)))).toThrow(/calls Date\.now\(\)/);
  });

  it("an async mod and Math.* on a traced value say what to write instead", () => {
    const asyncMod = async (_b: Value, _h: Value, q: Value, kv: Value) => q.ge(kv);
    expect(() => traceMaskMod(asyncMod as never)).toThrow(/returned a Promise: a mod must be synchronous/);
    expect(() => traceScoreMod((s, _b, _h, _q, _kv) => Math.tanh(s as never) as never)).toThrow(/Math\.\* does not trace either: use tanh/);
  });

  it("=== / !== between traced values", () => {
    expect(() => traceMaskMod((_b, _h, q, kv) => q === kv)).toThrow(/compares the traced parameter q with ===/);
    expect(() => traceMaskMod((_b, _h, q, kv) => q !== kv)).toThrow(/with !==/);
    const docs = buffer(Int32Array.from([0, 0, 1, 1]), { name: "docs" });
    // Neither side is a parameter: the loads are computed and the result is a JS constant.
    expect(() => traceMaskMod((_b, _h, q, kv) => docs.at(q) === docs.at(kv))).toThrow(/computed docs\[q\].*result does not use it/);
  });

  it("legitimate mods pass: where, and/or/not, JS constants, JS logic on non-traced values", () => {
    const w = 4;
    const useWindow = true;
    const ok: MaskMod[] = [
      (_b, _h, q, kv) => q.ge(kv),
      (_b, _h, _q, _kv) => true,
      (_b, _h, q, kv) => (useWindow && w > 0 ? q.sub(kv).le(w).and(q.ge(kv)) : q.ge(kv)),
      (_b, _h, q, kv) => where(q.ge(kv), kv.ge(0), kv.lt(3)).or(q.eq(kv).not()),
      (_b, _h, q, kv) => {
        // Comments and strings mentioning q === kv or if (q.ge(kv)) are not code.
        const note = "if (q.ge(kv)) return true; q === kv";
        return note.length > 0 ? q.ne(kv) : q.eq(kv);
      },
    ];
    for (const m of ok) expect(() => traceMaskMod(m)).not.toThrow();
    const g = traceMaskMod(ok[2]);
    expect(evaluate(g, { b: 0, h: 0, q: 5, kv: 3 })).toBe(true);
    expect(evaluate(g, { b: 0, h: 0, q: 9, kv: 3 })).toBe(false);
    expect(controlFlowInSource((_b: Value, _h: Value, q: Value, kv: Value) => q.ge(kv) ?? kv)).toBeNull();
    expect(controlFlowInSource((_b: Value, _h: Value, q: Value, kv: Value) => (typeof q === "object" ? q.ge(kv) : kv.ge(0)))).toBeNull();
  });
});

describe("mods are checked by their declared parameters", () => {
  it("reads defaults and rest parameters that fn.length misses", () => {
    expect(declaredParameters((s: Value, b: Value, h: Value, q: Value, kv: Value = q) => s.add(kv).add(b).add(h))?.map((p) => p.name)).toEqual(["s", "b", "h", "q", "kv"]);
    expect(declaredParameters((...args: Value[]) => args[0])).toEqual([{ name: "args", rest: true, hasDefault: false }]);
    expect(declaredParameters(function named(a: number, { x }: { x: number } = { x: 1 }) { return a + x; })?.length).toBe(2);
    expect(declaredParameters(Math.max)).toBeNull();
  });

  it("a default parameter does not turn a score mod into a mask mod", () => {
    // fn.length is 4 here: a check by arity alone called this a mask mod.
    const s = (score: Value, _b: Value, _h: Value, q: Value, kv: Value = q) => score.add(kv);
    expect(s.length).toBe(4);
    const g = traceScoreMod(s as ScoreMod);
    expect(evaluate(g, { score: 1, b: 0, h: 0, q: 2, kv: 3 })).toBe(4);
  });

  it("(s) => ... and rest parameters get clear errors", () => {
    expect(() => traceScoreMod(((s: Value) => s) as unknown as ScoreMod)).toThrow(
      /score mod \(anonymous\) takes 1 parameter, but a score mod takes 5: \(score, b, h, q, kv\) \(it declares \(s\)\).*\(score, _b, _h, _q, _kv\)/,
    );
    expect(() => traceScoreMod(((...a: Value[]) => a[0]) as unknown as ScoreMod)).toThrow(/declares a rest parameter \(\.\.\.a\).*exactly 5/);
    expect(() => traceMaskMod(((...a: Value[]) => a[2].ge(a[3])) as unknown as MaskMod)).toThrow(/rest parameter.*exactly 4/);
  });
});

describe("LruCache", () => {
  it("evicts the least recently used entry beyond its capacity", () => {
    const c = new LruCache<string, number>(2);
    c.set("a", 1).set("b", 2);
    expect(c.get("a")).toBe(1);
    c.set("c", 3);
    expect(c.get("b")).toBeUndefined();
    expect(c.get("a")).toBe(1);
    expect(c.get("c")).toBe(3);
    expect(c.size).toBe(2);
    expect(new LruCache().capacity).toBe(DEFAULT_CACHE_CAPACITY);
    expect(() => new LruCache(0)).toThrow(RangeError);
  });
});
