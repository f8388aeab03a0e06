import { describe, expect, it } from "vitest";
import { type ScoreMod, abs, buffer, diagonalEntry, differentiateScoreMod, evaluate, min, toF32, traceScoreMod } from "@flexattn/ir";

const N = 24;
const H = 3;
const siteOffset = (mod: ScoreMod) => differentiateScoreMod(traceScoreMod(mod)).buffers[0].sites[0].offset;

const relative = buffer(new Float32Array(2 * N - 1), { name: "rel" });
const perHead = buffer(new Float32Array(H * (2 * N - 1)), { shape: [H, 2 * N - 1], name: "relH" });
const buckets = buffer(new Float32Array(H * 8), { shape: [H, 8], name: "buckets" });
const slopes = buffer(new Float32Array(H), { name: "slopes" });
const steps = buffer(new Int32Array(H).fill(1), { name: "steps" });

describe("diagonalEntry", () => {
  const diagonal: [string, ScoreMod][] = [
    ["a [2N - 1] table at q - kv", (s, _b, _h, q, kv) => s.add(relative.at(q.sub(kv).add(N - 1)))],
    ["a [2N - 1] table at kv - q", (s, _b, _h, q, kv) => s.add(relative.at(kv.sub(q).add(N - 1)))],
    ["a per-head [H, 2N - 1] table", (s, _b, h, q, kv) => s.add(perHead.at(h, q.sub(kv).add(N - 1)))],
    ["a table at 2(q - kv) + h", (s, _b, h, q, kv) => s.add(relative.at(q.mul(2).sub(kv.mul(2)).add(h).add(N - 1)))],
  ];
  for (const [name, mod] of diagonal) {
    it(`finds the entry of ${name}, equal to the offset wherever the load is in range`, () => {
      const offset = siteOffset(mod);
      const entry = diagonalEntry(offset);
      expect(entry).toBeDefined();
      let inRange = 0;
      for (let q = 0; q < N; q++) {
        for (let kv = 0; kv < N; kv++) {
          for (let h = 0; h < H; h++) {
            const env = { score: 0, b: 0, h, q, kv };
            const o = evaluate(offset, env) as number;
            if (o < 0) continue;
            inRange++;
            expect(evaluate(entry!, env)).toBe(o);
            // The same diagonal, one step along it, reads the same entry.
            if (q + 1 < N && kv + 1 < N) expect(evaluate(entry!, { ...env, q: q + 1, kv: kv + 1 })).toBe(o);
          }
        }
      }
      expect(inRange).toBeGreaterThan(N * N);
    });
  }

  const other: [string, ScoreMod][] = [
    ["a bucketed distance (diagonals share entries)", (s, _b, h, q, kv) => s.add(buckets.at(h, min(abs(q.sub(kv)).floorDiv(4), 7)))],
    ["a table at q + kv", (s, _b, _h, q, kv) => s.add(relative.at(q.add(kv)))],
    ["a table at q", (s, _b, _h, q, _kv) => s.add(relative.at(q))],
    ["a per-head slope (no q or kv)", (s, _b, h, q, kv) => s.add(slopes.at(h).mul(toF32(q.sub(kv))))],
    ["a table at (q - kv) times a factor read from a buffer (it could be 0)", (s, _b, h, q, kv) => s.add(relative.at(q.sub(kv).mul(steps.at(h)).add(N - 1)))],
  ];
  for (const [name, mod] of other) {
    it(`refuses ${name}`, () => {
      expect(diagonalEntry(siteOffset(mod))).toBeUndefined();
    });
  }
});
