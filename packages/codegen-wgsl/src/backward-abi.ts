/**
 * How the template's backward ABI (backwardAbi) maps onto WebGPU bindings. Four compute passes
 * share one shader module; each pass binds only what its entry point uses, so none exceeds the
 * default 8 storage buffers per stage:
 *
 *   @binding(0) q  (1) k  (2) v  (3) dout  (4) out          storage, read (in the storage dtype)
 *   @binding(5) tables: kv_num | kv_idx | full_kv_num | full_kv_idx | q_num | q_idx | full_q_num | full_q_idx
 *   @binding(6) captured buffers (only when the mods capture any), ABI order
 *   @binding(7) scratch (f32): lse [R] | delta [R] | buffer-gradient partials [programs × G] | buffer gradients [G]
 *   @binding(8) dq (f32)   @binding(9) dkv (f32): dk | dv
 *   @binding(10) params (uniform)
 *
 * R = B·Hq·qLen rows; G = the words of every buffer that receives a gradient, in backwardMods
 * order. Gradients are written in f32, [B, H, S, 4·⌈D/4⌉] contiguous (rows padded to whole
 * vec4); the runner rounds them to the storage dtype and the caller's strides on readback.
 */
import { FlexAttnError } from "@flexattn/ir";
import { type BackwardMods, type BackwardTables, fullTablesOf, qTablesOf } from "@flexattn/template";

export const BACKWARD_BINDING = { q: 0, k: 1, v: 2, dout: 3, out: 4, tables: 5, captured: 6, scratch: 7, dq: 8, dkv: 9, params: 10 } as const;
export type BackwardBindingName = keyof typeof BACKWARD_BINDING;

/** The uniform struct of the backward, in order. Every field is 4 bytes. */
export const BACKWARD_PARAM_FIELDS = [
  ["batch", "i32"], ["q_heads", "i32"], ["kv_heads", "i32"], ["q_len", "i32"], ["kv_len", "i32"],
  ["stride_q_b", "i32"], ["stride_q_h", "i32"], ["stride_q_s", "i32"],
  ["stride_k_b", "i32"], ["stride_k_h", "i32"], ["stride_k_s", "i32"],
  ["stride_v_b", "i32"], ["stride_v_h", "i32"], ["stride_v_s", "i32"],
  ["stride_out_b", "i32"], ["stride_out_h", "i32"], ["stride_out_s", "i32"],
  ["stride_dout_b", "i32"], ["stride_dout_h", "i32"], ["stride_dout_s", "i32"],
  ["sparse_b", "i32"], ["sparse_h", "i32"], ["sparse_q_blocks", "i32"], ["sparse_kv_blocks", "i32"],
  ["q_offset", "i32"], ["kv_offset", "i32"],
  ["tab_kv_num", "i32"], ["tab_kv_idx", "i32"], ["tab_full_kv_num", "i32"], ["tab_full_kv_idx", "i32"],
  ["tab_q_num", "i32"], ["tab_q_idx", "i32"], ["tab_full_q_num", "i32"], ["tab_full_q_idx", "i32"],
  ["scratch_delta", "i32"], ["scratch_partials", "i32"], ["scratch_grads", "i32"], ["dv_offset", "i32"],
  ["num_kv_tiles", "i32"], ["num_programs", "i32"],
  ["scale", "f32"], ["neg_inf", "f32"], ["pos_inf", "f32"], ["nan", "f32"],
] as const;

export type BackwardParamName = (typeof BACKWARD_PARAM_FIELDS)[number][0];
export const BACKWARD_PARAMS_BYTES = Math.ceil((BACKWARD_PARAM_FIELDS.length * 4) / 16) * 16;

export function backwardParamsStruct(): string {
  const pad = BACKWARD_PARAMS_BYTES / 4 - BACKWARD_PARAM_FIELDS.length;
  const fields = [...BACKWARD_PARAM_FIELDS.map(([n, t]) => `  ${n}: ${t},`), ...Array.from({ length: pad }, (_, i) => `  _pad${i}: i32,`)];
  return `struct Params {\n${fields.join("\n")}\n}`;
}

export function packBackwardParams(values: Record<BackwardParamName, number>): ArrayBuffer {
  const buf = new ArrayBuffer(BACKWARD_PARAMS_BYTES);
  const i32 = new Int32Array(buf);
  const f32 = new Float32Array(buf);
  BACKWARD_PARAM_FIELDS.forEach(([name, type], i) => {
    const v = values[name];
    if (v === undefined) throw new Error(`packBackwardParams: missing ${name}`);
    if (type === "i32") {
      if (!Number.isInteger(v) || v > 0x7fffffff || v < -0x80000000) throw new FlexAttnError(`WGSL backward: ${name} = ${v} does not fit an i32`);
      i32[i] = v;
    } else f32[i] = v;
  });
  return buf;
}

/** Both directions of BlockMask tables as one i32 array (BACKWARD_BINDING.tables' order), with their offsets. */
export function packBackwardTables(t: BackwardTables): { data: Int32Array; offsets: number[] } {
  const full = fullTablesOf(t);
  const q = qTablesOf(t);
  const parts = [t.kvNumBlocks, t.kvIndices, full.fullKvNumBlocks, full.fullKvIndices, q.qNumBlocks, q.qIndices, q.fullQNumBlocks, q.fullQIndices];
  const data = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  const offsets: number[] = [];
  let at = 0;
  for (const p of parts) {
    offsets.push(at);
    data.set(p, at);
    at += p.length;
  }
  return { data, offsets };
}

/** Word offset of each buffer gradient inside one partial row (and the gradient region), and the row's length G. */
export function gradBufferOffsets(mods: BackwardMods): { offsets: number[]; words: number } {
  let words = 0;
  const offsets = mods.gradBuffers.map((g) => {
    const at = words;
    words += g.size;
    return at;
  });
  return { offsets, words };
}

/** Head dims rounded up to whole vec4: the row length of the gradients the kernel writes. */
export const paddedDim = (d: number) => Math.ceil(d / 4) * 4;

/** Where each region of the scratch buffer starts, and its size in words. */
export function scratchLayout(rows: number, programs: number, gradWords: number): { delta: number; partials: number; grads: number; words: number } {
  const delta = rows;
  const partials = 2 * rows;
  const grads = partials + programs * gradWords;
  return { delta, partials, grads, words: grads + gradWords };
}
