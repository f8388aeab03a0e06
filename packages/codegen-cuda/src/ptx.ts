/**
 * Device helpers of the generated .cu files, written in inline PTX so the source needs no header
 * (nvcc or NVRTC alone compile it): storage conversions for both kernels, and for the tensor-core
 * kernel cp.async, ldmatrix, mma.sync and the shared-memory tile layouts.
 */
import type { StorageDType } from "@flexattn/template";
import { MMA_TILE, mmaRowBytes } from "./options.js";

/** storage_t and the f32 load/store of one element. bf16 → f32 is exact as a 16-bit shift. */
export function storagePrelude(dtype: StorageDType): string {
  if (dtype === "f32") {
    return `typedef float storage_t;
__device__ __forceinline__ float load_s(const storage_t* p) { return *p; }
__device__ __forceinline__ void store_s(storage_t* p, float x) { *p = x; }`;
  }
  const load = dtype === "bf16"
    ? "return __int_as_float(((unsigned)*p) << 16);"
    : 'float x; asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(*p)); return x;';
  return `typedef unsigned short storage_t;  // ${dtype} bits
__device__ __forceinline__ float load_s(const storage_t* p) { ${load} }
__device__ __forceinline__ void store_s(storage_t* p, float x) {
  unsigned short h;
  asm("cvt.rn.${dtype}.f32 %0, %1;" : "=h"(h) : "f"(x));
  *p = h;
}`;
}

export const NEG_INF = "__int_as_float(0xff800000)";

/** 2^f on [-1/2, 1/2], highest power first: a least-squares fit of the relative error at Chebyshev nodes. */
export const POLY_EXP2 = ["0.009560520", "0.055917121", "0.24024981", "0.69312197", "0.99999917"];

/** The tensor-core kernel's PTX wrappers for one input dtype. */
export function mmaPrelude(dtype: "f16" | "bf16"): string {
  return `__device__ __forceinline__ unsigned smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
// 16 bytes global -> shared, bypassing L1; src_bytes = 0 writes zeros (rows past the end).
__device__ __forceinline__ void cp_async_16(unsigned dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory"); }
__device__ __forceinline__ void st_shared_16(unsigned dst, unsigned a, unsigned b, unsigned c, unsigned d) {
  asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};" :: "r"(dst), "r"(a), "r"(b), "r"(c), "r"(d));
}
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
// d += a · b on tensor cores: a 16×16 (row), b 16×8 (col), ${dtype} in, f32 accumulate.
__device__ __forceinline__ void mma_16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.${dtype}.${dtype}.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// The softmax's 2^x: the SFU's ex2 alone. Flushing results below 2^-126 to zero (ftz) spares the
// rescaling around it that exp2f needs for subnormals; a probability that small adds nothing.
__device__ __forceinline__ float fa_exp2(float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
// The same on the FMA units (options.polyExp2): x = n + f with n = round(x), |f| ≤ 1/2; 2^f by a
// degree-4 polynomial (relative error 2.8e-6), times 2^n built in the exponent bits. Clamping at -127
// flushes as ex2.ftz does (2^-127 is built as 0) and keeps NaN (max.NaN), which then stays NaN.
__device__ __forceinline__ float fa_exp2_poly(float x) {
  asm("max.NaN.f32 %0, %0, 0fC2FE0000;" : "+f"(x));  // -127
  const float shifted = x + 12582912.0f;  // 1.5·2^23: round(x) lands in the low mantissa bits
  const float n = shifted - 12582912.0f;
  const float f = x - n;
  float p = fmaf(${POLY_EXP2[0]}f, f, ${POLY_EXP2[1]}f);
  p = fmaf(p, f, ${POLY_EXP2[2]}f);
  p = fmaf(p, f, ${POLY_EXP2[3]}f);
  p = fmaf(p, f, ${POLY_EXP2[4]}f);
  return p * __int_as_float((__float_as_int(shifted) << 23) + 0x3f800000);
}
// Two f32 -> one register of two ${dtype} (lo in the low half), round to nearest even.
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.${dtype}x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}`;
}

/**
 * Shared-memory layout of a [rows, dim] f16/bf16 tile in 16-byte chunks (8 elements): the dim is
 * padded to a multiple of 16 (one mma k-step) with zeros. ldmatrix reads one chunk column of 8
 * consecutive rows at a time, so the layout puts those 8 chunks in 8 different 16-byte bank groups:
 * an XOR swizzle of the chunk index by the row when a row is 2, 4 or a multiple of 8 chunks,
 * otherwise one chunk of padding per row (an odd row stride in chunks).
 */
export interface MmaLayout {
  /** 16-byte chunks of data per row (dim padded to 16, over 8). */
  readonly chunks: number;
  readonly rowBytes: number;
  /** C++ expression: the chunk's offset in 16-byte units, of row `r` and chunk `c`. */
  readonly unit: (r: string, c: string) => string;
  /**
   * The layout repeats every `rowPeriod` rows and every `chunkPeriod` chunks: unit(r + rowPeriod·i,
   * c + chunkPeriod·k) = unit(r, c) + rowPeriod·i·rowUnits + chunkPeriod·k. So a lane's addresses are
   * a few base offsets plus compile-time immediates.
   */
  readonly rowPeriod: number;
  readonly chunkPeriod: number;
}

export function mmaLayout(dim: number): MmaLayout {
  const chunks = Math.ceil(dim / MMA_TILE) * (MMA_TILE / 8);
  const rowBytes = mmaRowBytes(dim);
  const units = rowBytes / 16;
  if (chunks % 8 === 0) return { chunks, rowBytes, rowPeriod: 8, chunkPeriod: 8, unit: (r, c) => `((${r}) * ${units} + ((${c}) ^ ((${r}) & 7)))` };
  if (chunks === 4) return { chunks, rowBytes, rowPeriod: 8, chunkPeriod: 4, unit: (r, c) => `((${r}) * 4 + ((${c}) ^ (((${r}) >> 1) & 3)))` };
  if (chunks === 2) return { chunks, rowBytes, rowPeriod: 8, chunkPeriod: 2, unit: (r, c) => `((${r}) * 2 + ((${c}) ^ (((${r}) >> 2) & 1)))` };
  return { chunks, rowBytes, rowPeriod: 1, chunkPeriod: 2, unit: (r, c) => `((${r}) * ${units} + (${c}))` };
}
