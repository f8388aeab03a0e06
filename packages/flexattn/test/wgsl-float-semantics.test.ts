/**
 * f32 mods compute what the IR evaluator computes on WGSL too, on the CI driver (Mesa llvmpipe,
 * which reassociates f32 arithmetic and folds inf·0 to 0 unless the renderer prevents it).
 */
import { describe, expect, it } from "vitest";
import {
  type MaskMod, type ScoreMod, buffer, createBlockMask, flexAttention, randomTensor, referenceAttention, resolveProblem, toF32,
  traceScoreMod,
} from "../src/index.js";
import { isWebGpuAvailable } from "@flexattn/webgpu";
import { compareWithReference } from "./fuzz/check.js";

const REQUIRE_WEBGPU = process.env.FLEXATTN_REQUIRE_WEBGPU === "1" || process.env.CI === "true";
const n = 32;
const D = 16;

async function check(backend: "js" | "wgsl", maskMod: MaskMod | null, scoreMod: ScoreMod | undefined): Promise<void> {
  const q = randomTensor([1, 1, n, D], { seed: 5 });
  const k = randomTensor([1, 1, n, D], { seed: 6 });
  const v = randomTensor([1, 1, n, D], { seed: 7 });
  const blockMask = maskMod ? createBlockMask(maskMod, { qLen: n, kvLen: n, blockSize: 16 }) : undefined;
  const res = await flexAttention(q, k, v, { blockMask, scoreMod, backend, returnLse: true });
  const problem = resolveProblem({ batch: 1, qHeads: 1, kvHeads: 1, qLen: n, kvLen: n, qkHeadDim: D, vHeadDim: D, dtype: "f32", returnLse: true });
  const tables = blockMask ?? createBlockMask((_b, _h, _q, _kv) => true, { qLen: n, kvLen: n, blockSize: 16 });
  const ref = referenceAttention({ problem, q, k, v, mask: blockMask?.maskGraph ?? null, score: scoreMod ? traceScoreMod(scoreMod) : null, blockMask: tables });
  const bad = compareWithReference({ out: res.out.data as Float32Array, lse: res.lse.data as Float32Array }, ref, { B: 1, H: 1, L: n, Dv: D }, 1e-5);
  expect(bad).toBeNull();
}

const inf = buffer(Float32Array.from([Number.POSITIVE_INFINITY, 2]), { name: "w" });
const cases: [string, MaskMod | null, ScoreMod | undefined][] = [
  // In f32, (kv·0.1)·10 == kv for 28 of 32 keys; reassociated to kv·1 it holds for all 32.
  ["no reassociation of products", (_b, _h, _q, kv) => toF32(kv).mul(0.1).mul(10).eq(toF32(kv)), undefined],
  // (kv + 2^24) − 2^24 rounds kv to even in f32; reassociated it is kv.
  ["no reassociation of sums", null, (s, _b, _h, _q, kv) => s.add(toF32(kv).add(16777216).sub(16777216))],
  // inf·0 is NaN: rows whose query reads the +inf weight are NaN, not the plain score.
  ["inf·0 is not folded to 0", null, (s, _b, _h, q, _kv) => s.add(inf.at(q.mod(2)).mul(0))],
  // -0 + 0 = +0 and x·0 keeps the sign: 1/(x·0) tells -inf from +inf.
  ["zero signs", null, (s, _b, _h, _q, kv) => s.add(toF32(kv).sub(16).mul(0).add(1))],
];

describe.each(["js", "wgsl"] as const)("f32 mod semantics on %s", (backend) => {
  it.for(cases)("%s", { timeout: 120_000 }, async ([, maskMod, scoreMod], ctx) => {
    if (backend === "wgsl" && !(await isWebGpuAvailable())) {
      if (REQUIRE_WEBGPU) throw new Error("no WebGPU adapter, and CI requires one");
      return ctx.skip();
    }
    await check(backend, maskMod, scoreMod);
  });
});
