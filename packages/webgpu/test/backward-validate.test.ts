/**
 * The WGSL backward's shaders and pipelines pass Dawn's validation (the null backend: compile-only,
 * nothing executes, no GPU needed): every candidate the backend declares for the backward, every
 * library mask × score mod, storage dtypes and head dims.
 */
import { describe, expect, it } from "vitest";
import { type ModGraph, buffer, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { LIBRARY_MASKS, LIBRARY_SCORE_MODS } from "@flexattn/masks";
import { type KernelConfig, type StorageDType, backwardMods, makeSpec, resolveProblem } from "@flexattn/template";
import { type WgslLimits, generateWgslBackward, wgslBackend, wgslBackwardConfigCandidates } from "@flexattn/codegen-wgsl";
import { backwardPipelines } from "../src/index.js";
import { nullDevice } from "./setup.js";

const dev = await nullDevice();
const shape = { B: 2, H: 4, qLen: 256, kvLen: 256 };
const H100: WgslLimits = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024, subgroupMinSize: 32 };
const DEFAULT: WgslLimits = { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
/** How many configs went as far as pipelines (Dawn checks the layouts and the workgroup memory there). */
let pipelined = 0;

const problemOf = (d: number, dv: number, dtype: StorageDType) =>
  resolveProblem({ batch: shape.B, qHeads: shape.H, kvHeads: shape.H, qLen: shape.qLen, kvLen: shape.kvLen, qkHeadDim: d, vHeadDim: dv, dtype, returnLse: true });

/**
 * Compile the backward for a config and create every pass's pipeline where the null device's own
 * limits allow it (configs for larger limits are compiled only); the first error, or null.
 */
async function validate(mask: ModGraph | null, score: ModGraph | null, d: number, dv: number, dtype: StorageDType, config?: KernelConfig, limits = DEFAULT): Promise<string | null> {
  const cfg = config ?? wgslBackwardConfigCandidates(problemOf(d, dv, dtype), [128, 128], backwardMods(score), limits)[0];
  const a = generateWgslBackward(makeSpec({ mask, score, qkHeadDim: d, vHeadDim: dv, dtype, returnLse: true, sparseBlock: [128, 128], config: cfg }));
  if (a.sharedMemoryBytes > limits.maxComputeWorkgroupStorageSize) return `${a.sharedMemoryBytes} bytes of workgroup memory`;
  const m = dev.device.createShaderModule({ code: a.source });
  const errors = (await m.getCompilationInfo()).messages.filter((x) => x.type === "error");
  if (errors.length) return `${errors[0].lineNum}:${errors[0].linePos} ${errors[0].message}`;
  if (a.sharedMemoryBytes > dev.limits.maxComputeWorkgroupStorageSize || a.threadsPerProgram > dev.limits.maxComputeInvocationsPerWorkgroup) return null;
  pipelined++;
  try {
    await backwardPipelines(dev.device, a);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return null;
}

describe("Dawn validation of the WGSL backward (null backend)", () => {
  const masks = LIBRARY_MASKS.map((e) => [e.name, traceMaskMod(e.create(shape))] as const);
  const scores = [["identity", null] as const, ...LIBRARY_SCORE_MODS.map((e) => [e.name, traceScoreMod(e.create(shape))] as const)];

  it("every backward candidate the backend declares (d = 64 and 128; default and H100 limits; with a bias table)", async () => {
    const mask = masks.find(([n]) => n === "documentCausal")![1];
    const table = buffer(new Float32Array(2 * shape.qLen - 1), { name: "relBias" });
    const score = traceScoreMod((s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(shape.qLen - 1))));
    const errors: string[] = [];
    let checked = 0;
    for (const d of [64, 128])
      for (const limits of [DEFAULT, H100]) {
        const candidates = wgslBackend.configCandidates(problemOf(d, d, "f32"), [128, 128], { mask, score }, { signature: "test", limits: { ...limits, pass: "backward" } });
        expect(candidates.length).toBeGreaterThan(1);
        for (const config of candidates) {
          const e = await validate(mask, score, d, d, "f32", config, limits);
          checked++;
          if (e) errors.push(`d=${d} ${JSON.stringify(config)}: ${e}`);
        }
      }
    expect(errors).toEqual([]);
    expect(checked).toBeGreaterThan(40);
    expect(pipelined).toBeGreaterThan(20);
  });

  it("every library mask × score mod (f32, the default backward config)", async () => {
    const errors: string[] = [];
    for (const [mName, mask] of masks)
      for (const [sName, score] of scores) {
        const e = await validate(mask, score, 64, 64, "f32");
        if (e) errors.push(`${mName} × ${sName}: ${e}`);
      }
    expect(errors).toEqual([]);
  });

  it("every storage dtype and head dims 16..256", async () => {
    const errors: string[] = [];
    const mask = masks.find(([n]) => n === "causal")![1];
    const score = scores.find(([n]) => n === "alibi")![1];
    for (const dtype of ["f32", "f16", "bf16"] as const)
      for (const [d, dv] of [[16, 16], [24, 40], [80, 80], [100, 36], [128, 128], [256, 256]]) {
        const e = await validate(mask, score, d, dv, dtype);
        if (e) errors.push(`${dtype} ${d}/${dv}: ${e}`);
      }
    expect(errors).toEqual([]);
  });
});
