import { afterEach, describe, expect, it } from "vitest";
import {
  FlexAttnError, type Tensor, autoBackend, isSoftwareAdapter, andMasks, artifactFromJSON, artifactToJSON, buffer, causal, clearCompileCache, compile,
  compileCacheStats, createBlockMask, findExecutor, documentCausal, flexAttention, lastFlexAttentionRun, randomDocumentIds,
  randomTensor, referenceAttention, resetAutoBackend, resolveProblem, setWebgpuImporter, slidingWindow, softcap, tanh,
  tensor, traceMaskMod, traceScoreMod,
} from "../src/index.js";

function maxErr(got: Tensor, ref: Float64Array): number {
  let e = 0;
  let m = 1;
  for (const x of ref) m = Math.max(m, Math.abs(x));
  for (let i = 0; i < ref.length; i++) e = Math.max(e, Math.abs((got.data as Float32Array)[i] - ref[i]) / m);
  return e;
}

function reference(q: Tensor, k: Tensor, v: Tensor, o: { mask?: ReturnType<typeof createBlockMask>; score?: Parameters<typeof traceScoreMod>[0]; scale?: number } = {}) {
  const [B, Hq, qLen, D] = q.shape;
  const [, Hkv, kvLen] = k.shape;
  const problem = resolveProblem({ batch: B, qHeads: Hq, kvHeads: Hkv, qLen, kvLen, qkHeadDim: D, vHeadDim: v.shape[3], dtype: q.dtype, scale: o.scale, returnLse: true });
  const blockMask = o.mask ?? createBlockMask((_b, _h, _q, _kv) => true, { qLen, kvLen });
  return referenceAttention({ problem, q, k, v, mask: o.mask?.maskGraph ?? null, score: o.score ? traceScoreMod(o.score) : null, blockMask });
}

describe("flexAttention", () => {
  it("document-causal + softcap matches the float64 reference, with LSE", async () => {
    const n = 200;
    const ids = randomDocumentIds(n, 5, 3);
    const blockMask = createBlockMask(documentCausal(ids), { qLen: n, kvLen: n, blockSize: 64 });
    const q = randomTensor([2, 2, n, 32], { seed: 1 });
    const k = randomTensor([2, 2, n, 32], { seed: 2 });
    const v = randomTensor([2, 2, n, 32], { seed: 3 });
    const { out, lse } = await flexAttention(q, k, v, { scoreMod: softcap(20), blockMask, returnLse: true, backend: "js" });
    expect(out.shape).toEqual([2, 2, n, 32]);
    expect(lse.shape).toEqual([2, 2, n]);
    const ref = reference(q, k, v, { mask: blockMask, score: softcap(20) });
    expect(maxErr(out, ref.out)).toBeLessThan(1e-5);
    for (let i = 0; i < ref.lse.length; i++) expect(Math.abs(lse.data[i] - ref.lse[i])).toBeLessThan(1e-4);
    expect(lastFlexAttentionRun()?.backend).toBe("js");
  });

  it("dense attention without a BlockMask, custom scale, GQA, strided (BSHD) inputs", async () => {
    const [B, Hq, Hkv, n, D] = [1, 4, 2, 70, 16];
    const raw = (seed: number, H: number) => randomTensor([B, n, H, D], { seed });
    // BSHD storage viewed as [B, H, S, D] through strides.
    const view = (t: Tensor, H: number): Tensor => tensor(t.data as Float32Array, [B, H, n, D], { strides: [n * H * D, D, H * D, 1] });
    const q = view(raw(1, Hq), Hq);
    const k = view(raw(2, Hkv), Hkv);
    const v = view(raw(3, Hkv), Hkv);
    const out = await flexAttention(q, k, v, { enableGqa: true, scale: 0.3, backend: "js" });
    expect(maxErr(out, reference(q, k, v, { scale: 0.3 }).out)).toBeLessThan(1e-5);
  });

  it("a BlockMask sliced to some query rows runs those rows at their true positions", async () => {
    const n = 256;
    const blockMask = createBlockMask(documentCausal(randomDocumentIds(n, 3, 2)), { qLen: n, kvLen: n, blockSize: 64 });
    const q = randomTensor([1, 1, n, 16], { seed: 1 });
    const k = randomTensor([1, 1, n, 16], { seed: 2 });
    const full = await flexAttention(q, k, k, { blockMask, scoreMod: softcap(5), backend: "js" });
    // Rows 128..191 only.
    const rows = tensor((q.data as Float32Array).slice(128 * 16, 192 * 16), [1, 1, 64, 16]);
    const part = await flexAttention(rows, k, k, { blockMask: blockMask.slice({ qBlocks: [2, 3] }), scoreMod: softcap(5), backend: "js" });
    const want = (full.data as Float32Array).slice(128 * 16, 192 * 16);
    for (let i = 0; i < want.length; i++) expect(part.data[i]).toBeCloseTo(want[i], 6);
  });

  it("runs f16 and bf16 inputs and returns the same dtype", async () => {
    for (const dtype of ["f16", "bf16"] as const) {
      const q = randomTensor([1, 1, 40, 16], { seed: 1, dtype });
      const out = await flexAttention(q, q, q, { backend: "js" });
      expect(out.dtype).toBe(dtype);
      expect(out.data).toBeInstanceOf(Uint16Array);
    }
  });

  it("one import gives the tracing API and the mask library", async () => {
    const docs = buffer(randomDocumentIds(64, 3, 1));
    const mask = andMasks(causal(), (_b, _h, q, kv) => docs.at(q).eq(docs.at(kv)));
    const blockMask = createBlockMask(mask, { qLen: 64, kvLen: 64, blockSize: 16 });
    const q = randomTensor([1, 1, 64, 16], { seed: 5 });
    const out = await flexAttention(q, q, q, { blockMask, scoreMod: (s, _b, _h, _q, _kv) => tanh(s.div(30)).mul(30), backend: "js" });
    expect(out.data.every((x) => Number.isFinite(x))).toBe(true);
  });
});

describe("flexAttention validation", () => {
  const t = (shape: number[], seed = 1) => randomTensor(shape, { seed });
  const q = t([1, 2, 32, 16]);
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    ["rank", () => flexAttention(t([2, 32, 16]), q, q), /q must be 4-D \[batch, heads, seqLen, headDim\], got shape \[2, 32, 16\]/],
    ["bare typed array", () => flexAttention(new Float32Array(8) as unknown as Tensor, q, q), /q is a bare Float32Array; wrap it with tensor/],
    ["batch mismatch", () => flexAttention(q, t([2, 2, 32, 16]), t([2, 2, 32, 16])), /batch sizes differ: q 1, k 2, v 2/],
    ["kv length mismatch", () => flexAttention(q, q, t([1, 2, 33, 16])), /same sequence length, got k 32, v 33/],
    ["head dim mismatch", () => flexAttention(q, t([1, 2, 32, 32]), q), /same head dim, got q 16, k 32/],
    ["k/v heads mismatch", () => flexAttention(q, t([1, 1, 32, 16]), q), /k and v must have the same number of heads/],
    ["dtype mismatch", () => flexAttention(q, randomTensor([1, 2, 32, 16], { dtype: "bf16" }), q), /share a dtype, got q f32, k bf16, v f32/],
    ["data type vs dtype", () => flexAttention({ ...q, dtype: "f16" }, q, q), /dtype f16 but its data is a Float32Array/],
    ["GQA without enableGqa", () => flexAttention(t([1, 4, 32, 16]), q, q), /q has 4 heads but k\/v have 2; pass enableGqa: true/],
    ["GQA not divisible", () => flexAttention(t([1, 3, 32, 16]), q, q, { enableGqa: true }), /multiple of the k\/v head count \(2\)/],
    ["non-unit head-dim stride", () => flexAttention(tensor(new Float32Array(2 * 32 * 32), [1, 2, 32, 16], { strides: [2048, 1024, 32, 2] }), q, q), /head-dim stride 2/],
    ["strides out of range", () => flexAttention({ ...q, strides: [4096, 1024, 32, 1] }, q, q), /needs \d+ elements, its data has 1024/],
    ["head dim too small", () => flexAttention(t([1, 2, 32, 8]), t([1, 2, 32, 8]), t([1, 2, 32, 8])), /qkHeadDim 8 is outside the supported range/],
    ["block mask lengths", () => flexAttention(q, q, q, { blockMask: createBlockMask(causal(), { qLen: 64, kvLen: 64 }) }), /built for qLen 64, kvLen 64.*does not match the inputs \(qLen 32, kvLen 32\)/],
    ["block mask batch", () => flexAttention(q, q, q, { blockMask: createBlockMask((b, _h, q2, kv) => kv.le(q2.add(b)), { B: 3, qLen: 32, kvLen: 32 }) }), /built for batch 3 and the call has 1; build it with B: 1/],
    ["block mask heads", () => flexAttention(q, q, q, { blockMask: createBlockMask((_b, h, q2, kv) => kv.le(q2.add(h)), { H: 5, qLen: 32, kvLen: 32 }) }), /built for 5 head\(s\) and the call has 2; build it with H: 2/],
    ["not a block mask", () => flexAttention(q, q, q, { blockMask: {} as never }), /blockMask must be a BlockMask/],
    ["bad scale", () => flexAttention(q, q, q, { scale: Number.NaN }), /scale must be a finite number/],
    ["bad score mod", () => flexAttention(q, q, q, { scoreMod: ((s: never) => s) as never }), /score mod .* takes 1 parameter/],
    ["cuda backend", () => flexAttention(q, q, q, { backend: "cuda" }), /generates code only.*compile\(mods, problem, \{ backend: "cuda" \}\)/],
    ["triton backend", () => flexAttention(q, q, q, { backend: "triton" }), /backend "triton" generates code only/],
    ["unknown backend", () => flexAttention(q, q, q, { backend: "metal" as never }), /unknown backend "metal"/],
  ];
  for (const [name, call, message] of cases) {
    it(`rejects: ${name}`, async () => {
      const p = call();
      await expect(p).rejects.toBeInstanceOf(FlexAttnError);
      await expect(p).rejects.toThrow(message);
    });
  }

  it("empty inputs: batch/heads/qLen of 0 give an empty output, kvLen 0 gives zeros and LSE -inf", async () => {
    const empty = await flexAttention(t([0, 2, 32, 16]), t([0, 2, 32, 16]), t([0, 2, 32, 16]), { returnLse: true });
    expect(empty.out.shape).toEqual([0, 2, 32, 16]);
    expect(empty.out.data.length).toBe(0);
    const noRows = await flexAttention(t([1, 2, 0, 16]), q, q);
    expect(noRows.shape).toEqual([1, 2, 0, 16]);
    const noKeys = await flexAttention(q, t([1, 2, 0, 16]), t([1, 2, 0, 16]), { returnLse: true });
    expect(noKeys.out.shape).toEqual([1, 2, 32, 16]);
    expect(noKeys.out.data.every((x) => x === 0)).toBe(true);
    expect(noKeys.lse.data.every((x) => x === -Infinity)).toBe(true);
  });
});

describe("score-mod buffers", () => {
  it("a score-mod buffer index that is always out of range is an error, not zeros", async () => {
    const q = randomTensor([1, 2, 16, 16], { seed: 4 });
    const bias = buffer(Float32Array.from([0.5, 0.25]), { name: "bias" });
    const shifted = (s: any, _b: any, h: any, _q: any, _kv: any) => s.add(bias.at(h.add(2)));
    await expect(flexAttention(q, q, q, { scoreMod: shifted })).rejects.toThrow(/buffer "bias" is indexed with values in \[2, 3\]/);
    const ok = (s: any, _b: any, h: any, _q: any, _kv: any) => s.add(bias.at(h));
    await expect(flexAttention(q, q, q, { scoreMod: ok })).resolves.toBeDefined();
  });
});

describe("backend selection", () => {
  afterEach(() => {
    setWebgpuImporter(() => import("@flexattn/webgpu"));
    resetAutoBackend();
  });
  const q = randomTensor([1, 1, 32, 16], { seed: 2 });

  it("auto falls back to js when @flexattn/webgpu cannot be imported", async () => {
    setWebgpuImporter(() => Promise.reject(new Error("Cannot find module")));
    resetAutoBackend();
    await flexAttention(q, q, q);
    expect(lastFlexAttentionRun()?.backend).toBe("js");
    await expect(flexAttention(q, q, q, { backend: "wgsl" })).rejects.toThrow(/backend "wgsl" is not available here: @flexattn\/webgpu could not start: Cannot find module/);
  });

  it("auto falls back to js when there is no adapter", async () => {
    setWebgpuImporter(async () => ({ defaultFlexDevice: () => Promise.reject(new Error("no WebGPU adapter found")), runWgsl: () => undefined }));
    resetAutoBackend();
    await flexAttention(q, q, q);
    expect(lastFlexAttentionRun()?.backend).toBe("js");
  });

  /** The parts of @flexattn/webgpu the executor takes, over a device that never runs anything. */
  const fakeWebgpu = (description: string) => {
    const limits = { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
    const unused = () => { throw new Error("not reached in this test"); };
    return {
      defaultFlexDevice: async () => ({ description, limits }),
      wgslTarget: () => ({ signature: description, limits }),
      prepareWgsl: unused,
      timeWgsl: unused,
    };
  };

  it("auto skips a software (CPU) WebGPU adapter and prefers a hardware one", async () => {
    const fake = (description: string) => async () => ({ ...fakeWebgpu(description), runWgsl: async () => { throw new Error("not reached in this test"); } });
    setWebgpuImporter(fake("llvmpipe (LLVM 15.0.6, 256 bits) / opengles"));
    resetAutoBackend();
    expect((await autoBackend()).backend).toBe("js");
    setWebgpuImporter(fake("NVIDIA H100 80GB HBM3 / vulkan"));
    resetAutoBackend();
    expect((await autoBackend()).backend).toBe("wgsl");
    expect(isSoftwareAdapter("SwiftShader Device")).toBe(true);
    expect(isSoftwareAdapter("Apple M3 / metal")).toBe(false);
  });

  it("auto falls back to js when the WebGPU run fails, and says why", async () => {
    setWebgpuImporter(async () => ({ ...fakeWebgpu("fake"), runWgsl: async () => { throw new Error("device lost"); } }));
    resetAutoBackend();
    const out = await flexAttention(q, q, q);
    expect(lastFlexAttentionRun()).toMatchObject({ backend: "js", fellBack: "wgsl failed: device lost" });
    expect(maxErr(out, reference(q, q, q).out)).toBeLessThan(1e-5);
    // An explicit "wgsl" does not hide the error.
    await expect(flexAttention(q, q, q, { backend: "wgsl" })).rejects.toThrow(/device lost/);
  });
});

describe("WebGPU through @flexattn/webgpu", () => {
  it("backend wgsl matches the reference where an adapter exists (skipped otherwise)", async (ctx) => {
    resetAutoBackend();
    if (!(await findExecutor("wgsl"))) ctx.skip();
    const n = 96;
    const blockMask = createBlockMask(documentCausal(randomDocumentIds(n, 3, 1)), { qLen: n, kvLen: n, blockSize: 32 });
    const q = randomTensor([1, 2, n, 32], { seed: 1 });
    const k = randomTensor([1, 2, n, 32], { seed: 2 });
    const v = randomTensor([1, 2, n, 32], { seed: 3 });
    const out = await flexAttention(q, k, v, { blockMask, scoreMod: softcap(10), backend: "wgsl" });
    expect(lastFlexAttentionRun()?.backend).toBe("wgsl");
    expect(maxErr(out, reference(q, k, v, { mask: blockMask, score: softcap(10) }).out)).toBeLessThan(1e-4);
  });
});

describe("compile", () => {
  const problem = { batch: 1, qHeads: 4, kvHeads: 4, qLen: 256, kvLen: 256, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" } as const;

  it("generates artifacts for every backend", () => {
    const exts: Record<string, RegExp> = { js: /function flexattn_fwd/, wgsl: /@compute/, triton: /@triton\.jit/, cuda: /__global__/ };
    for (const backend of ["js", "wgsl", "triton", "cuda"] as const) {
      const a = compile({ maskMod: causal(), scoreMod: softcap(30) }, { ...problem, dtype: backend === "wgsl" || backend === "js" ? "f32" : "bf16" }, { backend });
      expect(a.backend).toBe(backend);
      expect(a.source).toMatch(exts[backend]);
      expect(artifactFromJSON(artifactToJSON(a))).toEqual(a);
    }
  });

  it("caches by spec hash: new captured data never regenerates", () => {
    clearCompileCache();
    const mk = (seed: number) => documentCausal(randomDocumentIds(256, 4, seed));
    const a = compile({ maskMod: mk(1), scoreMod: softcap(30) }, problem, { backend: "cuda" });
    const b = compile({ maskMod: mk(2), scoreMod: softcap(30) }, problem, { backend: "cuda" });
    expect(b).toBe(a);
    expect(compileCacheStats()).toMatchObject({ generated: 1, hits: 1 });
    // Structure does change the kernel.
    const c = compile({ maskMod: mk(2), scoreMod: softcap(20) }, problem, { backend: "cuda" });
    expect(c).not.toBe(a);
    expect(compileCacheStats().generated).toBe(2);
  });

  it("flexAttention with new document ids reuses the compiled JS kernel", async () => {
    const q = randomTensor([1, 1, 128, 16], { seed: 4 });
    clearCompileCache();
    for (const seed of [1, 2, 3]) {
      const blockMask = createBlockMask(documentCausal(randomDocumentIds(128, 3, seed)), { qLen: 128, kvLen: 128, blockSize: 32 });
      const out = await flexAttention(q, q, q, { blockMask, backend: "js" });
      expect(maxErr(out, reference(q, q, q, { mask: blockMask }).out)).toBeLessThan(1e-5);
    }
    expect(compileCacheStats()).toMatchObject({ generated: 1, hits: 2 });
  });

  it("takes the mask from the BlockMask, rejects a different maskMod, validates inputs", () => {
    const blockMask = createBlockMask(slidingWindow(16), { qLen: 256, kvLen: 256, blockSize: 64 });
    const a = compile({ blockMask }, problem, { backend: "triton" });
    expect(a.spec.maskKey).toBe(traceMaskMod(slidingWindow(16)).key);
    expect(a.spec.sparseBlock).toEqual([64, 64]);
    expect(() => compile({ blockMask, maskMod: causal() }, problem)).toThrow(/maskMod is not the mask the blockMask was built from/);
    expect(() => compile({}, { ...problem, qHeads: 3 })).toThrow(/qHeads \(3\) must be a multiple of kvHeads/);
    expect(() => compile({ maskMod: softcap(3) as never }, problem)).toThrow(/mask mod .* takes 5 parameters, but a mask mod takes 4/);
    expect(() => compile({}, problem, { backend: "metal" as never })).toThrow(/unknown backend "metal"/);
    expect(() => compile({}, problem, { backend: "js", config: { blockM: 48 } })).toThrow(/blockM must be a power of two/);
  });
});
