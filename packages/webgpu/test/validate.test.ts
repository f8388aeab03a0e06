/**
 * Every library variant's shader passes Dawn's WGSL validation (the null backend: compile-only,
 * nothing executes, no GPU needed): every mask × every score mod, every storage dtype, the
 * kernel options, and head dims across 16..256.
 */
import { describe, expect, it } from "vitest";
import { type ModGraph, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { LIBRARY_MASKS, LIBRARY_SCORE_MODS } from "@flexattn/masks";
import { type KernelArtifact, type KernelConfig, type StorageDType, makeSpec, resolveProblem } from "@flexattn/template";
import { type WgslLimits, generateWgsl, shippedWgslConfig, wgslConfigCandidates, wgslDefaultConfig } from "@flexattn/codegen-wgsl";
import { DAWN_SUBGROUP_MATRIX_OPTIONS, requestFlexDevice } from "../src/index.js";
import { nullDevice } from "./setup.js";

const dev = await nullDevice();
// The null adapter offers f16 subgroup matrices under the same Dawn toggles as NVIDIA's Vulkan driver.
const matrixDev = await requestFlexDevice({ backend: "null", dawnOptions: DAWN_SUBGROUP_MATRIX_OPTIONS });
const H200_MATRIX: WgslLimits = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024, subgroupMinSize: 32, subgroupMatrix: true };
const shape = { B: 2, H: 4, qLen: 256, kvLen: 256 };
const H100: WgslLimits = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024, subgroupMinSize: 32 };

async function validate(a: KernelArtifact, on = dev): Promise<string[]> {
  const m = on.device.createShaderModule({ code: a.source });
  const info = await m.getCompilationInfo();
  return info.messages.filter((x) => x.type === "error").map((x) => `${x.lineNum}:${x.linePos} ${x.message}`);
}

function artifact(mask: ModGraph | null, score: ModGraph | null, d: number, dv: number, dtype: StorageDType, config?: KernelConfig, limits?: WgslLimits) {
  const problem = resolveProblem({ batch: shape.B, qHeads: shape.H, kvHeads: shape.H, qLen: shape.qLen, kvLen: shape.kvLen, qkHeadDim: d, vHeadDim: dv, dtype, returnLse: true });
  const cfg = config ?? wgslDefaultConfig(problem, [128, 128], { limits, vec4: true });
  return generateWgsl(makeSpec({ mask, score, qkHeadDim: d, vHeadDim: dv, dtype, returnLse: true, sparseBlock: [128, 128], config: cfg }));
}

describe("Dawn WGSL validation (null backend)", () => {
  const masks = LIBRARY_MASKS.map((e) => [e.name, traceMaskMod(e.create(shape))] as const);
  const scores = [["identity", null] as const, ...LIBRARY_SCORE_MODS.map((e) => [e.name, traceScoreMod(e.create(shape))] as const)];

  it("every library mask × score mod (f32, the H100 default config)", async () => {
    const errors: string[] = [];
    for (const [mName, mask] of masks)
      for (const [sName, score] of scores) {
        const e = await validate(artifact(mask, score, 64, 64, "f32", undefined, H100));
        if (e.length) errors.push(`${mName} × ${sName}: ${e[0]}`);
      }
    expect(errors).toEqual([]);
  });

  it("every storage dtype and head dims 16..256 (default limits and H100 limits)", async () => {
    const errors: string[] = [];
    const mask = masks.find(([n]) => n === "documentCausal")![1];
    const score = scores.find(([n]) => n === "alibi")![1];
    for (const dtype of ["f32", "f16", "bf16"] as const)
      for (const [d, dv] of [[16, 16], [24, 40], [64, 64], [80, 80], [100, 36], [128, 128], [256, 256]])
        for (const limits of [undefined, H100]) {
          const a = artifact(mask, score, d, dv, dtype, undefined, limits);
          const e = await validate(a);
          if (e.length) errors.push(`${dtype} ${d}/${dv} ${JSON.stringify(a.config)}: ${e[0]}`);
        }
    expect(errors).toEqual([]);
  });

  it("every kernel option", async () => {
    const errors: string[] = [];
    const mask = masks.find(([n]) => n === "prefixLM.perBatch")![1];
    const score = scores.find(([n]) => n === "softcap")![1];
    const base = { blockM: 64, blockN: 32, numWarps: 4, numStages: 1, prescaleQk: false };
    const variants: Record<string, number | boolean>[] = [
      { rowsPerThread: 1, workgroupSize: 64 }, { rowsPerThread: 2, workgroupSize: 256 }, { rowsPerThread: 4 }, { rowsPerThread: 8, workgroupSize: 64 },
      { vec4: true }, { vec4: true, qGlobal: true }, { subgroups: true }, { doubleBuffer: true }, { prefetchV: false },
      { unrollD: 3, unrollN: 5 }, { vec4: true, qGlobal: true, subgroups: true, doubleBuffer: true, prefetchV: false },
      { shareKV: true }, { shareKV: true, doubleBuffer: true, prefetchV: false },
    ];
    for (const options of variants)
      for (const s of [null, score]) {
        const config = { ...base, options };
        const e = await validate(artifact(mask, s, 64, 64, "f32", config));
        if (e.length) errors.push(`${JSON.stringify(options)}: ${e[0]}`);
      }
    // prescaleQk applies without a score mod only.
    const e = await validate(artifact(mask, null, 64, 64, "f32", { ...base, prescaleQk: true }));
    if (e.length) errors.push(`prescaleQk: ${e[0]}`);
    expect(errors).toEqual([]);
  });

  it("subgroupMatrix kernels: every mask × score mod, every candidate shape, dtypes and head dims", async () => {
    expect([...matrixDev.features]).toEqual(expect.arrayContaining(["shader-f16", "subgroups", "chromium-experimental-subgroup-matrix"]));
    const errors: string[] = [];
    let count = 0;
    const check = async (label: string, mask: ModGraph | null, score: ModGraph | null, d: number, dv: number, dtype: StorageDType, config: KernelConfig) => {
      expect(config.options?.subgroupMatrix).toBe(true);
      const e = await validate(artifact(mask, score, d, dv, dtype, config), matrixDev);
      count++;
      if (e.length) errors.push(`${label} ${dtype} ${d}/${dv} ${JSON.stringify(config)}: ${e[0]}`);
    };
    const candidates = (d: number, dv: number, dtype: StorageDType) => {
      const problem = resolveProblem({ batch: 2, qHeads: 4, kvHeads: 4, qLen: 256, kvLen: 256, qkHeadDim: d, vHeadDim: dv, dtype, returnLse: true });
      return wgslConfigCandidates(problem, [128, 128], { limits: H200_MATRIX, vec4: dtype === "f32" }).filter((c) => c.options?.subgroupMatrix);
    };
    // The defaults NVIDIA adapters resolve (the shipped table): every mod pair on each.
    const shipped = (d: number) => {
      const problem = resolveProblem({ batch: 2, qHeads: 4, kvHeads: 4, qLen: 256, kvLen: 256, qkHeadDim: d, vHeadDim: d, dtype: "f32", returnLse: true });
      return shippedWgslConfig(wgslConfigCandidates(problem, [128, 128], { limits: H200_MATRIX, vec4: true }), problem, "nvidia")!;
    };
    const [first128, first64] = [shipped(128), shipped(64)];
    // They differ: head dim 64 on 32-key tiles.
    expect([first64.blockN, first128.blockN]).toEqual([32, 16]);
    for (const [first, d] of [[first128, 128], [first64, 64]] as const)
      for (const [mName, mask] of masks)
        for (const [sName, score] of scores) await check(`${mName} × ${sName}`, mask, score, d, d, "f32", first);
    const mask = masks.find(([n]) => n === "documentCausal")![1];
    const score = scores.find(([n]) => n === "softcap")![1];
    for (const config of candidates(64, 64, "f32")) await check("shape", mask, score, 64, 64, "f32", config);
    for (const dtype of ["f16", "bf16"] as const) await check("dtype", mask, score, 64, 64, dtype, candidates(64, 64, dtype)[0]);
    for (const [d, dv] of [[16, 16], [48, 32], [256, 256]]) {
      const config = candidates(d, dv, "f32")[0];
      if (config) await check("head dims", mask, null, d, dv, "f32", config);
      else errors.push(`no subgroupMatrix candidate for head dims ${d}/${dv}`);
    }
    await check("no mods", null, null, 64, 64, "f32", first64);
    // The bank-conflict layouts are options: each off, and all off (the layout before call 33).
    const offs: Record<string, boolean>[] = [{ padS: false }, { staggerS: false }, { staggerSplit: false }, { padS: false, staggerS: false, staggerSplit: false }];
    for (const off of offs)
      for (const first of [first64, first128]) await check(`off ${JSON.stringify(off)}`, mask, score, first.blockN === 32 ? 64 : 128, first.blockN === 32 ? 64 : 128, "f32", { ...first, options: { ...first.options, ...off } });
    expect(errors).toEqual([]);
    expect(count).toBeGreaterThan(2 * masks.length * scores.length + 5);
  });
});

describe("the WGSL search space", () => {
  it("every candidate the backend declares passes Dawn's validation (d=64 and 128; H100 and subgroup-matrix limits)", async () => {
    const { wgslBackend } = await import("@flexattn/codegen-wgsl");
    const mask = traceMaskMod(LIBRARY_MASKS.find((e) => e.name === "documentCausal")!.create(shape));
    const score = traceScoreMod(LIBRARY_SCORE_MODS.find((e) => e.name === "softcap")!.create(shape));
    const errors: string[] = [];
    let checked = 0;
    for (const d of [64, 128])
      for (const limits of [H100, H200_MATRIX]) {
        const problem = resolveProblem({ batch: 2, qHeads: 4, kvHeads: 4, qLen: 256, kvLen: 256, qkHeadDim: d, vHeadDim: d, dtype: "f32", returnLse: true });
        const candidates = wgslBackend.configCandidates(problem, [128, 128], { mask, score }, { signature: "test", limits: { ...limits, vec4: true } });
        expect(candidates.length).toBeGreaterThan(1);
        for (const config of candidates) {
          const a = generateWgsl(makeSpec({ mask, score, qkHeadDim: d, vHeadDim: d, dtype: "f32", returnLse: true, sparseBlock: [128, 128], config }));
          const e = await validate(a, config.options?.subgroupMatrix ? matrixDev : dev);
          checked++;
          if (e.length) errors.push(`d=${d} ${JSON.stringify(config)}: ${e[0]}`);
        }
      }
    expect(errors).toEqual([]);
    expect(checked).toBeGreaterThan(64);
  });
});
