import { describe, expect, it } from "vitest";
import { constantReciprocal } from "@flexattn/ir";

describe("constantReciprocal", () => {
  it("gives the f32 reciprocal a renderer may multiply by, and nothing where there is none", () => {
    expect(constantReciprocal(4)).toBe(0.25);
    expect(constantReciprocal(-0.5)).toBe(-2);
    expect(constantReciprocal(30)).toBe(Math.fround(1 / 30));
    // x · (1/30) stays within an ulp of x / 30 in f32.
    for (const x of [1, 7.25, -123.5, 3e-3, 6.5e4]) {
      const q = Math.fround(x / 30);
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(q))) - 23);
      expect(Math.abs(Math.fround(x * constantReciprocal(30)!) - q)).toBeLessThanOrEqual(ulp);
    }
    for (const c of [0, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, 2 ** -149]) {
      expect(constantReciprocal(c), String(c)).toBeUndefined();
    }
  });
});
