import { describe, expect, it } from "vitest";
import { FlexAttnError, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import {
  alibi, alibiSlopes, causal, chunked, chunkedCausal, dilatedSlidingWindow, document, documentCausal, noop, prefixLM,
  relativePosition, slidingWindow, softcap, randomDocumentIds, LIBRARY_MASKS, LIBRARY_SCORE_MODS,
} from "@flexattn/masks";
import { maskMismatches, scoreError, type Shape } from "./brute.js";

const SHAPES: Shape[] = [
  { B: 1, H: 1, qLen: 9, kvLen: 9 },
  { B: 2, H: 3, qLen: 7, kvLen: 13 },
  { B: 3, H: 2, qLen: 17, kvLen: 5 },
  { B: 1, H: 1, qLen: 1, kvLen: 1 },
];

describe("library masks match a brute-force definition", () => {
  for (const s of SHAPES) {
    const tag = `B=${s.B} H=${s.H} q=${s.qLen} kv=${s.kvLen}`;
    const n = Math.max(s.qLen, s.kvLen);
    const docs = Int32Array.from({ length: n }, (_, i) => Math.floor((i * i) / 11) % 4 === 3 ? 7 : Math.floor(i / 4));
    const sortedDocs = randomDocumentIds(n, Math.min(3, n), 5);
    const prefixes = Int32Array.from({ length: s.B }, (_, b) => (b * 5) % 9);

    it(`noop, causal (${tag})`, () => {
      expect(maskMismatches(noop(), s, () => true)).toEqual([]);
      expect(maskMismatches(causal(), s, (_b, _h, q, kv) => q >= kv)).toEqual([]);
    });
    it(`slidingWindow (${tag})`, () => {
      for (const w of [0, 1, 3, 20]) {
        expect(maskMismatches(slidingWindow(w), s, (_b, _h, q, kv) => q - kv >= 0 && q - kv <= w)).toEqual([]);
        expect(maskMismatches(slidingWindow(w, { causal: true }), s, (_b, _h, q, kv) => kv >= q - w && kv <= q)).toEqual([]);
        expect(maskMismatches(slidingWindow(w, { causal: false }), s, (_b, _h, q, kv) => Math.abs(q - kv) <= w)).toEqual([]);
      }
    });
    it(`prefixLM (${tag})`, () => {
      for (const p of [0, 2, 6, 100]) {
        expect(maskMismatches(prefixLM(p), s, (_b, _h, q, kv) => kv < p || kv <= q)).toEqual([]);
      }
      expect(maskMismatches(prefixLM(prefixes), s, (b, _h, q, kv) => kv < prefixes[b] || kv <= q)).toEqual([]);
    });
    it(`document, documentCausal (${tag})`, () => {
      for (const d of [docs, sortedDocs]) {
        expect(maskMismatches(document(d), s, (_b, _h, q, kv) => d[q] === d[kv])).toEqual([]);
        expect(maskMismatches(documentCausal(d), s, (_b, _h, q, kv) => d[q] === d[kv] && kv <= q)).toEqual([]);
      }
    });
    it(`dilatedSlidingWindow (${tag})`, () => {
      for (const [w, d] of [[4, 2], [6, 3], [0, 5], [10, 1]]) {
        const want = (_b: number, _h: number, q: number, kv: number) => q - kv >= 0 && q - kv <= w && (q - kv) % d === 0;
        expect(maskMismatches(dilatedSlidingWindow(w, d), s, want)).toEqual([]);
      }
    });
    it(`chunked, chunkedCausal (${tag})`, () => {
      for (const size of [1, 3, 4, 50]) {
        const same = (q: number, kv: number) => Math.floor(q / size) === Math.floor(kv / size);
        expect(maskMismatches(chunked(size), s, (_b, _h, q, kv) => same(q, kv))).toEqual([]);
        expect(maskMismatches(chunkedCausal(size), s, (_b, _h, q, kv) => same(q, kv) && kv <= q)).toEqual([]);
      }
    });
    it(`score mods (${tag})`, () => {
      const H = s.H;
      const slope = (h: number) => Math.pow(2, (-8 * (h + 1)) / H);
      expect(scoreError(alibi(H), s, (x, _b, h, q, kv) => x + slope(h) * (kv - q))).toBeLessThan(1e-6);
      expect(scoreError(softcap(30), s, (x) => 30 * Math.tanh(x / 30))).toBeLessThan(1e-6);
      expect(scoreError(softcap(2.5), s, (x) => 2.5 * Math.tanh(x / 2.5))).toBeLessThan(1e-6);
      expect(scoreError(relativePosition(), s, (x, _b, _h, q, kv) => x + (q - kv))).toBeLessThan(1e-6);
    });
  }

  it("ALiBi slopes follow 2^(-8(h+1)/H) and are captured as a buffer, not constants", () => {
    expect(Array.from(alibiSlopes(8))).toEqual([0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625]);
    const g = traceScoreMod(alibi(4));
    expect(g.buffers).toHaveLength(1);
    expect(g.buffers[0].dtype).toBe("f32");
    // The same structure for another head count keys the same compiled kernel shape class.
    expect(traceScoreMod(alibi(4)).key).toBe(g.key);
  });

  it("documents and per-batch prefixes are kernel arguments (buffers), not constants", () => {
    const d1 = traceMaskMod(documentCausal(Int32Array.from([0, 0, 1, 1])));
    const d2 = traceMaskMod(documentCausal(Int32Array.from([0, 1, 1, 1])));
    expect(d1.key).toBe(d2.key);
    expect(d1.buffers.map((b) => b.name)).toEqual(["docIds"]);
    expect(traceMaskMod(prefixLM(Int32Array.from([3, 4]))).buffers.map((b) => b.name)).toEqual(["prefix"]);
  });
});

describe("argument errors", () => {
  const cases: [string, () => unknown, RegExp][] = [
    ["negative window", () => slidingWindow(-1), /slidingWindow\(\): w must be a non-negative integer/],
    ["fractional window", () => slidingWindow(1.5), /w must be a non-negative integer/],
    ["window as string", () => slidingWindow("4" as unknown as number), /got string 4/],
    ["prefix as plain array", () => prefixLM([1, 2] as unknown as Int32Array), /Int32Array/],
    ["negative prefix", () => prefixLM(-3), /non-negative/],
    ["negative per-batch prefix", () => prefixLM(Int32Array.from([1, -2])), /prefix\[1\] = -2/],
    ["empty per-batch prefix", () => prefixLM(new Int32Array(0)), /must not be empty/],
    ["docs as plain array", () => document([0, 1] as unknown as Int32Array), /document\(\): docIds must be an Int32Array/],
    ["docs as Float32Array", () => documentCausal(new Float32Array(3) as unknown as Int32Array), /Float32Array/],
    ["zero chunk", () => chunked(0), /positive integer/],
    ["zero chunk, causal", () => chunkedCausal(0), /positive integer/],
    ["zero dilation", () => dilatedSlidingWindow(4, 0), /d must be a positive integer/],
    ["zero heads", () => alibi(0), /numHeads must be a positive integer/],
    ["zero cap", () => softcap(0), /positive finite number/],
    ["NaN cap", () => softcap(NaN), /positive finite number/],
    ["too many docs", () => randomDocumentIds(3, 4, 0), /do not fit/],
  ];
  for (const [name, fn, message] of cases) {
    it(name, () => {
      expect(fn).toThrow(FlexAttnError);
      expect(fn).toThrow(message);
    });
  }
});

describe("randomDocumentIds", () => {
  it("is deterministic, sorted, covers every document and varies with the seed", () => {
    for (const [n, docs] of [[1, 1], [10, 10], [1000, 7], [131072, 64]]) {
      const a = randomDocumentIds(n, docs, 42);
      expect(a).toHaveLength(n);
      expect(randomDocumentIds(n, docs, 42)).toEqual(a);
      let steps = 0;
      for (let i = 1; i < n; i++) if (a[i] - a[i - 1] !== 0 && a[i] - a[i - 1] !== 1) steps++;
      expect(steps).toBe(0);
      expect(a[0]).toBe(0);
      expect(a[n - 1]).toBe(docs - 1);
    }
    expect(randomDocumentIds(1000, 7, 1)).not.toEqual(randomDocumentIds(1000, 7, 2));
  });
  it("gives documents of different lengths", () => {
    const ids = randomDocumentIds(65536, 64, 3);
    const lengths = new Map<number, number>();
    for (const d of ids) lengths.set(d, (lengths.get(d) ?? 0) + 1);
    expect(new Set(lengths.values()).size).toBeGreaterThan(10);
  });
});

describe("registry", () => {
  const shape = { B: 2, H: 4, qLen: 40, kvLen: 56 };
  it("lists every mask and score mod with unique names and traceable examples", () => {
    const names = [...LIBRARY_MASKS, ...LIBRARY_SCORE_MODS].map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    for (const e of LIBRARY_MASKS) expect(traceMaskMod(e.create(shape)).kind).toBe("mask");
    for (const e of LIBRARY_SCORE_MODS) expect(traceScoreMod(e.create(shape)).kind).toBe("score");
    expect(names).toEqual(expect.arrayContaining([
      "noop", "causal", "slidingWindow", "prefixLM", "document", "documentCausal", "dilatedSlidingWindow",
      "chunked", "chunkedCausal", "alibi", "softcap", "relativePosition",
    ]));
  });
  it("example arguments fit the shape", () => {
    const docs = LIBRARY_MASKS.find((e) => e.name === "documentCausal")!.exampleArgs(shape)[0] as Int32Array;
    expect(docs).toHaveLength(56);
    const prefixes = LIBRARY_MASKS.find((e) => e.name === "prefixLM.perBatch")!.exampleArgs(shape)[0] as Int32Array;
    expect(prefixes).toHaveLength(2);
  });
});
