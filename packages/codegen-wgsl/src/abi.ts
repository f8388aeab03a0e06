/**
 * How the template ABI maps onto WebGPU bindings. The order is the ABI's; to stay within the
 * default 8 storage buffers per stage, the four BlockMask tables travel as one i32 buffer and
 * all captured buffers as one buffer of u32 words (f32 as bits); every scalar is in one
 * uniform struct.
 *
 *   @binding(0) q   @binding(1) k   @binding(2) v          storage, read
 *   @binding(3) out                                         storage, read_write
 *   @binding(4) lse  (only when the spec returns it)        storage, read_write
 *   @binding(5) tables: kv_num_blocks | kv_indices | full_kv_num_blocks | full_kv_indices
 *   @binding(6) captured buffers (only when the mods capture any), ABI order
 *   @binding(7) params (uniform)
 *
 * q/k/v/out are array<f32>, array<vec4<f32>> (option vec4) or, for f16/bf16, array<u32>
 * holding two 16-bit values per word (little-endian: element 2i in the low half).
 */
import { FlexAttnError, type BufferData, type ModGraph, boundBuffers } from "@flexattn/ir";
import {
  type BlockMaskTables, type KernelArtifact, type KernelInvocation, type KernelSpec, fullTablesOf,
} from "@flexattn/template";

export const BINDING = { q: 0, k: 1, v: 2, out: 3, lse: 4, tables: 5, captured: 6, params: 7 } as const;

/** The uniform struct, in order. Every field is 4 bytes. */
export const PARAM_FIELDS = [
  ["batch", "i32"], ["q_heads", "i32"], ["kv_heads", "i32"], ["q_len", "i32"], ["kv_len", "i32"],
  ["stride_q_b", "i32"], ["stride_q_h", "i32"], ["stride_q_s", "i32"],
  ["stride_k_b", "i32"], ["stride_k_h", "i32"], ["stride_k_s", "i32"],
  ["stride_v_b", "i32"], ["stride_v_h", "i32"], ["stride_v_s", "i32"],
  ["stride_out_b", "i32"], ["stride_out_h", "i32"], ["stride_out_s", "i32"],
  ["sparse_b", "i32"], ["sparse_h", "i32"], ["sparse_q_blocks", "i32"], ["sparse_kv_blocks", "i32"],
  ["q_offset", "i32"], ["kv_offset", "i32"],
  ["tab_kv_num", "i32"], ["tab_kv_idx", "i32"], ["tab_full_num", "i32"], ["tab_full_idx", "i32"],
  ["scale", "f32"], ["scale_log2", "f32"], ["neg_inf", "f32"], ["pos_inf", "f32"], ["nan", "f32"],
] as const;

export type ParamName = (typeof PARAM_FIELDS)[number][0];
export const PARAMS_BYTES = Math.ceil((PARAM_FIELDS.length * 4) / 16) * 16;

export function paramsStruct(): string {
  const pad = PARAMS_BYTES / 4 - PARAM_FIELDS.length;
  const fields = [...PARAM_FIELDS.map(([n, t]) => `  ${n}: ${t},`), ...Array.from({ length: pad }, (_, i) => `  _pad${i}: i32,`)];
  return `struct Params {\n${fields.join("\n")}\n}`;
}

export function packParams(values: Record<ParamName, number>): ArrayBuffer {
  const buf = new ArrayBuffer(PARAMS_BYTES);
  const i32 = new Int32Array(buf);
  const f32 = new Float32Array(buf);
  PARAM_FIELDS.forEach(([name, type], i) => {
    const v = values[name];
    if (v === undefined) throw new Error(`packParams: missing ${name}`);
    if (type === "i32") i32[i] = v;
    else f32[i] = v;
  });
  return buf;
}

/** Captured buffers of a spec in ABI order: the mask's, then the score mod's. */
export function capturedGraphs(spec: Pick<KernelSpec, "mask" | "score">): ModGraph[] {
  return [spec.mask, spec.score].filter((g): g is ModGraph => g !== null && g.buffers.length > 0);
}

/** Word offset of every captured buffer (shapes are compile-time, so the offsets are too). */
export function capturedOffsets(spec: Pick<KernelSpec, "mask" | "score">): { mask: number[]; score: number[]; words: number } {
  let words = 0;
  const take = (g: ModGraph | null) =>
    g?.buffers.map((b) => {
      const at = words;
      words += b.shape.reduce((a, x) => a * x, 1);
      return at;
    }) ?? [];
  const mask = take(spec.mask);
  const score = take(spec.score);
  return { mask, score, words };
}

/** Pack the captured data (each graph's bound buffers) into one word array. */
export function packCaptured(mask: ModGraph | null, score: ModGraph | null): Uint32Array | null {
  const { words } = capturedOffsets({ mask, score });
  if (words === 0) return null;
  const out = new Uint32Array(words);
  let at = 0;
  for (const g of [mask, score]) {
    if (!g) continue;
    for (const data of boundBuffers(g) as BufferData[]) {
      out.set(new Uint32Array(data.buffer, data.byteOffset, data.length), at);
      at += data.length;
    }
  }
  return out;
}

/** The four BlockMask tables as one i32 array, with their offsets. */
export function packTables(t: BlockMaskTables): { data: Int32Array; offsets: [number, number, number, number] } {
  const { fullKvNumBlocks, fullKvIndices } = fullTablesOf(t);
  const parts = [t.kvNumBlocks, t.kvIndices, fullKvNumBlocks, fullKvIndices];
  const data = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  const offsets = [0, 0, 0, 0] as [number, number, number, number];
  let at = 0;
  parts.forEach((p, i) => {
    offsets[i] = at;
    data.set(p, at);
    at += p.length;
  });
  return { data, offsets };
}

export interface WgslLaunch {
  params: ArrayBuffer;
  tables: Int32Array;
  captured: Uint32Array | null;
  grid: [number, number, number];
}

/**
 * Everything but q/k/v/out/lse for one dispatch. `outStrides` is where the kernel writes
 * (the runner may use its own compact layout and scatter afterwards).
 */
export function wgslLaunch(artifact: KernelArtifact, inv: KernelInvocation, outStrides: readonly number[]): WgslLaunch {
  const p = inv.problem;
  const a = artifact.spec;
  if (a.qkHeadDim !== p.qkHeadDim || a.vHeadDim !== p.vHeadDim || a.dtype !== p.dtype) {
    throw new FlexAttnError(
      `WGSL artifact was built for head dims ${a.qkHeadDim}/${a.vHeadDim} ${a.dtype}, the problem has ${p.qkHeadDim}/${p.vHeadDim} ${p.dtype}`,
    );
  }
  const t = inv.blockMask;
  if (t.blockSize[0] !== a.sparseBlock[0] || t.blockSize[1] !== a.sparseBlock[1]) {
    throw new FlexAttnError(`WGSL artifact was built for BlockMask blocks ${a.sparseBlock.join("×")}, got ${t.blockSize.join("×")}`);
  }
  if ((inv.mask?.key ?? null) !== a.maskKey || (inv.score?.key ?? null) !== a.scoreKey) {
    throw new FlexAttnError("WGSL artifact was built for other mods (mask/score graph keys differ)");
  }
  const tables = packTables(t);
  const s = inv.strides;
  const [so_b, so_h, so_s] = outStrides;
  const params = packParams({
    batch: p.batch, q_heads: p.qHeads, kv_heads: p.kvHeads, q_len: p.qLen, kv_len: p.kvLen,
    stride_q_b: s.q[0], stride_q_h: s.q[1], stride_q_s: s.q[2],
    stride_k_b: s.k[0], stride_k_h: s.k[1], stride_k_s: s.k[2],
    stride_v_b: s.v[0], stride_v_h: s.v[1], stride_v_s: s.v[2],
    stride_out_b: so_b, stride_out_h: so_h, stride_out_s: so_s,
    sparse_b: t.Bm, sparse_h: t.Hm, sparse_q_blocks: t.numQBlocks, sparse_kv_blocks: t.numKvBlocks,
    q_offset: p.qOffset, kv_offset: p.kvOffset,
    tab_kv_num: tables.offsets[0], tab_kv_idx: tables.offsets[1], tab_full_num: tables.offsets[2], tab_full_idx: tables.offsets[3],
    scale: p.scale, scale_log2: p.scale * Math.LOG2E, neg_inf: -Infinity, pos_inf: Infinity, nan: NaN,
  });
  return {
    params,
    tables: tables.data,
    captured: packCaptured(inv.mask, inv.score),
    grid: [Math.ceil(p.qLen / artifact.config.blockM), p.qHeads, p.batch],
  };
}
