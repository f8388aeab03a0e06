import { describe, expect, it } from "vitest";
import { FlexAttnError, traceMaskMod, traceScoreMod, evaluate } from "@flexattn/ir";
import type { MaskMod } from "@flexattn/ir";
import { andMasks, causal, composeScoreMods, notMask, orMasks, relativePosition, slidingWindow, softcap } from "@flexattn/masks";
import { maskMismatches, scoreError, type Shape } from "./brute.js";

const s: Shape = { B: 2, H: 2, qLen: 11, kvLen: 8 };
const even: MaskMod = (_b, h, _q, kv) => kv.add(h).mod(2).eq(0);
const never: MaskMod = (_b, _h, _q, _kv) => false;
const always: MaskMod = (_b, _h, _q, _kv) => true;

describe("mask combinators", () => {
  it("andMasks / orMasks / notMask match boolean logic", () => {
    const c = (q: number, kv: number) => kv <= q;
    const e = (h: number, kv: number) => (kv + h) % 2 === 0;
    expect(maskMismatches(andMasks(causal(), even), s, (_b, h, q, kv) => c(q, kv) && e(h, kv))).toEqual([]);
    expect(maskMismatches(orMasks(causal(), even), s, (_b, h, q, kv) => c(q, kv) || e(h, kv))).toEqual([]);
    expect(maskMismatches(notMask(causal()), s, (_b, _h, q, kv) => !c(q, kv))).toEqual([]);
    expect(maskMismatches(notMask(orMasks(causal(), even)), s, (_b, h, q, kv) => !(c(q, kv) || e(h, kv)))).toEqual([]);
    expect(maskMismatches(andMasks(causal(), slidingWindow(2, { causal: false }), even), s,
      (_b, h, q, kv) => c(q, kv) && Math.abs(q - kv) <= 2 && e(h, kv))).toEqual([]);
  });

  it("empty combinations are the identities: and() all-true, or() all-false", () => {
    expect(maskMismatches(andMasks(), s, () => true)).toEqual([]);
    expect(maskMismatches(orMasks(), s, () => false)).toEqual([]);
    expect(maskMismatches(notMask(andMasks()), s, () => false)).toEqual([]);
  });

  it("handles masks that return plain booleans", () => {
    expect(maskMismatches(andMasks(always, causal()), s, (_b, _h, q, kv) => kv <= q)).toEqual([]);
    expect(maskMismatches(andMasks(causal(), never), s, () => false)).toEqual([]);
    expect(maskMismatches(orMasks(never, causal()), s, (_b, _h, q, kv) => kv <= q)).toEqual([]);
    expect(maskMismatches(orMasks(causal(), always), s, () => true)).toEqual([]);
    expect(maskMismatches(notMask(never), s, () => true)).toEqual([]);
  });

  it("returned closures declare four parameters, so tracing accepts them", () => {
    for (const m of [andMasks(), orMasks(causal()), notMask(causal())]) expect(m.length).toBe(4);
    expect(composeScoreMods().length).toBe(5);
  });

  it("checks the inner mods' source for JS control flow on traced values", () => {
    expect(() => andMasks(causal(), (_b, _h, q, kv) => q === kv)).toThrow(/andMasks\(\): mask #1.*compares the traced parameter q with ===/);
    expect(() => orMasks((_b, _h, q, kv) => (q.ge(kv) ? true : false))).toThrow(/orMasks\(\): mask #0.*condition of \?:/);
  });

  it("constant masks combine without dropping traced values", () => {
    for (const m of [andMasks(causal(), never), andMasks(never, causal()), orMasks(causal(), always), orMasks(always, causal())]) {
      expect(() => traceMaskMod(m as MaskMod)).not.toThrow();
    }
  });

  it("rejects masks of the wrong arity or result type", () => {
    const three = ((q: unknown, kv: unknown) => true) as unknown as MaskMod;
    expect(() => andMasks(causal(), three)).toThrow(/andMasks\(\): mask #1 "three" takes 2 parameters, but a mask mod takes 4: \(b, h, q, kv\) \(it declares \(q, kv\)\)/);
    expect(() => orMasks(5 as unknown as MaskMod)).toThrow(FlexAttnError);
    expect(() => notMask(softcap(3) as unknown as MaskMod)).toThrow(/takes 5 parameters, but a mask mod takes 4.*\(score, _b, _h, _q, _kv\).*5 parameters is a score mod/);
    const numeric: MaskMod = (_b, _h, q, _kv) => q.add(1);
    expect(() => traceMaskMod(andMasks(causal(), numeric))).toThrow(/mask #1 returned an i32 value, not a boolean/);
  });
});

describe("composeScoreMods", () => {
  it("applies mods in order, each seeing the previous score", () => {
    const a = composeScoreMods(relativePosition(), softcap(5));
    const b = composeScoreMods(softcap(5), relativePosition());
    expect(scoreError(a, s, (x, _b, _h, q, kv) => 5 * Math.tanh((x + q - kv) / 5))).toBeLessThan(1e-6);
    expect(scoreError(b, s, (x, _b, _h, q, kv) => 5 * Math.tanh(x / 5) + q - kv)).toBeLessThan(1e-6);
  });
  it("with no mods is the identity", () => {
    expect(scoreError(composeScoreMods(), s, (x) => Math.fround(x))).toBe(0);
  });
  it("lifts a number result so the next mod can use methods", () => {
    const g = traceScoreMod(composeScoreMods((_s, _b, _h, _q, _kv) => 2, softcap(30)));
    expect(evaluate(g, { score: 0, b: 0, h: 0, q: 0, kv: 0 })).toBeCloseTo(30 * Math.tanh(2 / 30), 6);
  });
  it("rejects wrong arity and boolean results", () => {
    expect(() => composeScoreMods(causal() as never)).toThrow(/score mod #0 \(anonymous\) takes 4 parameters, but a score mod takes 5.*\(it declares \(_b, _h, q, kv\)\).*4 parameters is a mask mod/);
    expect(() => traceScoreMod(composeScoreMods((sc, _b, _h, q, kv) => q.ge(kv)))).toThrow(/returned a boolean/);
  });
});
