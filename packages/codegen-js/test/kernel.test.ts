import { describe, expect, it } from "vitest";
import { buffer, log, traceMaskMod, traceScoreMod, where } from "@flexattn/ir";
import { causal, documentCausal, randomDocumentIds } from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import {
  type BlockMaskTables, type ConformanceCase, type ConformanceInstance, artifactFromJSON, artifactToJSON, checkInstance,
  defaultStrides, formatReport, instantiateCase, makeSpec, mulberry32, randomNormal, referenceAttention, resolveProblem,
  runConformance,
} from "@flexattn/template";
import { generateJs, jsConfigCandidates, loadJsKernel, loadedJsKernels, runJsKernel } from "../src/index.js";
import { runInstance } from "./run-instance.js";

const tol = { out: 1e-5, lse: 1e-5 };

function specFor(inst: ConformanceInstance, options?: Record<string, number>) {
  const p = inst.problem;
  const sparseBlock = inst.blockMask.blockSize as [number, number];
  return makeSpec({
    mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype,
    returnLse: p.returnLse, sparseBlock, config: { ...jsConfigCandidates(sparseBlock)[0], ...(options && { options }) },
  });
}

const base = { batch: 1, qHeads: 2, kvHeads: 2, qLen: 64, kvLen: 64, qkHeadDim: 32, vHeadDim: 32, dtype: "f32", returnLse: true } as const;

describe("odd sizes and unrolling", () => {
  const cases: ConformanceCase[] = [
    { name: "dims-17-19", problem: { ...base, qkHeadDim: 17, vHeadDim: 19, qLen: 45, kvLen: 53 }, mask: () => causal(), blockSize: [16, 16], tags: [] },
    { name: "odd-blocks", problem: { ...base, qLen: 47, kvLen: 61 }, mask: () => causal(), blockSize: [24, 40], tags: [] },
    { name: "block-7x9", problem: { ...base, qLen: 30, kvLen: 31, qkHeadDim: 21, vHeadDim: 23 }, mask: () => causal(), blockSize: [7, 9], tags: [] },
    { name: "one-row", problem: { ...base, qLen: 1, kvLen: 33 }, blockSize: [16, 16], tags: [] },
    { name: "one-col", problem: { ...base, qLen: 33, kvLen: 1 }, mask: () => causal(), blockSize: [16, 16], tags: [] },
  ];
  for (const options of [undefined, { dotUnroll: 1, accUnroll: 1, accCols: 1, qkCols: 1 }, { dotUnroll: 4, accUnroll: 8, accCols: 2, qkCols: 4 }, { dotUnroll: 8, accUnroll: 4, accCols: 4, qkCols: 2 }]) {
    it(`matches the reference with options ${JSON.stringify(options ?? "default")}`, async () => {
      const report = await runConformance({ name: "js", run: (inst) => runInstance(inst, options), tolerance: { f32: tol } }, { cases });
      if (report.failed) console.log(formatReport(report));
      expect(report.failed).toBe(0);
    });
  }

  it("rejects bad options", () => {
    const inst = instantiateCase({ name: "x", problem: base, blockSize: [16, 16], tags: [] }, 1);
    expect(() => generateJs(specFor(inst, { dotUnroll: 3 }))).toThrow(/dotUnroll.*1, 2, 4 or 8/);
    expect(() => generateJs(specFor(inst, { accCols: 3 }))).toThrow(/accCols.*1, 2 or 4/);
    expect(() => generateJs(specFor(inst, { qkCols: 8 }))).toThrow(/qkCols.*1, 2 or 4/);
  });
});

/** Like checkInstance, but infinities must match exactly (checkInstance cannot compare them). */
function compareIeee(inst: ConformanceInstance): string {
  const ref = referenceAttention(inst);
  const out = inst.out as Float32Array;
  let maxRef = 0;
  for (const x of ref.out) if (Number.isFinite(x)) maxRef = Math.max(maxRef, Math.abs(x));
  const same = (g: number, r: number, scale: number) =>
    (Number.isNaN(g) && Number.isNaN(r)) || g === r || (Number.isFinite(g) && Number.isFinite(r) && Math.abs(g - r) <= 1e-5 * scale);
  for (let i = 0; i < ref.out.length; i++) if (!same(out[i], ref.out[i], Math.max(1, maxRef))) return `out[${i}] = ${out[i]}, reference ${ref.out[i]}`;
  for (let i = 0; i < ref.lse.length; i++) if (!same(inst.lse[i], ref.lse[i], Math.max(1, Math.abs(ref.lse[i])))) return `lse[${i}] = ${inst.lse[i]}, reference ${ref.lse[i]}`;
  return "ok";
}

describe("IEEE propagation of NaN and Inf inputs", () => {
  const poisonCases: [string, (inst: ConformanceInstance) => void][] = [
    ["NaN in a q row", (i) => { (i.q.data as Float32Array)[5 * 32 + 3] = NaN; }],
    ["NaN in a k row", (i) => { (i.k.data as Float32Array)[20 * 32 + 1] = NaN; }],
    ["NaN in a v row", (i) => { (i.v.data as Float32Array)[33 * 32 + 7] = NaN; }],
    ["+Inf in q", (i) => { (i.q.data as Float32Array)[40 * 32] = Infinity; }],
    ["-Inf in k", (i) => { (i.k.data as Float32Array)[10 * 32 + 2] = -Infinity; }],
    ["Inf in v", (i) => { (i.v.data as Float32Array)[50 * 32 + 2] = Infinity; }],
    ["Inf and NaN mixed in one row", (i) => { const q = i.q.data as Float32Array; q[60 * 32] = Infinity; q[60 * 32 + 1] = NaN; q[61 * 32 + 4] = -Infinity; }],
    ["NaN everywhere in q", (i) => { (i.q.data as Float32Array).fill(NaN); }],
  ];
  const mkCase = (score?: ConformanceCase["score"]): ConformanceCase => ({
    name: "ieee", problem: { ...base, qLen: 70, kvLen: 70 }, mask: () => causal(), score, blockSize: [16, 16], tags: [],
  });
  for (const [name, poison] of poisonCases) {
    for (const withScore of [false, true]) {
      it(`${name}${withScore ? " (with a score mod)" : ""} propagates as the reference does`, () => {
        const inst = instantiateCase(mkCase(withScore ? () => (s, _b, _h, _q, _kv) => s.mul(2) : undefined), 7);
        poison(inst);
        runJsKernel(generateJs(specFor(inst)), inst);
        expect(compareIeee(inst)).toBe("ok");
      });
    }
  }

  it("a score mod that yields NaN (log of a negative score) poisons exactly those rows", () => {
    const inst = instantiateCase(mkCase(() => (s, _b, _h, q, _kv) => where(q.lt(10), log(s.mul(0).sub(1)), s)), 3);
    runJsKernel(generateJs(specFor(inst)), inst);
    expect(compareIeee(inst)).toBe("ok");
    const out = inst.out as Float32Array;
    expect(Number.isNaN(out[0])).toBe(true);
    expect(Number.isFinite(out[10 * 32])).toBe(true);
  });
});


describe("outputs", () => {
  it("writes every output element (empty blocks, fully masked rows, ragged tiles)", () => {
    const inst = instantiateCase({
      name: "sentinel", problem: { ...base, qLen: 75, kvLen: 41 },
      mask: () => (_b, _h, q, kv) => q.ge(30).and(kv.le(q.sub(30))), blockSize: [16, 16], tags: [],
    }, 11);
    (inst.out as Float32Array).fill(12345);
    inst.lse.fill(12345);
    runJsKernel(generateJs(specFor(inst)), inst);
    expect((inst.out as Float32Array).includes(12345)).toBe(false);
    expect(inst.lse.includes(12345)).toBe(false);
    expect(checkInstance(inst, tol).message).toBe("ok");
    // Rows 0..29 see nothing: out 0, lse -inf.
    expect(inst.lse[0]).toBe(-Infinity);
    expect((inst.out as Float32Array)[0]).toBe(0);
  });

  it("leaves the LSE buffer alone when the kernel does not return it", () => {
    const inst = instantiateCase({ name: "nolse", problem: { ...base, returnLse: false }, blockSize: [16, 16], tags: [] }, 2);
    inst.lse.fill(7);
    runJsKernel(generateJs(specFor(inst)), inst);
    expect(inst.lse.every((x) => x === 7)).toBe(true);
    expect(checkInstance(inst, tol).pass).toBe(true);
  });

  it("honours arbitrary strides (padded rows, heads interleaved)", () => {
    const p = resolveProblem({ ...base, qHeads: 4, kvHeads: 2, qLen: 50, kvLen: 60 });
    const rand = mulberry32(5);
    const pad = 8;
    // q: BSHD with padding after every token; k: BHSD with padded rows; v: BHSD.
    const qStr = [p.qLen * (p.qHeads * p.qkHeadDim + pad), p.qkHeadDim, p.qHeads * p.qkHeadDim + pad, 1];
    const kStr = [p.kvHeads * p.kvLen * (p.qkHeadDim + pad), p.kvLen * (p.qkHeadDim + pad), p.qkHeadDim + pad, 1];
    const vStr = [p.kvHeads * p.kvLen * p.vHeadDim, p.kvLen * p.vHeadDim, p.vHeadDim, 1];
    const oStr = [p.qLen * p.qHeads * p.vHeadDim, p.vHeadDim, p.qHeads * p.vHeadDim, 1];
    const q = { data: randomNormal(qStr[0] * p.batch, rand), shape: [1, 4, 50, 32], dtype: "f32" as const, strides: qStr };
    const k = { data: randomNormal(kStr[0] * p.batch, rand), shape: [1, 2, 60, 32], dtype: "f32" as const, strides: kStr };
    const v = { data: randomNormal(vStr[0] * p.batch, rand), shape: [1, 2, 60, 32], dtype: "f32" as const, strides: vStr };
    const mask = traceMaskMod(causal());
    const blockMask = createBlockMask(causal(), { B: 1, H: 4, qLen: 50, kvLen: 60, blockSize: [16, 16] }) as unknown as BlockMaskTables;
    const out = new Float32Array(oStr[0]);
    const lse = new Float32Array(4 * 50);
    const spec = makeSpec({ mask, score: null, qkHeadDim: 32, vHeadDim: 32, dtype: "f32", returnLse: true, sparseBlock: [16, 16], config: jsConfigCandidates([16, 16])[0] });
    runJsKernel(generateJs(spec), { problem: p, strides: { q: qStr, k: kStr, v: vStr, out: oStr }, q, k, v, mask, score: null, blockMask, out, lse });
    const ref = referenceAttention({ problem: p, q, k, v, mask, score: null, blockMask });
    let err = 0;
    for (let h = 0; h < 4; h++) for (let i = 0; i < 50; i++) for (let d = 0; d < 32; d++) {
      err = Math.max(err, Math.abs(out[h * oStr[1] + i * oStr[2] + d] - ref.out[(h * 50 + i) * 32 + d]));
    }
    expect(err).toBeLessThan(1e-5);
  });
});

describe("artifacts", () => {
  it("new buffer data reuses the kernel, and the source holds no buffer data", () => {
    const n = 96;
    const mk = (seed: number) => {
      const ids = randomDocumentIds(n, 4, seed);
      const bias = Float32Array.from({ length: n }, (_, i) => 0.123456 + i * 1e-3 + seed);
      const b = buffer(bias, { name: "bias" });
      return {
        mask: traceMaskMod(documentCausal(ids)),
        score: traceScoreMod((s, _b, _h, _q, kv) => s.add(b.at(kv))),
        blockMask: createBlockMask(documentCausal(ids), { B: 1, H: 2, qLen: n, kvLen: n, blockSize: [32, 32] }) as unknown as BlockMaskTables,
      };
    };
    const a = mk(1);
    const b = mk(2);
    expect(a.mask.key).toBe(b.mask.key);
    expect(a.score.key).toBe(b.score.key);
    const p = resolveProblem({ ...base, qLen: n, kvLen: n });
    const spec = makeSpec({ mask: a.mask, score: a.score, qkHeadDim: 32, vHeadDim: 32, dtype: "f32", returnLse: true, sparseBlock: [32, 32], config: jsConfigCandidates([32, 32])[0] });
    const art = generateJs(spec);
    expect(art.source).not.toMatch(/0\.123/);
    const fn = loadJsKernel(art);
    const loaded = loadedJsKernels();
    for (const mods of [a, b]) {
      const rand = mulberry32(9);
      const t = (len: number) => ({ data: randomNormal(2 * len * 32, rand), shape: [1, 2, len, 32], dtype: "f32" as const });
      const inv = { problem: p, strides: defaultStrides(p), q: t(n), k: t(n), v: t(n), ...mods, out: new Float32Array(2 * n * 32), lse: new Float32Array(2 * n) };
      runJsKernel(art, inv);
      const ref = referenceAttention(inv);
      let err = 0;
      for (let x = 0; x < ref.out.length; x++) err = Math.max(err, Math.abs(inv.out[x] - ref.out[x]));
      expect(err).toBeLessThan(1e-5);
    }
    expect(loadJsKernel(art)).toBe(fn);
    expect(loadedJsKernels()).toBe(loaded);
  });

  it("round-trips through JSON and runs from the parsed artifact", () => {
    const inst = instantiateCase({ name: "json", problem: base, mask: () => causal(), blockSize: [16, 16], tags: [] }, 4);
    const art = artifactFromJSON(artifactToJSON(generateJs(specFor(inst))));
    runJsKernel(art, inst);
    expect(checkInstance(inst, tol).message).toBe("ok");
    expect(art.source).toContain("function flexattn_fwd(");
    // A standalone module body: loadable with new Function, no imports.
    expect(art.source).not.toMatch(/\bimport\b|\brequire\(/);
  });

  it("refuses an invocation the kernel was not compiled for", () => {
    const inst = instantiateCase({ name: "mismatch", problem: base, mask: () => causal(), blockSize: [16, 16], tags: [] }, 4);
    const art = generateJs(specFor(inst));
    expect(() => runJsKernel(art, { ...inst, mask: null })).toThrow(/mask mod/);
    expect(() => runJsKernel(art, { ...inst, problem: { ...inst.problem, dtype: "bf16" } })).toThrow(/compiled for f32/);
    expect(() => runJsKernel({ ...art, backend: "wgsl" }, inst)).toThrow(/not js/);
  });
});
