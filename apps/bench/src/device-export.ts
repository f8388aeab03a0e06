/**
 * JSON encodings shared by the device harnesses: typed arrays as base64, tensors with their
 * strides, and BlockMask tables (full tables zero-filled when absent).
 */
import {
  type BlockMaskTables, type KernelArtifact, type KernelInvocation, type KernelSpec, type Tensor, fullTablesOf, makeSpec, referenceAttention,
} from "@flexattn/template";

export const b64 = (a: ArrayBufferView): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");

export const tensorJson = (t: Tensor) => ({ shape: t.shape, strides: t.strides, dtype: t.dtype, data: b64(t.data) });

export function tablesJson(t: BlockMaskTables) {
  const full = fullTablesOf(t);
  return {
    Bm: t.Bm, Hm: t.Hm, QB: t.numQBlocks, KVB: t.numKvBlocks, blockSize: t.blockSize,
    kvNumBlocks: b64(t.kvNumBlocks), kvIndices: b64(t.kvIndices),
    fullKvNumBlocks: b64(full.fullKvNumBlocks), fullKvIndices: b64(full.fullKvIndices),
  };
}

/** One conformance instance: problem, inputs, tables and the float64 reference outputs. */
export function invocationJson(inv: KernelInvocation) {
  const ref = referenceAttention(inv);
  return {
    problem: inv.problem,
    q: tensorJson(inv.q), k: tensorJson(inv.k), v: tensorJson(inv.v),
    tables: tablesJson(inv.blockMask),
    ref: { out: b64(ref.out), lse: b64(ref.lse) },
  };
}

/** The spec an artifact was generated from (bufferArgs and the torch mods read it). */
export function specOf(artifact: KernelArtifact, mask: KernelSpec["mask"], score: KernelSpec["score"]): KernelSpec {
  const s = artifact.spec;
  return makeSpec({
    mask, score, qkHeadDim: s.qkHeadDim, vHeadDim: s.vHeadDim, dtype: s.dtype, returnLse: s.returnLse,
    sparseBlock: s.sparseBlock, config: artifact.config,
  });
}
