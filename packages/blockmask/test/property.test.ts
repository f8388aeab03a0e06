import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { FlexAttnError, traceMaskMod } from "@flexattn/ir";
import { createBlockMask } from "@flexattn/blockmask";
import { compareWithBruteForce, type Problem } from "./brute.js";
import { boolExprArb, makeBuffers, toMask, type BoolExpr } from "./expr.js";

// Random index expressions leave their buffers by design here; checkBufferIndices' once-per-range
// report of that would flood the log. Other warnings pass through.
const consoleWarn = console.warn;
console.warn = (...args: unknown[]) => {
  if (!String(args[0]).includes("may be indexed with values")) consoleWarn(...args);
};

const problemArb: fc.Arbitrary<Problem> = fc.record({
  B: fc.integer({ min: 1, max: 2 }),
  H: fc.integer({ min: 1, max: 2 }),
  qLen: fc.integer({ min: 1, max: 60 }),
  kvLen: fc.integer({ min: 1, max: 60 }),
  blockSize: fc.tuple(fc.constantFrom(1, 2, 3, 4, 5, 8, 16, 32), fc.constantFrom(1, 2, 3, 4, 5, 8, 16, 32)),
});
const dataArb = fc.tuple(
  fc.integer({ min: 1, max: 12 }).chain((n) => fc.array(fc.integer({ min: -3, max: 5 }), { minLength: n, maxLength: n })),
  fc.integer({ min: 1, max: 40 }).chain((n) => fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 2 * n, maxLength: 2 * n })),
);

/** Exactness for one random expression; a provably out-of-range load is an accepted, checked error. */
function exact(expr: BoolExpr, p: Problem, [flat, rows]: [number[], number[]], stats: { run: number; refused: number }): void {
  const mask = toMask(expr, makeBuffers(Int32Array.from(flat), Int32Array.from(rows)));
  stats.run++;
  let m: ReturnType<typeof createBlockMask>;
  try {
    m = createBlockMask(mask, p);
  } catch (e) {
    if (e instanceof FlexAttnError && /always outside its range/.test(e.message)) {
      stats.refused++;
      return;
    }
    throw e;
  }
  expect(compareWithBruteForce(m, traceMaskMod(mask), p)).toEqual([]);
}

describe("property: random masks are classified exactly (a full or empty tile is never wrong)", () => {
  it("integer expressions with buffer loads (300 cases)", () => {
    const stats = { run: 0, refused: 0 };
    fc.assert(fc.property(boolExprArb(false), problemArb, dataArb, (e, p, d) => exact(e, p, d, stats)), { numRuns: 300, seed: 20240611 });
    expect(stats.refused).toBeLessThan(stats.run / 4);
  });

  it("with f32 arithmetic, math functions, infinities and NaN (200 cases)", () => {
    const stats = { run: 0, refused: 0 };
    fc.assert(fc.property(boolExprArb(true), problemArb, dataArb, (e, p, d) => exact(e, p, d, stats)), { numRuns: 200, seed: 7 });
  });

  it("fresh random seeds (100 cases)", () => {
    const stats = { run: 0, refused: 0 };
    fc.assert(fc.property(boolExprArb(true), problemArb, dataArb, (e, p, d) => exact(e, p, d, stats)), { numRuns: 100 });
  });
});
