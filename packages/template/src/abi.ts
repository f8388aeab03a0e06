/**
 * The kernel ABI shared by every backend: argument order, names and types. Backends map it
 * onto their own calling convention (pointer parameters, WGSL bindings, torch tensors) but
 * keep the order, so one launcher description serves all.
 */
import type { KernelSpec } from "./spec.js";
import { capturedBuffers } from "./spec.js";

export type AbiArgKind = "tensor" | "scalar";
export type AbiElemType = "storage" | "f32" | "i32";

export interface AbiArg {
  readonly name: string;
  readonly kind: AbiArgKind;
  /** "storage" = the spec's dtype (f32/f16/bf16). */
  readonly type: AbiElemType;
  readonly role: "input" | "output" | "blockmask" | "captured" | "size" | "stride" | "param";
  readonly doc: string;
}

const t = (name: string, type: AbiElemType, role: AbiArg["role"], doc: string): AbiArg => ({ name, kind: "tensor", type, role, doc });
const s = (name: string, type: AbiElemType, role: AbiArg["role"], doc: string): AbiArg => ({ name, kind: "scalar", type, role, doc });

/** Strides are element strides over [batch, head, seq]; the head-dim stride must be 1. */
export const STRIDED_TENSORS = ["q", "k", "v", "out"] as const;

export function kernelAbi(spec: KernelSpec): AbiArg[] {
  return [
    t("q", "storage", "input", "queries [B, Hq, qLen, Dqk] (strided)"),
    t("k", "storage", "input", "keys [B, Hkv, kvLen, Dqk] (strided)"),
    t("v", "storage", "input", "values [B, Hkv, kvLen, Dv] (strided)"),
    t("out", "storage", "output", "output [B, Hq, qLen, Dv] (strided)"),
    t("lse", "f32", "output", "log-sum-exp [B, Hq, qLen], contiguous; written only when the spec returns it"),
    t("kv_num_blocks", "i32", "blockmask", "partial kv blocks per row [Bm, Hm, QB]"),
    t("kv_indices", "i32", "blockmask", "partial kv block indices [Bm, Hm, QB, KVB]"),
    t("full_kv_num_blocks", "i32", "blockmask", "full kv blocks per row [Bm, Hm, QB]"),
    t("full_kv_indices", "i32", "blockmask", "full kv block indices [Bm, Hm, QB, KVB]"),
    ...capturedBuffers(spec).map((b) =>
      t(b.name, b.graph.buffers[b.slot].dtype, "captured", `captured buffer ${b.graph.buffers[b.slot].name} of the ${b.owner} mod`),
    ),
    s("batch", "i32", "size", "B"),
    s("q_heads", "i32", "size", "Hq"),
    s("kv_heads", "i32", "size", "Hkv (Hq % Hkv == 0)"),
    s("q_len", "i32", "size", "query length"),
    s("kv_len", "i32", "size", "key/value length"),
    ...STRIDED_TENSORS.flatMap((name) => ["b", "h", "s"].map((d) => s(`stride_${name}_${d}`, "i32", "stride", `${name} element stride over ${d}`))),
    s("sparse_b", "i32", "size", "Bm: BlockMask batch entries (1 = broadcast)"),
    s("sparse_h", "i32", "size", "Hm: BlockMask head entries (1 = broadcast)"),
    s("sparse_q_blocks", "i32", "size", "QB: BlockMask rows"),
    s("sparse_kv_blocks", "i32", "size", "KVB: BlockMask index row length"),
    s("scale", "f32", "param", "softmax scale"),
    s("q_offset", "i32", "param", "added to query indices seen by the mods"),
    s("kv_offset", "i32", "param", "added to key indices seen by the mods"),
  ];
}

/** The launch grid: one program per (query tile, query head, batch). */
export function launchGrid(spec: KernelSpec, sizes: { batch: number; qHeads: number; qLen: number }): [number, number, number] {
  return [Math.ceil(sizes.qLen / spec.config.blockM), sizes.qHeads, sizes.batch];
}
