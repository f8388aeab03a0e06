import { describe, expect, it } from "vitest";
import { median, medianWallMs } from "../src/index.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("median", () => {
  it("takes the middle element, the upper one of an even count, without reordering its input", () => {
    const xs = [5, 1, 4, 2];
    expect(median(xs)).toBe(4);
    expect(median([3, 9, 1])).toBe(3);
    expect(xs).toEqual([5, 1, 4, 2]);
  });
});

describe("medianWallMs", () => {
  it("calls once to warm up, then reports the middle of the timed calls", async () => {
    const delays = [300, 0, 400, 80]; // the warm-up's 300 ms is not timed
    let calls = 0;
    const ms = await medianWallMs(3, () => sleep(delays[calls++]));
    expect(calls).toBe(4);
    expect(ms).toBeGreaterThanOrEqual(75);
    expect(ms).toBeLessThan(300);
  });
});
