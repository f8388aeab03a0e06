/**
 * The WGSL backward on a real WebGPU device (CI: Dawn's OpenGL ES backend on Mesa's llvmpipe):
 * every backward conformance case against the float64 reference backward, with the device's
 * GPU-side gradient buffers poisoned with NaN first (so an unwritten element fails), and bitwise
 * determinism. Shapes are the suite's small ones: llvmpipe is a CPU.
 */
import { describe, expect, it } from "vitest";
import { abs, buffer, min } from "@flexattn/ir";
import {
  BACKWARD_CASES, type BackwardInstance, type ConformanceCase, type KernelConfig, checkBackwardInstance, instantiateBackwardCase, layoutStrides, randomNormal,
  runBackwardConformance,
} from "@flexattn/template";
import { BACKWARD_OPTION } from "@flexattn/codegen-wgsl";
import { BACKWARD_POOL_ROLES, type FlexDevice, poolFor, prepareWgslBackward, runWgslBackward, timeWgsl } from "../src/index.js";
import { testDevice } from "./setup.js";

const device = await testDevice();

/** Fill the pool's backward buffers with NaN (grown first, so the run reuses them rather than fresh zeroed ones). */
function poisonDeviceBuffers(dev: FlexDevice): void {
  const bytes = 1 << 20;
  const nan = new Float32Array(bytes / 4).fill(Number.NaN);
  for (const role of Object.values(BACKWARD_POOL_ROLES)) {
    const buf = poolFor(dev.device).get(role, bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    dev.device.queue.writeBuffer(buf, 0, nan);
  }
}

const WGSL_TEST_TIMEOUT_MS = 900_000;

/**
 * Buffer gradients with many contributions per entry: a head table (every element of a tile on
 * one entry) read twice as a product (two sites of one buffer, weights from the other load, their
 * entries colliding), a short relative table that most elements miss (offset -1), and a [3, 64]
 * table whose entries 64 apart alternate row by row (one owner's contributions to several entries
 * interleaved).
 */
const COLLIDING: ConformanceCase = {
  name: "colliding-buffer-gradients",
  problem: { batch: 2, qHeads: 4, kvHeads: 2, qLen: 72, kvLen: 64, qkHeadDim: 32, vHeadDim: 32, dtype: "f32", returnLse: true },
  mask: () => (_b, _h, q, kv) => q.add(8).ge(kv),
  score: ({ rand }) => {
    const heads = buffer(randomNormal(4, rand), { name: "headBias" });
    const near = buffer(randomNormal(8, rand), { name: "nearBias" });
    const rows = buffer(randomNormal(3 * 64, rand), { shape: [3, 64], name: "rowBias" });
    return (s, _b, h, q, kv) =>
      s.add(heads.at(h).mul(heads.at(min(abs(q.sub(kv)).floorDiv(16), 3)))).add(near.at(q.sub(kv))).add(rows.at(q.mod(3), kv));
  },
  blockSize: [16, 16],
  tags: ["bias-table"],
};

describe.skipIf(!device)("WGSL backward on WebGPU", { timeout: WGSL_TEST_TIMEOUT_MS }, () => {
  const dev = device!;
  const run = async (inst: BackwardInstance, config?: Partial<KernelConfig>) => {
    poisonDeviceBuffers(dev);
    await runWgslBackward(inst, { device: dev, config });
  };

  it("every backward case: dQ, dK, dV and buffer gradients match the float64 reference backward", async () => {
    // f32 gradients land within 2e-6 of the reference on llvmpipe (f32 sums): 1e-5 leaves room, and a
    // 0.1% skew of a buffer gradient (1e-4 of its scale) still fails.
    const results = await runBackwardConformance((inst) => run(inst), { tolerance: { f32: 1e-5 } });
    expect(results.filter((r) => !r.pass).map((r) => `${r.name} (seed ${r.seed}): ${r.message}`)).toEqual([]);
    expect(results).toHaveLength(BACKWARD_CASES.length);
    expect(results.some((r) => (r.errors?.dBuffers.length ?? 0) > 0)).toBe(true);
  });

  it("other tiles and workgroup sizes: tiles smaller than the BlockMask blocks, fewer invocations than elements", async () => {
    // GQA with a bias table, offsets with a sliding window, fully masked rows, bf16 (each shader compiles anew on llvmpipe).
    const cases = BACKWARD_CASES.filter((c) => ["learnable-head-buckets-bias", "offsets-bias", "fully-masked-rows", "bf16-alibi-gqa"].includes(c.name));
    for (const config of [
      { blockM: 8, blockN: 8, options: { [BACKWARD_OPTION]: true, workgroupSize: 32 } },
      { blockM: 4, blockN: 16, options: { [BACKWARD_OPTION]: true, workgroupSize: 128 } },
    ]) {
      const results = await runBackwardConformance((inst) => run(inst, config), { cases });
      expect(results.filter((r) => !r.pass).map((r) => `${JSON.stringify(config)} ${r.name} (seed ${r.seed}): ${r.message}`)).toEqual([]);
    }
  });

  it("BSHD inputs and out (dO BHSD), gradients written at BSHD strides", async () => {
    for (const name of ["gqa-3-ragged", "learnable-head-buckets-bias", "f16-relative-bias"]) {
      const cs = BACKWARD_CASES.find((c) => c.name === name)!;
      const inst = instantiateBackwardCase({ ...cs, problem: { ...cs.problem, layout: "bshd" } });
      const p = inst.problem;
      expect(inst.strides.q).toEqual(layoutStrides("bshd", p.qHeads, p.qLen, p.qkHeadDim));
      const strided: BackwardInstance = {
        ...inst,
        gradStrides: {
          dq: layoutStrides("bshd", p.qHeads, p.qLen, p.qkHeadDim),
          dk: layoutStrides("bshd", p.kvHeads, p.kvLen, p.qkHeadDim),
          dv: layoutStrides("bshd", p.kvHeads, p.kvLen, p.vHeadDim),
        },
      };
      await run(strided);
      const r = checkBackwardInstance(strided);
      expect(r.pass, `${name} (seed ${r.seed}): ${r.message}`).toBe(true);
    }
  });

  it("buffer gradients (and dQ, dK, dV) are bitwise identical from run to run", async () => {
    for (const name of ["learnable-head-buckets-bias", "learnable-relative-bias-2N-1"]) {
      const cs = BACKWARD_CASES.find((c) => c.name === name)!;
      const a = instantiateBackwardCase(cs, 4321);
      const b = instantiateBackwardCase(cs, 4321);
      await run(a);
      await run(b);
      const bits = (x: Float32Array | Uint16Array) => Array.from(new Uint32Array(new Float32Array(x).buffer));
      expect(a.dBuffers.length).toBeGreaterThan(0);
      expect(a.dBuffers[0].some((x) => x !== 0)).toBe(true);
      a.dBuffers.forEach((d, i) => {
        expect(bits(d)).toEqual(bits(b.dBuffers[i]));
      });
      for (const k of ["dq", "dk", "dv"] as const) expect(bits(a[k])).toEqual(bits(b[k]));
      expect(checkBackwardInstance(a).pass).toBe(true);
    }
  });

  it("colliding buffer-gradient contributions (several sites, offsets -1): bitwise identical from run to run, and right", async () => {
    const bits = (x: Float32Array | Uint16Array) => Array.from(new Uint32Array(new Float32Array(x).buffer));
    // The default tile; fewer invocations than owners; a tile of 16 elements (its sites' bits end mid-word).
    for (const config of [
      undefined,
      { blockM: 8, blockN: 8, options: { [BACKWARD_OPTION]: true, workgroupSize: 32 } },
      { blockM: 4, blockN: 4, options: { [BACKWARD_OPTION]: true, workgroupSize: 64 } },
    ]) {
      const a = instantiateBackwardCase(COLLIDING, 2024);
      const b = instantiateBackwardCase(COLLIDING, 2024);
      await run(a, config);
      await run(b, config);
      expect(a.dBuffers).toHaveLength(3);
      a.dBuffers.forEach((d, i) => {
        expect(d.every((x) => x !== 0 && Number.isFinite(x))).toBe(true);
        expect(bits(d)).toEqual(bits(b.dBuffers[i]));
      });
      for (const k of ["dq", "dk", "dv"] as const) expect(bits(a[k])).toEqual(bits(b[k]));
      const r = checkBackwardInstance(a, 1e-5);
      expect(r.pass, `${JSON.stringify(config)}: ${r.message}`).toBe(true);
    }
  });

  it("a prepared backward times all of its passes, then runs to the same gradients", async () => {
    const cs = BACKWARD_CASES.find((c) => c.name === "learnable-relative-bias-2N-1")!;
    const inst = instantiateBackwardCase(cs, 99);
    poisonDeviceBuffers(dev);
    const prepared = await prepareWgslBackward(inst, { device: dev });
    const t = await timeWgsl(prepared, { iterations: 3, warmup: 1, warmupMs: 0, maxRounds: 1 });
    expect(t.medianMs).toBeGreaterThan(0);
    await prepared.run();
    expect(checkBackwardInstance(inst).pass).toBe(true);
    const again = instantiateBackwardCase(cs, 99);
    await run(again);
    for (const k of ["dq", "dk", "dv"] as const) expect(Array.from(inst[k])).toEqual(Array.from(again[k]));
  });

  it("refuses gradient outputs of the wrong kind before running", async () => {
    const cs = BACKWARD_CASES.find((c) => c.name === "learnable-relative-bias-2N-1")!;
    const inst = instantiateBackwardCase(cs);
    await expect(runWgslBackward({ ...inst, dBuffers: [] }, { device: dev })).rejects.toThrow(/expected 1 buffer gradient output/);
    await expect(runWgslBackward({ ...inst, dq: new Uint16Array(inst.dq.length) }, { device: dev })).rejects.toThrow(/dq must be a Float32Array/);
  });
});
