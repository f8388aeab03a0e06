/** A small dense tensor: data, shape, dtype and element strides. f16/bf16 are stored as raw bits. */
import { FlexAttnError } from "@flexattn/ir";

export type StorageDType = "f32" | "f16" | "bf16";

export interface Tensor {
  readonly data: Float32Array | Uint16Array;
  readonly shape: readonly number[];
  readonly dtype: StorageDType;
  /** Element strides; contiguous row-major when omitted. */
  readonly strides?: readonly number[];
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function stridesOf(t: Tensor): readonly number[] {
  return t.strides ?? contiguousStrides(t.shape);
}

/** Wrap a typed array as a tensor; f32 from a Float32Array, f16/bf16 from Uint16Array bits. */
export function tensor(data: Float32Array | Uint16Array, shape: readonly number[], options: { dtype?: StorageDType; strides?: readonly number[] } = {}): Tensor {
  if (!(data instanceof Float32Array) && !(data instanceof Uint16Array)) {
    const got = data === null || typeof data !== "object" ? String(data) : (data as object).constructor?.name ?? "an object";
    throw new FlexAttnError(
      `tensor() takes a Float32Array, or a Uint16Array of f16/bf16 bits with dtype "f16" or "bf16"; got ${got}` +
        " (convert with Float32Array.from(...); fromFloat32(values, 'bf16') gives half-precision bits)",
    );
  }
  const dtype = options.dtype ?? (data instanceof Float32Array ? "f32" : undefined);
  if (!dtype) throw new FlexAttnError("tensor(): a Uint16Array needs dtype 'f16' or 'bf16'");
  if ((dtype === "f32") !== data instanceof Float32Array) {
    throw new FlexAttnError(`tensor(): dtype ${dtype} needs a ${dtype === "f32" ? "Float32Array" : "Uint16Array"} (raw bits)`);
  }
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new FlexAttnError(`tensor(): bad shape [${shape.join(", ")}]`);
  const strides = options.strides ?? contiguousStrides(shape);
  if (strides.length !== shape.length) throw new FlexAttnError("tensor(): strides and shape have different lengths");
  const span = shape.some((d) => d === 0) ? 0 : shape.reduce((acc, d, i) => acc + (d - 1) * strides[i], 1);
  if (span > data.length) {
    throw new FlexAttnError(`tensor(): shape [${shape.join(", ")}] with strides [${strides.join(", ")}] needs ${span} elements, data has ${data.length}`);
  }
  return { data, shape: [...shape], dtype, strides: [...strides] };
}

// ---- f16 / bf16 conversion (round to nearest even) ----

const f32Buf = new Float32Array(1);
const u32Buf = new Uint32Array(f32Buf.buffer);

export function f32ToBf16Bits(x: number): number {
  f32Buf[0] = x;
  const u = u32Buf[0];
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0; // NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(bits: number): number {
  u32Buf[0] = bits << 16;
  return f32Buf[0];
}

export function f32ToF16Bits(x: number): number {
  f32Buf[0] = x;
  const u = u32Buf[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Decode any storage dtype to f32 values (a copy; the same array for f32). */
export function toFloat32(data: Float32Array | Uint16Array, dtype: StorageDType): Float32Array {
  if (dtype === "f32") return data as Float32Array;
  const decode = dtype === "bf16" ? bf16BitsToF32 : f16BitsToF32;
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = decode(data[i]);
  return out;
}

/** Encode f32 values into a storage dtype (raw bits for f16/bf16). */
export function fromFloat32(values: Float32Array, dtype: StorageDType): Float32Array | Uint16Array {
  if (dtype === "f32") return values;
  const encode = dtype === "bf16" ? f32ToBf16Bits : f32ToF16Bits;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = encode(values[i]);
  return out;
}
