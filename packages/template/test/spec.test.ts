import { describe, expect, it } from "vitest";
import { buffer, traceMaskMod, traceScoreMod, tanh } from "@flexattn/ir";
import {
  DEFAULT_CONFIG, bf16BitsToF32, emitTemplate, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, fitTile, kernelAbi,
  launchGrid, layoutStrides, makeSpec, resolveProblem, specHash, templateSteps, validateConfig, type TemplateEmitter,
} from "@flexattn/template";

const base = { batch: 2, qHeads: 8, kvHeads: 2, qLen: 100, kvLen: 200, qkHeadDim: 64, vHeadDim: 32, dtype: "f32" as const };

describe("problem", () => {
  it("fills defaults", () => {
    const p = resolveProblem(base);
    expect(p.scale).toBeCloseTo(1 / 8);
    expect(p.layout).toBe("bhsd");
    expect(p.returnLse).toBe(false);
  });
  it("rejects bad problems with clear errors", () => {
    expect(() => resolveProblem({ ...base, kvHeads: 3 })).toThrow(/multiple of kvHeads/);
    expect(() => resolveProblem({ ...base, qLen: 0 })).toThrow(/qLen must be a positive integer/);
    expect(() => resolveProblem({ ...base, qkHeadDim: 8 })).toThrow(/outside the supported range/);
    expect(() => resolveProblem({ ...base, vHeadDim: 512 })).toThrow(/outside the supported range/);
    expect(() => resolveProblem({ ...base, dtype: "f64" as any })).toThrow(/dtype/);
    expect(() => resolveProblem({ ...base, scale: NaN })).toThrow(/scale/);
    expect(() => resolveProblem({ ...base, qOffset: -1 })).toThrow(/qOffset/);
  });
  it("computes layout strides", () => {
    expect(layoutStrides("bhsd", 4, 10, 8)).toEqual([320, 80, 8, 1]);
    expect(layoutStrides("bshd", 4, 10, 8)).toEqual([320, 8, 32, 1]);
  });
});

describe("config", () => {
  it("validates tiles against the BlockMask block size", () => {
    expect(() => validateConfig({ ...DEFAULT_CONFIG, blockM: 48 }, [128, 128])).toThrow(/power of two/);
    expect(() => validateConfig({ ...DEFAULT_CONFIG, blockM: 128 }, [64, 128])).toThrow(/must divide/);
    expect(validateConfig(DEFAULT_CONFIG, [128, 128])).toBe(DEFAULT_CONFIG);
    expect(fitTile(64, 96)).toBe(32);
    expect(fitTile(64, 128)).toBe(64);
  });
});

describe("spec, ABI and steps", () => {
  const docs = buffer(Int32Array.from([0, 0, 1]), { name: "docs" });
  const mask = traceMaskMod((_b, _h, q, kv) => q.ge(kv).and(docs.at(q).eq(docs.at(kv))));
  const score = traceScoreMod((s, _b, _h, _q, _kv) => tanh(s.div(30)).mul(30));
  const spec = makeSpec({ mask, score, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16", config: DEFAULT_CONFIG, returnLse: true });

  it("hashes structure, not data; backends differ", () => {
    const docs2 = buffer(Int32Array.from([5, 5, 5]), { name: "docs" });
    const mask2 = traceMaskMod((_b, _h, q, kv) => q.ge(kv).and(docs2.at(q).eq(docs2.at(kv))));
    const spec2 = makeSpec({ mask: mask2, score, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16", config: DEFAULT_CONFIG, returnLse: true });
    expect(specHash(spec, "js")).toBe(specHash(spec2, "js"));
    expect(specHash(spec, "js")).not.toBe(specHash(spec, "wgsl"));
    expect(specHash(spec, "js")).not.toBe(specHash({ ...spec, config: { ...DEFAULT_CONFIG, blockN: 32 } }, "js"));
  });

  it("the ABI lists tensors, block-mask tables, captured buffers, sizes, strides, params in order", () => {
    const names = kernelAbi(spec).map((a) => a.name);
    expect(names.slice(0, 9)).toEqual(["q", "k", "v", "out", "lse", "kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices"]);
    expect(names[9]).toBe("mask_docs");
    expect(names).toContain("stride_out_s");
    expect(names.slice(-3)).toEqual(["scale", "q_offset", "kv_offset"]);
    expect(launchGrid(spec, { batch: 2, qHeads: 8, qLen: 100 })).toEqual([2, 8, 2]);
  });

  it("steps: mask hook only on partial blocks, score hook only with a score mod", () => {
    const steps = templateSteps(spec);
    const loops = steps.filter((s) => s.kind === "blockLoop") as any[];
    expect(loops.map((l) => l.blocks)).toEqual(["partial", "full"]);
    expect(loops[0].body.map((b: any) => b.kind)).toContain("maskMod");
    expect(loops[1].body.map((b: any) => b.kind)).not.toContain("maskMod");
    const noScore = templateSteps({ ...spec, score: null });
    expect(JSON.stringify(noScore)).not.toContain("scoreMod");
    const trace: string[] = [];
    const rec = new Proxy({} as TemplateEmitter<string>, {
      get: (_t, name: string) => (...args: unknown[]) => {
        trace.push(name + (typeof args[0] === "string" ? `:${args[0]}` : ""));
        return name;
      },
    });
    emitTemplate(spec, rec);
    expect(trace.slice(0, 3)).toEqual(["program", "loadQ", "initState"]);
    expect(trace).toContain("maskMod:partial");
    expect(trace).not.toContain("maskMod:full");
    expect(trace.at(-1)).toBe("epilogue");
  });
});

describe("f16 / bf16 conversion", () => {
  it("round-trips representable values and rounds to nearest even", () => {
    for (const x of [0, 1, -2, 0.5, 65504, -(2 ** -14), 3.140625]) expect(f16BitsToF32(f32ToF16Bits(x))).toBe(x);
    for (const x of [0, 1, -2, 0.5, 3.140625, 1e30]) expect(Math.abs(bf16BitsToF32(f32ToBf16Bits(x)) - x) / Math.max(1, Math.abs(x))).toBeLessThan(1e-2);
    expect(f16BitsToF32(f32ToF16Bits(1e6))).toBe(Infinity);
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN)))).toBe(true);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN)))).toBe(true);
    expect(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8))).toBe(1); // tie → even
    expect(f16BitsToF32(f32ToF16Bits(2 ** -20))).toBe(2 ** -20); // subnormal
  });
});

import { checkBlockMask } from "@flexattn/template";
import { createBlockMask } from "@flexattn/blockmask";

describe("checkBlockMask", () => {
  const p = resolveProblem({ batch: 2, qHeads: 4, kvHeads: 4, qLen: 256, kvLen: 256, qkHeadDim: 32, vHeadDim: 32, dtype: "f32" });
  const mask = createBlockMask((_b, _h, q, kv) => q.ge(kv), { B: 2, H: 4, qLen: 256, kvLen: 256, blockSize: [64, 64] });
  it("accepts a matching mask and rejects other lengths with a hint", () => {
    expect(() => checkBlockMask(mask, p)).not.toThrow();
    expect(() => checkBlockMask(mask, { ...p, qLen: 128 })).toThrow(/adjust\(128, 256\)/);
    expect(() => checkBlockMask(mask, { ...p, qLen: 512 })).toThrow(/rebuild/);
    const perBatch = createBlockMask((b, _h, q, kv) => q.ge(kv.add(b)), { B: 2, H: 1, qLen: 256, kvLen: 256 });
    expect(() => checkBlockMask(perBatch, { ...p, batch: 3 })).toThrow(/built for batch 2 and the call has 3/);
  });
  it("a sliced mask needs the matching offsets", () => {
    const rows = mask.slice({ qBlocks: [2, 4] });
    const chunk = { ...p, qLen: 128 };
    expect(() => checkBlockMask(rows, chunk)).toThrow(/qOffset: 128/);
    expect(() => checkBlockMask(rows, { ...chunk, qOffset: 128 })).not.toThrow();
    expect(() => checkBlockMask(mask.slice({ b: 1 }), p)).toThrow(/sliced to one batch/);
  });
});

describe("config stages", () => {
  it("any pipeline depth 1..8 is valid (3 stages is common on Hopper)", () => {
    expect(validateConfig({ ...DEFAULT_CONFIG, numStages: 3 }, [128, 128]).numStages).toBe(3);
    expect(() => validateConfig({ ...DEFAULT_CONFIG, numStages: 0 }, [128, 128])).toThrow(/numStages/);
  });
});

describe("checkBlockMask and masks that read b or h", () => {
  it("refuses a head-dependent BlockMask built for fewer heads than the call (it would broadcast head 0)", () => {
    const mask = (_b: any, h: any, q: any, kv: any) => kv.le(q.add(h.mul(32)));
    const bm = createBlockMask(mask, { qLen: 64, kvLen: 64, blockSize: 16 });
    const p = resolveProblem({ batch: 1, qHeads: 2, kvHeads: 2, qLen: 64, kvLen: 64, qkHeadDim: 16, vHeadDim: 16, dtype: "f32" });
    expect(() => checkBlockMask(bm, p)).toThrow(/depends on the head.*build it with H: 2/);
    expect(() => checkBlockMask(createBlockMask(mask, { H: 2, qLen: 64, kvLen: 64, blockSize: 16 }), p)).not.toThrow();
    // A mask that ignores h broadcasts correctly whatever H it was built for.
    expect(() => checkBlockMask(createBlockMask((_b, _h, q, kv) => q.ge(kv), { qLen: 64, kvLen: 64, blockSize: 16 }), p)).not.toThrow();
    const perBatch = (b: any, _h: any, q: any, kv: any) => kv.le(q.add(b));
    expect(() => checkBlockMask(createBlockMask(perBatch, { qLen: 64, kvLen: 64, blockSize: 16 }), { ...p, batch: 3 })).toThrow(/batch index.*B: 3/);
  });
});
