/**
 * The wgmma kernel's PTX helpers (sm_90a) and the shared-memory layout they read, written so the
 * layout math is also a TypeScript model the unit tests check against the PTX ISA's definitions.
 *
 * Tiles are stored in the 128-byte swizzle (descriptor swizzle mode 1): a [rows, dim] tile of
 * 16-bit elements, dim padded to a multiple of 64, is dim/64 "slabs" of rows × 128 bytes; within a
 * slab row r is at r·128 and its 16-byte chunk c at chunk c ^ (r % 8). The hardware applies that XOR
 * to address bits 4–6 from bits 7–9, so every slab starts on a 1024-byte boundary.
 *
 * Operands (PTX ISA, "Shared Memory Matrix Layout", canonical layouts with T = 8 elements):
 * - K-major (Q as A, K as B of Q·Kᵀ: the contraction dim is contiguous): ((8, m), (T, 2k)) :
 *   ((8T, SBO), (1, T)) — 8-row core groups SBO = 1024 bytes apart; LBO unused. A k-step of 16
 *   elements moves the start address by 32 bytes inside a slab, or to the next slab every 4 steps.
 * - MN-major (V as B of P·V, imm-trans-b = 1: N = the v dim is contiguous): ((T, 8, n), (8, k)) :
 *   ((1, T, LBO), (8T, SBO)) — 64-column groups LBO = rows·128 bytes apart (the next slab), 8-row
 *   groups of k SBO = 1024 bytes apart. A k-step of 16 rows moves the start address by 2048 bytes.
 */
import { WGMMA_DIM_ALIGN } from "./options.js";

/** Bytes of one swizzle row (64 elements of 16 bits) and of one 8-row swizzle period. */
export const SWIZZLE_ROW_BYTES = 128;
export const SWIZZLE_PERIOD_BYTES = 1024;

/** Byte offset of element (r, c) of a [rows, dim] 16-bit tile in the 128-byte-swizzled layout. */
export function swizzledOffset(rows: number, r: number, c: number): number {
  const slab = Math.floor(c / WGMMA_DIM_ALIGN);
  const chunk = Math.floor((c % WGMMA_DIM_ALIGN) / 8);
  return slab * rows * SWIZZLE_ROW_BYTES + r * SWIZZLE_ROW_BYTES + ((chunk ^ (r % 8)) << 4) + (c % 8) * 2;
}

/** The hardware's 128-byte swizzle of a shared-memory byte address: bits 4–6 ^= bits 7–9. */
export function swizzle128(addr: number): number {
  return addr ^ (((addr >> 7) & 7) << 4);
}

/** A matrix descriptor's fields (PTX ISA "Matrix Descriptor Format"), byte values. */
export interface MatrixDescriptor {
  start: number;
  lbo: number;
  sbo: number;
}

/** The 64-bit descriptor of 128-byte-swizzled operands: start, LBO, SBO in 16-byte units; swizzle mode 1 in bits 62–63. */
export function encodeDescriptor(d: MatrixDescriptor): bigint {
  const field = (bytes: number) => BigInt((bytes & 0x3ffff) >> 4);
  return field(d.start) | (field(d.lbo) << 16n) | (field(d.sbo) << 32n) | (1n << 62n);
}

/**
 * The shared address the hardware reads for element (i, k) of a K-major operand (i: row of A or
 * column of B, k: contraction index < 16) under a swizzled descriptor: the canonical layout, then
 * the swizzle.
 */
export function kMajorAddress(d: MatrixDescriptor, i: number, k: number): number {
  return swizzle128(d.start + (i % 8) * SWIZZLE_ROW_BYTES + Math.floor(i / 8) * d.sbo + k * 2);
}

/** The shared address of element (k, n) of an MN-major B operand (k < 16, n < N) under a swizzled descriptor. */
export function mnMajorAddress(d: MatrixDescriptor, k: number, n: number): number {
  return swizzle128(d.start + (n % 64) * 2 + Math.floor(n / 64) * d.lbo + (k % 8) * SWIZZLE_ROW_BYTES + Math.floor(k / 8) * d.sbo);
}

/** The descriptor offset (bytes from the tile base) of k-step kk of a K-major tile with `rows` rows. */
export function kMajorStepOffset(rows: number, kk: number): number {
  return Math.floor(kk / 4) * rows * SWIZZLE_ROW_BYTES + (kk % 4) * 32;
}

/** The descriptor offset of k-step kk (16 rows) of an MN-major tile. */
export function mnMajorStepOffset(kk: number): number {
  return kk * 16 * SWIZZLE_ROW_BYTES;
}

/**
 * The accumulator element a thread holds (PTX ISA, wgmma .m64nNk16 D fragments, f32): thread t of
 * the warpgroup, register i → row 16·(t/32) + (t%32)/4 + 8·((i/2)%2), column 8·(i/4) + 2·(t%4) + i%2.
 * The mma.sync m16n8 accumulator layout per warp and 8-column tile, which the kernel's mod indices use.
 */
export function accumulatorElement(t: number, i: number): { row: number; col: number } {
  return { row: 16 * Math.floor(t / 32) + Math.floor((t % 32) / 4) + 8 * (Math.floor(i / 2) % 2), col: 8 * Math.floor(i / 4) + 2 * (t % 4) + (i % 2) };
}

/** C++ of the layout's byte offset, the same function as swizzledOffset over 16-byte chunks (chunk index `c`). */
export function swizzledChunkOffsetCpp(rows: string, r: string, c: string): string {
  return `((((${c}) >> 3) * (${rows}) + (${r})) * ${SWIZZLE_ROW_BYTES} + ((((${c}) & 7) ^ ((${r}) & 7)) << 4))`;
}

const regList = (from: number, count: number) => Array.from({ length: count }, (_, i) => `%${from + i}`).join(", ");

/**
 * The wgmma kernel's PTX wrappers for one input dtype: proxy fence, descriptor, wgmma fences, and one
 * wgmma function per shape the kernel uses — `wgmma_ss_n<N>` (A and B from shared memory, both
 * K-major: Q·Kᵀ) and `wgmma_rs_n<N>` (A from registers, B MN-major: P·V).
 */
export function wgmmaPrelude(dtype: "f16" | "bf16", ssN: number, rsN: number): string {
  const acc = (n: number) => Array.from({ length: n / 8 }, (_, j) => [0, 1, 2, 3].map((e) => `"+f"(d[${j}][${e}])`).join(", ")).join(",\n      ");
  // No backslash escapes in the asm strings (PTX needs no newlines): the source is embedded in a raw Python string.
  const ss = ssN / 2;
  const rs = rsN / 2;
  return `// Generic-proxy writes (cp.async, st.shared) made visible to wgmma's async proxy; before the barrier.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
// Matrix descriptor of a 128-byte-swizzled operand: start, LBO, SBO in 16-byte units, swizzle mode 1.
__device__ __forceinline__ unsigned long long wgmma_desc(unsigned addr, unsigned lbo, unsigned sbo) {
  return (unsigned long long)((addr & 0x3FFFF) >> 4) | ((unsigned long long)(lbo >> 4) << 16) |
         ((unsigned long long)(sbo >> 4) << 32) | (1ull << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(N) : "memory"); }
// Keeps the compiler from moving accumulator reads or writes across the asynchronous wgmma.
template <int TILES> __device__ __forceinline__ void fence_operands(float (&d)[TILES][4]) {
  #pragma unroll
  for (int j = 0; j < TILES; ++j) asm volatile("" : "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3]) :: "memory");
}
// d (64×${ssN}, f32) = a·b, then d += a·b: a, b K-major in shared memory. The first k-step writes d
// without reading it ("=f"), so S is dead from P·V until the next tile (fewer live registers).
__device__ __forceinline__ void wgmma_ss_n${ssN}_init(float (&d)[${ssN / 8}][4], unsigned long long a, unsigned long long b) {
  asm volatile(
      "{ .reg .pred p; setp.ne.b32 p, %${ss + 2}, 0; "
      "wgmma.mma_async.sync.aligned.m64n${ssN}k16.f32.${dtype}.${dtype} {${regList(0, ss)}}, %${ss}, %${ss + 1}, p, 1, 1, 0, 0; }"
      : ${acc(ssN).replaceAll('"+f"', '"=f"')}
      : "l"(a), "l"(b), "r"(0));
}
__device__ __forceinline__ void wgmma_ss_n${ssN}(float (&d)[${ssN / 8}][4], unsigned long long a, unsigned long long b) {
  asm volatile(
      "{ .reg .pred p; setp.ne.b32 p, %${ss + 2}, 0; "
      "wgmma.mma_async.sync.aligned.m64n${ssN}k16.f32.${dtype}.${dtype} {${regList(0, ss)}}, %${ss}, %${ss + 1}, p, 1, 1, 0, 0; }"
      : ${acc(ssN)}
      : "l"(a), "l"(b), "r"(1));
}
// d (64×${rsN}, f32) += a·b: a's fragments in registers (the mma.sync m16n8k16 A layout per warp), b MN-major in shared memory.
__device__ __forceinline__ void wgmma_rs_n${rsN}(float (&d)[${rsN / 8}][4], const unsigned (&a)[4], unsigned long long b) {
  asm volatile(
      "{ .reg .pred p; setp.ne.b32 p, %${rs + 5}, 0; "
      "wgmma.mma_async.sync.aligned.m64n${rsN}k16.f32.${dtype}.${dtype} {${regList(0, rs)}}, {%${rs}, %${rs + 1}, %${rs + 2}, %${rs + 3}}, %${rs + 4}, p, 1, 1, 1; } "
      : ${acc(rsN)}
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}`;
}

/**
 * The warp-specialized wgmma kernel's hand-over primitives: mbarriers in shared memory (init, arrive
 * with release semantics, a spin on a phase's parity with acquire semantics) and the register
 * reallocation between the producer and the compute warpgroups.
 */
/** How long (ns) a warp waiting on an mbarrier may be suspended before it checks again: long, since it wakes when the phase completes. */
const MBAR_SUSPEND_NS = 1_000_000;

export function warpSpecializationPrelude(): string {
  return `__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];" :: "r"(bar) : "memory");
}
// Returns once the phase of the given parity has completed (the barrier has moved past it). The
// suspend-time hint lets the waiting warp sleep until then instead of spinning: a spinning warp takes
// issue slots from the compute warps on its scheduler.
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
  unsigned done;
  do {
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%1], %2, %3; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done) : "r"(bar), "r"(parity), "n"(${MBAR_SUSPEND_NS}) : "memory");
  } while (!done);
}
template <int REGS> __device__ __forceinline__ void setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" :: "n"(REGS)); }
template <int REGS> __device__ __forceinline__ void setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" :: "n"(REGS)); }`;
}

/**
 * How the launchers encode a tensor map (cuTensorMapEncodeTiled, cuda.h's enum values) over a
 * [batch, heads, rows, dim] tensor, dims innermost first: a box of one swizzle row (64 elements) ×
 * the tile's rows, no interleave, the 128-byte swizzle the wgmma descriptors read, L2 promotion of
 * 128 bytes, zero fill out of bounds. The C++ launcher and the Python module both render it.
 */
export const TMA_MAP = {
  bytes: 128,
  align: 64,
  rank: 4,
  boxColumns: WGMMA_DIM_ALIGN,
  dataType: { f16: 6, bf16: 9 },
  interleave: 0,
  swizzle: 3,
  l2Promotion: 2,
  oobFill: 0,
} as const;

/** The encoder's arguments after the box's element strides: interleave, swizzle, L2 promotion, fill. */
export const tmaModeArgs = () => [TMA_MAP.interleave, TMA_MAP.swizzle, TMA_MAP.l2Promotion, TMA_MAP.oobFill].join(", ");

/**
 * The TMA-loading kernel's copy primitives: the tensor maps it takes as a kernel parameter (q, k, v:
 * CUtensorMap's opaque bytes each, encoded as TMA_MAP says), an mbarrier arrival that also expects
 * the bytes a copy will deliver, and one box copy.
 */
export function tmaPrelude(): string {
  return `struct __align__(${TMA_MAP.align}) FlexTmaMap { unsigned long long opaque[${TMA_MAP.bytes / 8}]; };
struct FlexTmaMaps { FlexTmaMap q, k, v; };
// The barriers' initialization made visible to the copy engine (the async proxy) before a copy signals one.
__device__ __forceinline__ void fence_mbarrier_init() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }
// Arrive on the barrier and raise the bytes its phase waits for: the phase completes once they landed.
__device__ __forceinline__ void mbar_expect_tx(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(bytes) : "memory");
}
// Copy the box at (column, row, head, batch) of the map's tensor to shared dst; the barrier counts its bytes.
__device__ __forceinline__ void tma_load(unsigned dst, const FlexTmaMap* map, int column, int row, int head, int batch, unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];"
      :: "r"(dst), "l"(reinterpret_cast<unsigned long long>(map)), "r"(column), "r"(row), "r"(head), "r"(batch), "r"(bar)
      : "memory");
}
// Copy ROWS rows from row0 of a [.., DIM] tensor into a swizzled tile: one box per ${TMA_MAP.boxColumns}-column slab.
template <int ROWS, int DIM>
__device__ __forceinline__ void tma_load_tile(unsigned dst, const FlexTmaMap* map, int row0, int head, int batch, unsigned bar) {
  #pragma unroll
  for (int s = 0; s < DIM / ${TMA_MAP.boxColumns}; ++s) {
    tma_load(dst + s * ROWS * ${SWIZZLE_ROW_BYTES}, map, s * ${TMA_MAP.boxColumns}, row0, head, batch, bar);
  }
}`;
}
