import { describe, expect, it } from "vitest";
import { FlexAttnError, buffer, exp, toF32, traceMaskMod } from "@flexattn/ir";
import type { MaskMod } from "@flexattn/ir";
import { causal, documentCausal, noop, prefixLM, randomDocumentIds, slidingWindow } from "@flexattn/masks";
import { BlockMask, TO_DENSE_LIMIT, createBlockMask } from "@flexattn/blockmask";
import { bruteForceStates, checkQTables, compareWithBruteForce, decodeKvTables, type Problem } from "./brute.js";

const TABLES = [
  "kvNumBlocks", "kvIndices", "fullKvNumBlocks", "fullKvIndices", "qNumBlocks", "qIndices", "fullQNumBlocks", "fullQIndices",
] as const;

function expectSameTables(a: BlockMask, b: BlockMask): void {
  expect([a.Bm, a.Hm, a.numQBlocks, a.numKvBlocks]).toEqual([b.Bm, b.Hm, b.numQBlocks, b.numKvBlocks]);
  for (const t of TABLES) expect(Array.from(a[t]), t).toEqual(Array.from(b[t]));
}

describe("createBlockMask: fields and broadcasting", () => {
  it("has PyTorch's fields, sizes and a 128 × 128 default block", () => {
    const m = createBlockMask(causal(), { qLen: 1000, kvLen: 700 });
    expect(m.blockSize).toEqual([128, 128]);
    expect(m.shape).toEqual({ B: 1, H: 1, qLen: 1000, kvLen: 700 });
    expect([m.Bm, m.Hm, m.numQBlocks, m.numKvBlocks]).toEqual([1, 1, 8, 6]);
    expect(m.kvNumBlocks).toBeInstanceOf(Int32Array);
    expect(m.kvIndices.length).toBe(8 * 6);
    expect(m.qIndices.length).toBe(6 * 8);
    expect(m.qNumBlocks.length).toBe(6);
    expect(m.maskGraph?.kind).toBe("mask");
    expect(m.offsets).toEqual({ b: 0, h: 0, q: 0, kv: 0 });
  });

  it("broadcasts b and h when the mask ignores them", () => {
    const m = createBlockMask(causal(), { B: 4, H: 8, qLen: 512, kvLen: 512 });
    expect([m.Bm, m.Hm]).toEqual([1, 1]);
    expect(m.shape.B).toBe(4);
    expect(m.sparsity()).toBeCloseTo(createBlockMask(causal(), { qLen: 512, kvLen: 512 }).sparsity(), 12);
  });

  it("noop needs no mask graph; a constant-false mask is all empty", () => {
    const m = createBlockMask(noop(), { qLen: 300, kvLen: 200, blockSize: 64 });
    expect(m.maskGraph).toBeUndefined();
    expect(m.blockCounts()).toEqual({ full: 20, partial: 0, empty: 0, total: 20 });
    const none = createBlockMask((_b, _h, _q, _kv) => false, { qLen: 300, kvLen: 200, blockSize: 64 });
    expect(none.sparsity()).toBe(100);
    expect(none.maskGraph).toBeDefined();
  });

  it("accepts a traced ModGraph and a [q, kv] block size", () => {
    const g = traceMaskMod(slidingWindow(40));
    const p: Problem = { B: 1, H: 1, qLen: 200, kvLen: 150, blockSize: [32, 16] };
    const m = createBlockMask(g, p);
    expect(m.maskGraph).toBe(g);
    expect(compareWithBruteForce(m, g, p)).toEqual([]);
  });

  it("handles a single element and one-block grids", () => {
    for (const [qLen, kvLen, bs] of [[1, 1, 128], [5, 3, 128], [128, 128, 128], [3, 700, 1]] as const) {
      const p: Problem = { B: 1, H: 1, qLen, kvLen, blockSize: [bs, bs] };
      expect(compareWithBruteForce(createBlockMask(causal(), p), traceMaskMod(causal()), p)).toEqual([]);
    }
  });
});

describe("createBlockMask: input errors", () => {
  const bad: [string, () => unknown, RegExp][] = [
    ["qLen 0", () => createBlockMask(causal(), { qLen: 0, kvLen: 10 }), /qLen must be a positive integer/],
    ["negative kvLen", () => createBlockMask(causal(), { qLen: 10, kvLen: -4 }), /kvLen must be a positive integer/],
    ["fractional qLen", () => createBlockMask(causal(), { qLen: 10.5, kvLen: 10 }), /qLen must be a positive integer/],
    ["NaN kvLen", () => createBlockMask(causal(), { qLen: 10, kvLen: NaN }), /kvLen/],
    ["string qLen", () => createBlockMask(causal(), { qLen: "10" as unknown as number, kvLen: 10 }), /got string/],
    ["missing lengths", () => createBlockMask(causal(), {} as never), /qLen must be a positive integer/],
    ["B 0", () => createBlockMask(causal(), { B: 0, qLen: 10, kvLen: 10 }), /B must be a positive integer/],
    ["H 2.5", () => createBlockMask(causal(), { H: 2.5, qLen: 10, kvLen: 10 }), /H must be a positive integer/],
    ["blockSize 0", () => createBlockMask(causal(), { qLen: 10, kvLen: 10, blockSize: 0 }), /blockSize must be a positive integer or \[q, kv\]/],
    ["blockSize [16]", () => createBlockMask(causal(), { qLen: 10, kvLen: 10, blockSize: [16] as never }), /blockSize/],
    ["blockSize [16, 1.5]", () => createBlockMask(causal(), { qLen: 10, kvLen: 10, blockSize: [16, 1.5] }), /blockSize/],
    ["no options", () => createBlockMask(causal(), undefined as never), /pass options/],
    ["not a function", () => createBlockMask(42 as never, { qLen: 10, kvLen: 10 }), /mask must be a mask mod/],
    ["score graph", () => createBlockMask(traceMaskMod(causal()) && ({ kind: "score", nodes: [], buffers: [] } as never), { qLen: 10, kvLen: 10 }), /score-mod graph/],
    ["wrong arity", () => createBlockMask(((q: unknown, kv: unknown) => true) as never, { qLen: 10, kvLen: 10 }), /takes 2 parameters/],
    ["too many blocks", () => createBlockMask(causal(), { qLen: 2 ** 30, kvLen: 2 ** 30, blockSize: 16 }), /too large.*larger blockSize/],
  ];
  for (const [name, fn, message] of bad) {
    it(name, () => {
      expect(fn).toThrow(FlexAttnError);
      expect(fn).toThrow(message);
    });
  }

  it("rejects a buffer index that is provably out of range", () => {
    const docs = buffer(new Int32Array(100), { name: "docs" });
    const shifted: MaskMod = (_b, _h, q, kv) => docs.at(q.add(100)).eq(docs.at(kv));
    expect(() => createBlockMask(shifted, { qLen: 50, kvLen: 50 })).toThrow(/buffer "docs" is indexed with values in \[100, 149\]/);
    // Partly out of range is allowed (those loads read 0).
    expect(() => createBlockMask(documentCausal(new Int32Array(100)), { qLen: 120, kvLen: 120 })).not.toThrow();
  });
});

describe("sparsity, density, counts", () => {
  it("causal at 1024 with 128 blocks: 36 of 64 blocks computed", () => {
    const m = createBlockMask(causal(), { qLen: 1024, kvLen: 1024 });
    expect(m.blockCounts()).toEqual({ full: 28, partial: 8, empty: 28, total: 64 });
    expect(m.sparsity()).toBeCloseTo(43.75, 12);
    expect(m.density()).toBeCloseTo(36 / 64, 12);
  });

  it("counts over the logical B × H, with or without broadcast tables", () => {
    const prefixes = Int32Array.from([0, 300]);
    const m = createBlockMask(prefixLM(prefixes), { B: 2, H: 3, qLen: 512, kvLen: 512 });
    expect([m.Bm, m.Hm]).toEqual([2, 1]);
    const c = m.blockCounts();
    expect(c.total).toBe(2 * 3 * 16);
    // b = 0: causal (6 full + 4 partial); b = 1: rows also see kv < 300 (blocks 0, 1 full, block 2 partial).
    const want = bruteForceStates(traceMaskMod(prefixLM(prefixes)), { B: 2, H: 3, qLen: 512, kvLen: 512, blockSize: [128, 128] });
    const full = want.states.filter((s) => s === 2).length * 3;
    const partial = want.states.filter((s) => s === 1).length * 3;
    expect(c).toEqual({ full, partial, empty: c.total - full - partial, total: c.total });
    expect(m.sparsity()).toBeCloseTo(100 * (1 - (full + partial) / c.total), 12);
  });

  it("document-causal sparsity matches a brute-force count", () => {
    const docs = randomDocumentIds(4096, 8, 3);
    const p: Problem = { B: 1, H: 1, qLen: 4096, kvLen: 4096, blockSize: [128, 128] };
    const want = bruteForceStates(traceMaskMod(documentCausal(docs)), p).states;
    const computed = want.filter((s) => s !== 0).length;
    expect(createBlockMask(documentCausal(docs), p).sparsity()).toBeCloseTo(100 * (1 - computed / want.length), 12);
  });
});

describe("toDense and toString", () => {
  it("toDense gives 0 / 1 / 2 per block", () => {
    const m = createBlockMask(causal(), { qLen: 300, kvLen: 500, blockSize: 64 });
    const d = m.toDense();
    expect(d.shape).toEqual([1, 1, 5, 8]);
    expect(Array.from(d.data.subarray(0, 8))).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(d.data.subarray(32, 40))).toEqual([2, 2, 2, 2, 1, 0, 0, 0]);
    expect(d.data).toEqual(decodeKvTables(m));
  });

  it("toDense refuses large masks with a clear error", () => {
    const m = createBlockMask(causal(), { qLen: 131072, kvLen: 131072, blockSize: 16 });
    expect(8192 * 8192).toBeGreaterThan(TO_DENSE_LIMIT);
    expect(() => m.toDense()).toThrow(/toDense\(\): 1×1×8192×8192 = 67108864 blocks is over the limit of 16777216/);
  });

  it("draws blocks with a header and legend", () => {
    const m = createBlockMask(causal(), { qLen: 300, kvLen: 500, blockSize: 64 });
    expect(m.toString()).toBe([
      "BlockMask(B=1, H=1, qLen=300, kvLen=500, blockSize=[64, 64], blocks=5×8, sparsity=62.50%)",
      "█ full  ▒ partial  ░ empty  ▓ mixed (downsampled)",
      "b=0, h=0:",
      "▒▒░░░░░░░░░░░░░░",
      "██▒▒░░░░░░░░░░░░",
      "████▒▒░░░░░░░░░░",
      "██████▒▒░░░░░░░░",
      "████████▒▒░░░░░░",
    ].join("\n"));
  });

  it("downsamples large grids", () => {
    const m = createBlockMask(causal(), { B: 2, qLen: 131072, kvLen: 131072 });
    const lines = m.toString({ grid: [8, 8] }).split("\n");
    expect(lines[0]).toContain("blocks=1024×1024");
    expect(lines[1]).toBe("(one cell = 128×128 blocks)");
    expect(lines[3]).toBe("b=*, h=0:");
    expect(lines.slice(4)).toEqual([
      "▓▓░░░░░░░░░░░░░░",
      "██▓▓░░░░░░░░░░░░",
      "████▓▓░░░░░░░░░░",
      "██████▓▓░░░░░░░░",
      "████████▓▓░░░░░░",
      "██████████▓▓░░░░",
      "████████████▓▓░░",
      "██████████████▓▓",
    ]);
  });

  it("draws at most `limit` (b, h) entries", () => {
    const m = createBlockMask(prefixLM(Int32Array.from([1, 2, 3, 4, 5, 6])), { B: 6, qLen: 64, kvLen: 64, blockSize: 16 });
    const s = m.toString({ limit: 2 });
    expect(s.match(/^b=\d, h=\*?\d?:$/gm)).toHaveLength(2);
    expect(s).toContain("… 4 more (b, h) entries");
  });
});

describe("fromKvBlocks", () => {
  it("round-trips a built mask and recomputes the q tables", () => {
    const docs = randomDocumentIds(700, 5, 2);
    const m = createBlockMask(andMasks2(docs), { B: 2, H: 2, qLen: 700, kvLen: 650, blockSize: [64, 32] });
    const r = BlockMask.fromKvBlocks({
      kvNumBlocks: m.kvNumBlocks, kvIndices: m.kvIndices, fullKvNumBlocks: m.fullKvNumBlocks, fullKvIndices: m.fullKvIndices,
      blockSize: m.blockSize, qLen: 700, kvLen: 650, Bm: m.Bm, Hm: m.Hm, B: 2, H: 2, maskGraph: m.maskGraph,
    });
    expectSameTables(r, m);
    expect(r.shape).toEqual(m.shape);
    expect(r.maskGraph).toBe(m.maskGraph);
    expect(r.sparsity()).toBe(m.sparsity());
  });

  it("defaults lengths to whole blocks, sorts indices, zeroes padding, fills empty full tables", () => {
    const r = BlockMask.fromKvBlocks({
      kvNumBlocks: Int32Array.from([2, 1]),
      kvIndices: Int32Array.from([2, 0, 7, 1, 9, 9]),
      blockSize: 16,
    });
    expect(r.shape).toEqual({ B: 1, H: 1, qLen: 32, kvLen: 48 });
    expect(Array.from(r.kvIndices)).toEqual([0, 2, 0, 1, 0, 0]);
    expect(Array.from(r.fullKvNumBlocks)).toEqual([0, 0]);
    expect(Array.from(r.qNumBlocks)).toEqual([1, 1, 1]);
    expect(Array.from(r.qIndices)).toEqual([0, 0, 1, 0, 0, 0]);
    expect(r.maskGraph).toBeUndefined();
    checkQTables(r, decodeKvTables(r));
  });

  it("takes a mask mod and traces it", () => {
    const r = BlockMask.fromKvBlocks({ kvNumBlocks: Int32Array.from([1]), kvIndices: Int32Array.from([0]), maskGraph: causal() });
    expect(r.maskGraph?.kind).toBe("mask");
  });

  const one = { kvNumBlocks: Int32Array.from([1, 1]), kvIndices: Int32Array.from([0, 0, 1, 0]) };
  const bad: [string, () => unknown, RegExp][] = [
    ["count above KVB", () => BlockMask.fromKvBlocks({ ...one, kvNumBlocks: Int32Array.from([3, 1]) }), /row 0 has 3 blocks, outside \[0, 2\]/],
    ["index out of range", () => BlockMask.fromKvBlocks({ ...one, kvIndices: Int32Array.from([5, 0, 1, 0]) }), /lists block 5, outside \[0, 2\)/],
    ["duplicate", () => BlockMask.fromKvBlocks({ ...one, kvNumBlocks: Int32Array.from([2, 1]), kvIndices: Int32Array.from([1, 1, 1, 0]) }), /lists block 1 twice/],
    ["partial and full overlap", () => BlockMask.fromKvBlocks({ ...one, fullKvNumBlocks: Int32Array.from([0, 1]), fullKvIndices: Int32Array.from([0, 0, 1, 0]) }), /both partial and full/],
    ["half of the full pair", () => BlockMask.fromKvBlocks({ ...one, fullKvNumBlocks: Int32Array.from([0, 0]) }), /pass both fullKvNumBlocks and fullKvIndices/],
    ["ragged indices", () => BlockMask.fromKvBlocks({ ...one, kvIndices: new Int32Array(3) }), /do not form/],
    ["lengths disagree with the tables", () => BlockMask.fromKvBlocks({ ...one, blockSize: 16, qLen: 100 }), /need 7×2 blocks, the tables have 2×2/],
    ["plain arrays", () => BlockMask.fromKvBlocks({ ...one, kvIndices: [0, 0, 1, 0] as never }), /kvIndices must be an Int32Array/],
    ["Bm not 1 or B", () => BlockMask.fromKvBlocks({ ...one, Bm: 2, B: 3 }), /Bm = 2 must be 1 \(broadcast\) or B = 3/],
    ["bad mask graph", () => BlockMask.fromKvBlocks({ ...one, maskGraph: { kind: "score" } as never }), /maskGraph must be a mask ModGraph/],
  ];
  for (const [name, fn, message] of bad) {
    it(`rejects: ${name}`, () => {
      expect(fn).toThrow(FlexAttnError);
      expect(fn).toThrow(message);
    });
  }
});

function andMasks2(docs: Int32Array): MaskMod {
  const d = buffer(docs, { name: "docs" });
  return (b, h, q, kv) => q.ge(kv).and(d.at(q).eq(d.at(kv))).or(kv.lt(b.add(h).mul(40)));
}

/** Every full tile all true and every empty tile all false for the new size (partial allowed anywhere). */
function expectSound(m: BlockMask, mask: MaskMod): void {
  const p: Problem = { ...m.shape, blockSize: [m.blockSize[0], m.blockSize[1]] };
  const want = bruteForceStates(traceMaskMod(mask), p).states;
  const got = decodeKvTables(m);
  checkQTables(m, got);
  for (let i = 0; i < got.length; i++) if (got[i] !== 1) expect(got[i], `block ${i}`).toBe(want[i]);
}

describe("adjust", () => {
  it("crops to the upper-left corner when shrinking", () => {
    const m = createBlockMask(causal(), { qLen: 1000, kvLen: 1000 });
    const a = m.adjust(500, 700);
    expect(a.shape).toMatchObject({ qLen: 500, kvLen: 700 });
    expect([a.numQBlocks, a.numKvBlocks]).toEqual([4, 6]);
    expectSound(a, causal());
    expect(a.maskGraph).toBe(m.maskGraph);
    const docs = randomDocumentIds(900, 7, 1);
    const d = createBlockMask(documentCausal(docs), { qLen: 900, kvLen: 900, blockSize: 32 });
    expectSound(d.adjust(333, 801), documentCausal(docs));
    expectSameTables(d.adjust(900, 900), d);
  });

  it("rebuilds from the mask graph when growing", () => {
    const m = createBlockMask(slidingWindow(100), { H: 2, qLen: 300, kvLen: 300, blockSize: 64 });
    expectSameTables(m.adjust(1000, 700), createBlockMask(slidingWindow(100), { H: 2, qLen: 1000, kvLen: 700, blockSize: 64 }));
    const n = createBlockMask(noop(), { qLen: 100, kvLen: 100 });
    expect(n.adjust(1000, 1000).blockCounts()).toEqual({ full: 64, partial: 0, empty: 0, total: 64 });
    // Growing within the last block still changes it: rebuilt, not reused.
    const c = createBlockMask(causal(), { qLen: 64, kvLen: 100, blockSize: 128 });
    expect(c.adjust(128, 100).fullKvNumBlocks[0]).toBe(0);
  });

  it("refuses to grow without a mask graph", () => {
    const r = BlockMask.fromKvBlocks({ kvNumBlocks: Int32Array.from([1]), kvIndices: Int32Array.from([0]), qLen: 100, kvLen: 100 });
    expect(() => r.adjust(200, 100)).toThrow(/cannot grow from 100×100 to 200×100 without a mask graph/);
    expect(r.adjust(50, 50).kvNumBlocks[0]).toBe(1);
    expect(() => r.adjust(0, 50)).toThrow(/qLen must be a positive integer/);
  });
});

describe("slice", () => {
  const prefixes = Int32Array.from([0, 130, 300]);
  const p = { B: 3, H: 2, qLen: 500, kvLen: 450, blockSize: 64 } as const;

  it("selects one batch and head, keeping the graph and recording offsets", () => {
    const m = createBlockMask(prefixLM(prefixes), p);
    const s = m.slice({ b: 1, h: 1 });
    expect(s.shape).toEqual({ B: 1, H: 1, qLen: 500, kvLen: 450 });
    expect([s.Bm, s.Hm]).toEqual([1, 1]);
    expect(s.offsets).toEqual({ b: 1, h: 1, q: 0, kv: 0 });
    expect(s.maskGraph).toBe(m.maskGraph);
    const rows = m.numQBlocks * m.numKvBlocks;
    expect(Array.from(s.kvIndices)).toEqual(Array.from(m.kvIndices.subarray(rows, 2 * rows)));
    checkQTables(s, decodeKvTables(s));
  });

  it("selects query-block rows", () => {
    const m = createBlockMask(prefixLM(prefixes), p);
    const s = m.slice({ qBlocks: [2, 8] });
    expect(s.shape).toEqual({ B: 3, H: 2, qLen: 500 - 128, kvLen: 450 });
    expect(s.numQBlocks).toBe(6);
    expect(s.offsets.q).toBe(128);
    const KVB = m.numKvBlocks;
    for (let bm = 0; bm < 3; bm++) {
      for (let r = 0; r < 6; r++) {
        expect(s.kvNumBlocks[bm * 6 + r]).toBe(m.kvNumBlocks[bm * 8 + r + 2]);
        expect(Array.from(s.fullKvIndices.subarray((bm * 6 + r) * KVB, (bm * 6 + r + 1) * KVB)))
          .toEqual(Array.from(m.fullKvIndices.subarray((bm * 8 + r + 2) * KVB, (bm * 8 + r + 3) * KVB)));
      }
    }
    checkQTables(s, decodeKvTables(s));
  });

  it("slices of broadcast masks, and rebuilds of slices, respect the offsets", () => {
    const m = createBlockMask(causal(), { B: 4, qLen: 512, kvLen: 512, blockSize: 64 });
    const s = m.slice({ b: 3, qBlocks: [4, 6] });
    expect(s.shape).toEqual({ B: 1, H: 1, qLen: 128, kvLen: 512 });
    // Growing kv rebuilds rows 4..5 of the causal mask, not rows 0..1.
    const grown = s.adjust(128, 1024);
    const whole = createBlockMask(causal(), { qLen: 512, kvLen: 1024, blockSize: 64 }).slice({ qBlocks: [4, 6] });
    expectSameTables(grown, whole);
  });

  it("rejects bad indices", () => {
    const m = createBlockMask(causal(), { B: 2, qLen: 256, kvLen: 256 });
    expect(() => m.slice({ b: 2 })).toThrow(/b = 2 is outside \[0, 2\)/);
    expect(() => m.slice({ h: 1 })).toThrow(/h = 1 is outside \[0, 1\)/);
    expect(() => m.slice({ qBlocks: [1, 1] })).toThrow(/qBlocks \[1, 1\) must be a non-empty range/);
    expect(() => m.slice({ qBlocks: [0, 3] })).toThrow(/within \[0, 2\)/);
  });
});

describe("interval analysis stays sound with infinities (IR fix: Inf - Inf, 0 · Inf, Inf / Inf are NaN)", () => {
  const masks: [string, MaskMod][] = [
    ["exp(q) - exp(kv) <= Inf", (_b, _h, q, kv) => exp(toF32(q)).sub(exp(toF32(kv))).le(Infinity)],
    ["exp(q) + -exp(kv) >= -Inf", (_b, _h, q, kv) => exp(toF32(q)).add(exp(toF32(kv)).neg()).ge(-Infinity)],
    ["exp(q - 100) · (exp(kv) - exp(kv)) == 0", (_b, _h, q, kv) => exp(toF32(q.sub(100))).mul(exp(toF32(kv)).sub(exp(toF32(kv)))).eq(0)],
    ["exp(q) / exp(kv) <= Inf", (_b, _h, q, kv) => exp(toF32(q)).div(exp(toF32(kv))).le(Infinity)],
  ];
  for (const [name, mask] of masks) {
    it(name, () => {
      const p: Problem = { B: 1, H: 1, qLen: 200, kvLen: 200, blockSize: [16, 16] };
      expect(compareWithBruteForce(createBlockMask(mask, p), traceMaskMod(mask), p)).toEqual([]);
    });
  }
});

describe("scale: never a dense qLen × kvLen mask", () => {
  it("builds a 128k × 128k causal mask (a dense mask would be 16 GiB)", () => {
    global.gc?.();
    const before = process.memoryUsage();
    const m = createBlockMask(causal(), { qLen: 131072, kvLen: 131072 });
    const after = process.memoryUsage();
    expect([m.numQBlocks, m.numKvBlocks]).toEqual([1024, 1024]);
    for (const qb of [0, 1, 500, 1023]) {
      expect(m.fullKvNumBlocks[qb]).toBe(qb);
      expect(m.kvNumBlocks[qb]).toBe(1);
      expect(m.kvIndices[qb * 1024]).toBe(qb);
    }
    expect(m.sparsity()).toBeCloseTo(100 * (1 - (1024 * 1025) / 2 / 1024 ** 2), 10);
    // Eight [1024 × 1024] or [1024] Int32 tables: 16 MiB; allow generous slack for the runtime.
    const grown = after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers;
    expect(grown).toBeLessThan(256 * 2 ** 20);
  });

  it("builds a 1M-query × 4k-key document mask", () => {
    const docs = randomDocumentIds(2 ** 20, 300, 8);
    const kvDocs = docs.subarray(0, 4096);
    const d = buffer(docs, { name: "docs" });
    const kd = buffer(Int32Array.from(kvDocs), { name: "kvDocs" });
    const m = createBlockMask((_b, _h, q, kv) => d.at(q).eq(kd.at(kv)), { qLen: 2 ** 20, kvLen: 4096 });
    expect([m.numQBlocks, m.numKvBlocks]).toEqual([8192, 32]);
    expect(m.density()).toBeGreaterThan(0);
    expect(m.density()).toBeLessThan(0.01);
  });
});
