/** Inputs that used to give a silent wrong answer or a bare TypeError get a clear FlexAttnError. */
import { describe, expect, it } from "vitest";
import {
  BlockMask, FlexAttnError, buffer, causal, compile, createBlockMask, documentCausal, flexAttention, randomTensor, referenceAttention,
  flexAttentionBackward, resolveProblem, softcap, tensor,
} from "../src/index.js";

const n = 48;
const q = randomTensor([1, 1, n, 16], { seed: 1 });
const k = randomTensor([1, 1, n, 16], { seed: 2 });
const v = randomTensor([1, 1, n, 16], { seed: 3 });
const problem = { batch: 1, qHeads: 1, kvHeads: 1, qLen: n, kvLen: n, qkHeadDim: 16, vHeadDim: 16, dtype: "f32" as const };

describe("captured data changed after createBlockMask", () => {
  const ids = () => Int32Array.from({ length: n }, (_, i) => Math.floor(i / 16));

  it("a call with the stale BlockMask is refused, naming the buffer; a rebuilt one runs and is right", async () => {
    const docs = ids();
    const mask = documentCausal(docs);
    const stale = createBlockMask(mask, { qLen: n, kvLen: n, blockSize: 16 });
    docs.fill(0);
    await expect(flexAttention(q, k, v, { blockMask: stale, backend: "js" })).rejects.toThrow(
      /captured buffer "docIds" changed after the BlockMask was built \(element 16: 1 then, 0 now\).*createBlockMask/,
    );
    // slice() and adjust() carry the build-time data along.
    await expect(flexAttention(q, k, v, { blockMask: stale.slice({ qBlocks: [0, 3] }), backend: "js" })).rejects.toThrow(FlexAttnError);
    expect(() => stale.adjust(n + 16, n + 16)).toThrow(/adjust\(\).*changed after the BlockMask was built/);
    const fresh = createBlockMask(mask, { qLen: n, kvLen: n, blockSize: 16 });
    const out = await flexAttention(q, k, v, { blockMask: fresh, backend: "js" });
    const ref = referenceAttention({ problem: resolveProblem(problem), q, k, v, mask: fresh.maskGraph ?? null, score: null, blockMask: fresh });
    let err = 0;
    for (let i = 0; i < ref.out.length; i++) err = Math.max(err, Math.abs((out.data as Float32Array)[i] - ref.out[i]));
    expect(err).toBeLessThan(1e-5);
  });

  it("unchanged data (or the same values written again) runs", async () => {
    const docs = ids();
    const blockMask = createBlockMask(documentCausal(docs), { qLen: n, kvLen: n, blockSize: 16 });
    docs.set(ids());
    await expect(flexAttention(q, k, v, { blockMask, backend: "js" })).resolves.toBeDefined();
  });

  it("fromKvBlocks with a mask mod keeps its data too", async () => {
    const docs = ids();
    const d = buffer(docs, { name: "seg" });
    const built = createBlockMask((_b, _h, qi, kv) => d.at(qi).eq(d.at(kv)), { qLen: n, kvLen: n, blockSize: 16 });
    const bm = BlockMask.fromKvBlocks({ ...built, blockSize: 16, qLen: n, kvLen: n, maskGraph: built.maskGraph });
    docs[0] = 7;
    await expect(flexAttention(q, k, v, { blockMask: bm, backend: "js" })).rejects.toThrow(/buffer "seg" changed/);
  });
});

describe("a plain object as blockMask", () => {
  const real = createBlockMask(causal(), { qLen: n, kvLen: n, blockSize: 16 });
  const cases: [unknown, RegExp][] = [
    [{}, /blockMask must be a BlockMask: it has no valid blockSize/],
    [{ kvNumBlocks: real.kvNumBlocks, kvIndices: real.kvIndices, blockSize: [16, 16] }, /blockMask must be a BlockMask: it has no valid shape \(\{ B, H, qLen, kvLen \}/],
    [{ kvNumBlocks: real.kvNumBlocks, kvIndices: real.kvIndices, blockSize: [16, 16], shape: real.shape }, /blockMask must be a BlockMask: it has no valid Bm/],
    [{ ...real, kvIndices: new Int32Array(3) }, /blockMask must be a BlockMask: it has no valid kvIndices \(an Int32Array of 9 elements/],
    [{ ...real, maskGraph: causal() }, /no valid maskGraph/],
    [5, /blockMask must be a BlockMask, got number/],
  ];
  it.each(cases)("flexAttention: %#", async (bm, message) => {
    await expect(flexAttention(q, k, v, { blockMask: bm as BlockMask, backend: "js" })).rejects.toThrow(message);
    await expect(flexAttention(q, k, v, { blockMask: bm as BlockMask, backend: "js" })).rejects.toThrow(/createBlockMask/);
  });

  it("compile() checks what it reads (it used to default the block size silently)", () => {
    expect(() => compile({ blockMask: {} as BlockMask }, problem)).toThrow(/mods\.blockMask must be a BlockMask: it has no valid blockSize/);
    expect(() => compile({ blockMask: { blockSize: [16, 16], maskGraph: causal() } as never }, problem)).toThrow(/no valid maskGraph/);
    expect(() => compile({ blockMask: real }, problem)).not.toThrow();
    // A plain copy of a BlockMask's fields is a valid table set.
    expect(() => compile({ blockMask: { ...real } }, problem)).not.toThrow();
  });
});

describe("options and arguments nothing would read", () => {
  it("a misspelt option key is refused with the known ones (it would have run without it)", async () => {
    const blockMask = createBlockMask(causal(), { qLen: n, kvLen: n, blockSize: 16 });
    await expect(flexAttention(q, k, v, { blockmask: blockMask } as never)).rejects.toThrow(
      /flexAttention options has unknown key blockmask \(did you mean blockMask\?\); known: scoreMod, blockMask/,
    );
    await expect(flexAttention(q, k, v, { backend: "js", tune: "yes" } as never)).rejects.toThrow(/tune must be true, false or a policy object/);
    await expect(flexAttention(q, k, v, { backend: "js", tune: { maxCandidates: 0 } })).rejects.toThrow(/tune.maxCandidates must be a positive integer, got 0/);
    expect(() => compile({ mask: causal() } as never, problem)).toThrow(/compile's mods has unknown key mask; known: maskMod, scoreMod, blockMask/);
    expect(() => compile({}, problem, { backnd: "cuda" } as never)).toThrow(/compile's options has unknown key backnd/);
  });

  it("compile without a problem, and tensor() of an unsupported array, say what they take", () => {
    expect(() => compile({ maskMod: causal() }, undefined as never)).toThrow(/the problem must be an object \{ batch, qHeads/);
    expect(() => compile({}, { ...problem, qLen: 2 ** 31 })).toThrow(/qLen must be a positive integer below 2\^31/);
    expect(() => tensor(new Float64Array(4) as never, [1, 1, 2, 2])).toThrow(/tensor\(\) takes a Float32Array.*got Float64Array/);
  });

  it("compile's target: a name the backend parses (as the CLI's --target), or a refusal", () => {
    const sm90 = compile({ maskMod: causal() }, { ...problem, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" }, { backend: "cuda", target: "sm_90a" });
    expect(sm90.source).toContain("wgmma");
    const plain = compile({ maskMod: causal() }, { ...problem, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" }, { backend: "cuda" });
    expect(plain.source).not.toContain("wgmma");
    expect(() => compile({}, problem, { backend: "cuda", target: "sm_75" })).toThrow(FlexAttnError);
    expect(() => compile({}, problem, { backend: "js", target: "sm_90a" })).toThrow(/target "sm_90a": the js backend names no devices/);
    expect(() => compile({}, problem, { backend: "triton", target: {} as never })).toThrow(/target must be a device name or a DeviceTarget/);
  });
});

describe("flexAttentionBackward against its forward", () => {
  it("refuses options that describe another attention than the forward that made the lse", async () => {
    const causalMask = createBlockMask(causal(), { qLen: n, kvLen: n, blockSize: 16 });
    const dOut = randomTensor([1, 1, n, 16], { seed: 4 });
    const dense = await flexAttention(q, k, v, { backend: "js", returnLse: true });
    await expect(flexAttentionBackward(q, k, v, dense.out, dense.lse, dOut, { backend: "js", blockMask: causalMask })).rejects.toThrow(
      /options differ from the forward that produced this lse in maskMod, blockMask \(forward 128x128 with 1 listed blocks, now 16x16 with 6 listed blocks\); pass the forward's options/,
    );
    const softcapped = await flexAttention(q, k, v, { backend: "js", returnLse: true, scoreMod: softcap(20) });
    await expect(flexAttentionBackward(q, k, v, softcapped.out, softcapped.lse, dOut, { backend: "js", scoreMod: softcap(30) })).rejects.toThrow(/in scoreMod;/);
    await expect(flexAttentionBackward(q, k, v, softcapped.out, softcapped.lse, dOut, { backend: "js", scoreMod: softcap(20), scale: 0.5 })).rejects.toThrow(
      /in scale \(forward 0\.25, now 0\.5\)/,
    );
    const grads = await flexAttentionBackward(q, k, v, softcapped.out, softcapped.lse, dOut, { backend: "js", scoreMod: softcap(20) });
    expect(grads.dq.shape).toEqual([1, 1, n, 16]);
  });
});
