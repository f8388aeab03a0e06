/**
 * Global-memory access for q, k, v (loads of 4 consecutive head-dim elements) and out (stores
 * of 4), per storage format. f16 and bf16 are kept as u32 words of two 16-bit values and
 * converted in the shader with core WGSL (unpack2x16float, bit shifts), so they need neither
 * the `shader-f16` feature nor a particular adapter.
 */
import type { StorageDType } from "@flexattn/template";

export type StorageFormat = "f32" | "vec4" | "f16" | "bf16";

export function storageFormat(dtype: StorageDType, vec4: boolean): StorageFormat {
  return dtype === "f32" ? (vec4 ? "vec4" : "f32") : dtype;
}

export function elementType(f: StorageFormat): string {
  return f === "f32" ? "f32" : f === "vec4" ? "vec4<f32>" : "u32";
}

/** Decode one word into its two values, low half first. */
function unpackWord(f: "f16" | "bf16", w: string): string {
  return f === "f16" ? `unpack2x16float(${w})` : `vec2<f32>(bitcast<f32>(${w} << 16u), bitcast<f32>(${w} & 0xffff0000u))`;
}

/**
 * `fn fa_ld4_<name>(e: i32, n: i32) -> vec4<f32>`: elements e .. e+3 of the binding, of which
 * the first n (≥ 1) are inside the head dim; the rest read 0. `dim` is the head dim.
 */
export function loadFunction(name: string, f: StorageFormat, dim: number): string {
  const buf = `fa_${name}`;
  const fn = `fn fa_ld4_${name}(e: i32, n: i32) -> vec4<f32>`;
  const whole = dim % 4 === 0; // then n ≥ 4 always
  if (f === "vec4") return `${fn} { return ${buf}[e >> 2u]; }`;
  if (f === "f32") {
    if (whole) return `${fn} { return vec4<f32>(${buf}[e], ${buf}[e + 1], ${buf}[e + 2], ${buf}[e + 3]); }`;
    return `${fn} {
  var r = vec4<f32>(${buf}[e], 0.0f, 0.0f, 0.0f);
  if (n > 1) { r.y = ${buf}[e + 1]; }
  if (n > 2) { r.z = ${buf}[e + 2]; }
  if (n > 3) { r.w = ${buf}[e + 3]; }
  return r;
}`;
  }
  const one = `fn fa_ld1_${name}(e: i32) -> f32 { return ${unpackWord(f, `${buf}[u32(e) >> 1u]`)}[u32(e) & 1u]; }`;
  return `${one}
${fn} {
  if ((e & 1) == 0 && n > 3) {
    let w = u32(e) >> 1u;
    return vec4<f32>(${unpackWord(f, `${buf}[w]`)}, ${unpackWord(f, `${buf}[w + 1u]`)});
  }
  var r = vec4<f32>(fa_ld1_${name}(e), 0.0f, 0.0f, 0.0f);
  if (n > 1) { r.y = fa_ld1_${name}(e + 1); }
  if (n > 2) { r.z = fa_ld1_${name}(e + 2); }
  if (n > 3) { r.w = fa_ld1_${name}(e + 3); }
  return r;
}`;
}

/**
 * `fn fa_st4_out(e: i32, n: i32, x: vec4<f32>)`: store the first n (≥ 1) of 4 values at
 * element e. 16-bit formats write whole words, so e must be even and the row padded to an even
 * length (the values past the head dim are 0): a documented requirement on `out`'s strides.
 */
export function storeFunction(f: StorageFormat, dim: number): string {
  const fn = "fn fa_st4_out(e: i32, n: i32, x: vec4<f32>)";
  if (f === "vec4") return `${fn} { fa_out[e >> 2u] = x; }`;
  if (f === "f32") {
    if (dim % 4 === 0) return `${fn} { fa_out[e] = x.x; fa_out[e + 1] = x.y; fa_out[e + 2] = x.z; fa_out[e + 3] = x.w; }`;
    return `${fn} {
  fa_out[e] = x.x;
  if (n > 1) { fa_out[e + 1] = x.y; }
  if (n > 2) { fa_out[e + 2] = x.z; }
  if (n > 3) { fa_out[e + 3] = x.w; }
}`;
  }
  const pack = f === "f16" ? (v: string) => `pack2x16float(${v})` : (v: string) => `(fa_bf16(${v}.x) | (fa_bf16(${v}.y) << 16u))`;
  const bf16 = f === "bf16"
    ? `// f32 -> bf16 bits, round to nearest even; NaN -> 0x7fc0.
fn fa_bf16(x: f32) -> u32 {
  let u = bitcast<u32>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) { return 0x7fc0u; }
  return (u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u;
}
`
    : "";
  return `${bf16}${fn} {
  let w = u32(e) >> 1u;
  fa_out[w] = ${pack("x.xy")};
  if (n > 2) { fa_out[w + 1u] = ${pack("x.zw")}; }
}`;
}
