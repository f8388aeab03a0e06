import { describe, expect, it } from "vitest";
import { buffer, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { causal } from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import { type KernelSpec, backwardAbi, backwardSteps, denseTables, kernelAbi, makeSpec, qTablesOf } from "@flexattn/template";

const bias = buffer(new Float32Array(63), { name: "relBias" });
const ids = buffer(new Int32Array(32), { name: "docIds" });
const spec = (withScore: boolean, withMask = true): KernelSpec => makeSpec({
  mask: withMask ? traceMaskMod((_b, _h, q, kv) => kv.le(q).and(ids.at(q).eq(ids.at(kv)))) : null,
  score: withScore ? traceScoreMod((s, _b, _h, q, kv) => s.add(bias.at(q.sub(kv).add(31)))) : null,
  qkHeadDim: 32, vHeadDim: 32, dtype: "f32", sparseBlock: [16, 16], config: { blockM: 16, blockN: 16, numWarps: 1, numStages: 1, prescaleQk: false },
});

describe("backward steps", () => {
  it("hooks appear where the mods and their gradients are", () => {
    const steps = backwardSteps(spec(true));
    const loop = (kind: string, blocks: string) => steps.find((s) => s.kind === kind && "blocks" in s && s.blocks === blocks) as { body: { kind: string }[] };
    const kinds = (kind: string, blocks: string) => loop(kind, blocks).body.map((b) => b.kind);
    expect(steps.map((s) => s.kind)).toEqual(["preprocess", "kvProgram", "qBlockLoop", "qBlockLoop", "storeKV", "qProgram", "kvBlockLoop", "kvBlockLoop", "storeQ", "reduceBufferGrads"]);
    expect(kinds("qBlockLoop", "partial")).toEqual(["loadTiles", "qk", "scoreMod", "maskMod", "bounds", "recomputeP", "accumulateDV", "dP", "dS", "bufferGrad", "scoreGrad", "accumulateDK"]);
    expect(kinds("qBlockLoop", "full")).not.toContain("maskMod");
    expect(kinds("kvBlockLoop", "partial")).toEqual(["loadTiles", "qk", "scoreMod", "maskMod", "bounds", "recomputeP", "dP", "dS", "scoreGrad", "accumulateDQ"]);
    const plain = backwardSteps(spec(false, false));
    expect(plain.map((s) => s.kind)).not.toContain("reduceBufferGrads");
    expect(JSON.stringify(plain)).not.toMatch(/scoreMod|scoreGrad|maskMod|bufferGrad/);
  });

  it("the backward ABI extends the forward's: both table directions, dO, gradients, buffer gradients", () => {
    const abi = backwardAbi(spec(true));
    const names = abi.map((a) => a.name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of ["dout", "lse", "dq", "dk", "dv", "q_num_blocks", "q_indices", "full_q_num_blocks", "full_q_indices", "d_score_relBias", "stride_dout_s", "stride_dk_h"]) {
      expect(names).toContain(n);
    }
    // Every forward argument but the outputs is there, described the same way.
    for (const a of kernelAbi(spec(true))) if (a.role !== "output" && a.name !== "out") expect(abi).toContainEqual(a);
    expect(backwardAbi(spec(false)).some((a) => a.name.startsWith("d_score_"))).toBe(false);
  });

  it("q-direction tables: a BlockMask's own, or transposed from its kv tables", () => {
    const bm = createBlockMask(causal(), { qLen: 80, kvLen: 100, blockSize: 16 });
    const own = qTablesOf(bm);
    expect(own.qIndices).toBe(bm.qIndices);
    const { blockSize, shape, Bm, Hm, numQBlocks, numKvBlocks, kvNumBlocks, kvIndices, fullKvNumBlocks, fullKvIndices } = bm;
    const derived = qTablesOf({ blockSize, shape, Bm, Hm, numQBlocks, numKvBlocks, kvNumBlocks, kvIndices, fullKvNumBlocks, fullKvIndices });
    expect(Array.from(derived.qNumBlocks)).toEqual(Array.from(bm.qNumBlocks));
    expect(Array.from(derived.qIndices)).toEqual(Array.from(bm.qIndices));
    expect(Array.from(derived.fullQIndices)).toEqual(Array.from(bm.fullQIndices));
    const dense = qTablesOf(denseTables(40, 50, [16, 16]));
    expect(Array.from(dense.fullQNumBlocks)).toEqual([3, 3, 3, 3]);
    expect(Array.from(dense.qNumBlocks)).toEqual([0, 0, 0, 0]);
  });
});
