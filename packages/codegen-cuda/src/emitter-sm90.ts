/**
 * The wgmma emitter (f16/bf16, sm_90a: H100/H200). A thread block of BLOCK_M / 64 warpgroups owns
 * BLOCK_M query rows, 64 per warpgroup and 16 per warp. Per kv tile, each warpgroup computes
 * S = Q·Kᵀ with wgmma m64n<BLOCK_N>k16 (Q and K both read from shared memory through descriptors)
 * and O += P·V with wgmma m64n<DV padded>k16 (P from registers, V from shared memory, transposed).
 *
 * Without a producer (below), the K/V pipeline is the mma kernel's ring of STAGES stages filled by
 * cp.async, K and V as separate groups, but with one wait and barrier per tile (for K and V together)
 * — preceded by a proxy fence, since wgmma reads shared memory through the async proxy. Tiles are
 * stored in the 128-byte swizzle (wgmma.ts).
 *
 * With options.overlap, S of tile t + 1 is issued (into s_next) right after tile t's S is taken,
 * before tile t's mods and softmax: the tensor cores work while the warpgroup does the softmax.
 * The next K must then be resident a tile early (numStages ≥ 3); waiting for it covers this tile's V. Every wgmma is waited for by the
 * end of its tile's iteration (with P·V's wait): a wgmma in flight across the loops' back edges makes
 * the compiler copy its registers there, which ptxas answers by serializing every wgmma. So by the
 * barrier in tile t's qk step all warpgroups are done with tile t − 1's stage, which is refilled there.
 *
 * wgmma's f32 accumulator fragments are, per warp and 8-column tile, exactly mma.sync m16n8's, and
 * its register A fragments are mma.sync m16n8k16's: so S and O are held as s_acc[1][N_TILES][4] /
 * o_acc[1][D_TILES][4] (M_TILES = 1) and the mods, bounds, online softmax, P packing and epilogue
 * are the mma emitter's, with their (q, kv) index of every element.
 *
 * With options.warpSpecialized, a producer warpgroup (the block's last 128 threads) does all the
 * loading: Q, then each kv tile into its stage once the compute warps have released it (the
 * stage's "empty" mbarrier), handing it over through the stage's "full" mbarrier after its own
 * cp.async groups completed and a proxy fence made them visible to wgmma. The compute warpgroups
 * wait only on those barriers, each at its own pace: no block-wide barrier after the setup.
 * With options.tma as well, the producer's first thread alone copies each tile with one tensor-map
 * copy per 64-column slab, and the stage's full barrier completes when the tile's bytes have landed.
 */
import type { KernelSpec } from "@flexattn/template";
import { CudaMmaEmitter, copyChunk, copyKvTile } from "./emitter.js";
import {
  CONSUMER_REGISTERS, PRODUCER_REGISTERS, PRODUCER_THREADS, TMA_PRODUCER_REGISTERS, WGMMA_ROWS, WGMMA_SMEM_ALIGN,
  cudaSharedBytes, tmaConsumerRegisters, wgmmaPaddedDim,
} from "./options.js";
import {
  SWIZZLE_PERIOD_BYTES, SWIZZLE_ROW_BYTES, kMajorStepOffset, mnMajorStepOffset, swizzledChunkOffsetCpp, tmaPrelude, warpSpecializationPrelude,
  wgmmaPrelude,
} from "./wgmma.js";

const indent = (code: string, n = 1) => code.split("\n").map((l) => (l ? "  ".repeat(n) + l : l)).join("\n");

export class CudaWgmmaEmitter extends CudaMmaEmitter {
  readonly qkPadded: number;
  readonly vPadded: number;

  constructor(spec: KernelSpec) {
    super(spec);
    this.qkPadded = wgmmaPaddedDim(spec.qkHeadDim);
    this.vPadded = wgmmaPaddedDim(spec.vHeadDim);
  }

  /**
   * Wait until kv tile `tile` is resident and visible to wgmma. Warp-specialized: its stage's full
   * barrier (skipped past the last tile: nothing will fill it). Otherwise: this thread's cp.async
   * groups up to the tile's, leaving `pending` younger groups in flight, a proxy fence and a block
   * barrier; then `refill` (the stage every warp has just left).
   */
  private awaitTile(tile: string, pending: string, refill: string | null): string {
    if (this.options.warpSpecialized) {
      return `if (${tile} < total_tiles) mbar_wait(full_bar + ((${tile}) % STAGES) * 8, ((${tile}) / STAGES) & 1);`;
    }
    return `cp_async_wait<${pending}>();
fence_proxy_async();
__syncthreads();${refill ? `\n${refill}` : ""}`;
  }

  /** The wgmma calls of S = Q·Kᵀ into `dst` for the K tile at `kDesc`. */
  private qkSteps(dst: string, kDesc: string): string[] {
    return Array.from({ length: this.qkPadded / 16 }, (_, kk) => {
      const q = kMajorStepOffset(this.spec.config.blockM, kk) >> 4;
      const k = kMajorStepOffset(this.spec.config.blockN, kk) >> 4;
      return `wgmma_ss_n${this.spec.config.blockN}${kk === 0 ? "_init" : ""}(${dst}, q_desc + ${q}, ${kDesc} + ${k});`;
    });
  }

  /** Issue S of kv tile `tile` (resident in its stage) into `dst`, asynchronously. */
  private issueQk(dst: string, tile: string): string {
    return `{
  // K (B of Q·Kᵀ) is K-major like Q; each k-step's descriptor is the tile's plus an immediate.
  const unsigned long long k_desc = wgmma_desc(kv_smem + ((${tile}) % STAGES) * STAGE_BYTES, 16, ${SWIZZLE_PERIOD_BYTES});
  wgmma_fence();
${indent(this.qkSteps(dst, "k_desc").join("\n"))}
  wgmma_commit();
}`;
  }

  override initState(): string {
    if (!this.options.overlap) return super.initState();
    return `${super.initState()}
// S of the next tile, computed a tile ahead: tile 0's here (its K is resident once its group is done).
// The issues are unconditional (past the last tile one reads a stage nobody writes and is discarded):
// a wgmma under a branch would make the compiler copy its in-flight registers at the join.
float s_next[N_TILES][4];
${this.awaitTile("0", "2 * STAGES - 3", null)}
${this.issueQk("s_next", "0")}
wgmma_wait<0>();
fence_operands(s_next);`;
  }


  /** One 16-row tile per warp: a warpgroup's 64 rows are its four warps'. */
  protected override get mTiles(): number {
    return 1;
  }

  override prelude(): string {
    const s = this.spec;
    const c = s.config;
    const vecDims = s.qkHeadDim % 8 === 0 && s.vHeadDim % 8 === 0;
    return `${this.shapeConstants(this.mTiles, "16 rows per warp, 64 per warpgroup")}
constexpr int DQK_PAD = ${this.qkPadded};    // head dims padded to whole 128-byte swizzle rows
constexpr int DV_PAD = ${this.vPadded};
constexpr int N_TILES = BLOCK_N / 8;          // 8-column accumulator tiles of S
constexpr int D_TILES = DV_PAD / 8;           // 8-column accumulator tiles of O
constexpr int PV_STEPS = BLOCK_N / 16;
${this.tileConstants("DQK_PAD * 2", "DV_PAD * 2")}
// The tiles, plus slack to round the base up to the swizzle's ${SWIZZLE_PERIOD_BYTES}-byte period${!this.options.warpSpecialized ? "" : this.options.blocksPerSm === 2 ? " and the mbarriers (two blocks share the SM)" : ", the mbarriers, and\n// padding to over half an SM's shared memory (one block per SM, for whose register pool setmaxnreg's split is made)"}.
constexpr int SMEM_BYTES = ${cudaSharedBytes(s)};
static_assert(SMEM_BYTES >= Q_TILE_BYTES + STAGES * STAGE_BYTES + ${WGMMA_SMEM_ALIGN}${this.options.warpSpecialized ? " + 8 * (2 * STAGES + 1)" : ""}, "SMEM_BYTES holds the tiles");
${this.options.tma ? "" : `constexpr bool VEC_DIMS = ${vecDims};\n`}static_assert(BLOCK_M % ${WGMMA_ROWS} == 0 && BLOCK_N % 16 == 0, "wgmma tiles");
${this.copyConstants()}

${wgmmaPrelude(s.dtype as "f16" | "bf16", c.blockN, this.vPadded)}
${this.options.warpSpecialized ? `\n${warpSpecializationPrelude()}\n` : ""}${this.options.tma ? `\n${tmaPrelude()}` : `
${this.swizzledCopy("qk", "DQK_PAD", "DQK")}

${this.swizzledCopy("v", "DV_PAD", "DV")}`}`;
  }

  /** Who copies the tiles: every thread, the producer warpgroup, or its first thread issuing TMA copies. */
  private copyConstants(): string {
    if (this.options.tma) {
      return `// The producer warpgroup's first thread (thread THREADS) copies every tile with TMA; the phase of a stage's
// full barrier completes when the tile's bytes have landed, so each tile is handed over as soon as it is in.
constexpr int COPY_BASE = THREADS;`;
    }
    if (!this.options.warpSpecialized) return "constexpr int COPY_THREADS = THREADS;  // every thread copies";
    return `// The producer warpgroup (threads THREADS …) copies the tiles. It hands tile t over once it has issued
// tile t + HANDOVER_LAG too, keeping HANDOVER_LAG + 1 tiles in flight; issuing that later tile waits for
// its stage, so the lag leaves the compute warps a tile's time of slack: STAGES - 2 (STAGES - 3 when
// they read the next K a tile early, overlap).
constexpr int COPY_THREADS = ${PRODUCER_THREADS};
constexpr int COPY_BASE = THREADS;
constexpr int HANDOVER_LAG = STAGES - ${this.options.overlap ? 3 : 2} > 0 ? STAGES - ${this.options.overlap ? 3 : 2} : 0;`;
  }

  /** Copy ROWS rows of a head-dim tile into the 128-byte-swizzled layout (zero rows past rows_left and columns past dim). */
  private swizzledCopy(name: "qk" | "v", padded: string, dim: string): string {
    // The copier's index: threadIdx.x itself when every thread copies (a local copy of it costs the
    // register-bound kernel spills).
    const tid = this.options.warpSpecialized ? "(threadIdx.x - COPY_BASE)" : "threadIdx.x";
    return `template <int ROWS>
__device__ __forceinline__ void copy_${name}_tile(unsigned dst, const storage_t* src, long long row_stride, int rows_left, bool vec) {
  constexpr int CHUNKS = ${padded} / 8;
  constexpr int N = ROWS * CHUNKS;
  // When the threads cover whole rows, 8 (the swizzle period) at a time, each thread keeps one chunk
  // column: its shared offset is one base plus an immediate per step (fewer live address registers).
  constexpr int STEP_ROWS = COPY_THREADS / CHUNKS;
  constexpr bool PERIODIC = COPY_THREADS % CHUNKS == 0 && STEP_ROWS % 8 == 0;
  const int r0 = ${tid} / CHUNKS, c0 = ${tid} % CHUNKS;
  const unsigned to0 = dst + ${swizzledChunkOffsetCpp("ROWS", "r0", "c0")};
  ${this.options.warpSpecialized ? "#pragma unroll 1  // the producer's few registers hold one chunk's addresses at a time" : "#pragma unroll"}
  for (int i = 0; i < (N + COPY_THREADS - 1) / COPY_THREADS; ++i) {
    const int e = ${tid} + i * COPY_THREADS;
    if (N % COPY_THREADS != 0 && e >= N) break;
    const int r = PERIODIC ? r0 + i * STEP_ROWS : e / CHUNKS;
    const int cc = PERIODIC ? c0 : e % CHUNKS;
    const unsigned to = PERIODIC ? to0 + i * STEP_ROWS * ${SWIZZLE_ROW_BYTES} : dst + ${swizzledChunkOffsetCpp("ROWS", "r", "cc")};
${indent(copyChunk(dim), 2)}
  }
}`;
  }

  protected override sharedBase(): string {
    return `(smem_addr(smem) + ${WGMMA_SMEM_ALIGN - 1}u) & ~${WGMMA_SMEM_ALIGN - 1}u`;
  }

  protected override fragmentAddressing(): string {
    return `// This warpgroup's 64 rows of Q (A of Q·Kᵀ, K-major; LBO unused, 8-row groups ${SWIZZLE_PERIOD_BYTES} bytes apart).
const unsigned long long q_desc = wgmma_desc(q_smem + (warp >> 2) * ${WGMMA_ROWS * SWIZZLE_ROW_BYTES}, 16, ${SWIZZLE_PERIOD_BYTES});`;
  }

  override program(): string {
    if (!this.options.warpSpecialized) return super.program();
    // A full barrier's phase takes one arrival per copying thread (TMA: the one issuing thread, whose arrival also sets the bytes).
    const arrivals = this.options.tma ? "1" : "COPY_THREADS";
    return `${this.programSetup(!this.options.tma)}
// mbarriers after the K/V stages: full (filled by the producer) and empty (released by the compute warps) per stage, then Q's.
const unsigned full_bar = kv_smem + STAGES * STAGE_BYTES, empty_bar = full_bar + STAGES * 8, q_bar = empty_bar + STAGES * 8;
if (threadIdx.x == 0) {
  for (int s = 0; s < STAGES; ++s) {
    mbar_init(full_bar + s * 8, ${arrivals});
    mbar_init(empty_bar + s * 8, WARPS);
  }
  mbar_init(q_bar, ${arrivals});${this.options.tma ? "\n  fence_mbarrier_init();  // the initialized barriers are visible to the copy engine" : ""}
}
__syncthreads();  // the barriers are initialized; the last block-wide barrier
if (warp >= WARPS) {
${this.options.tma ? this.tmaProducer() : this.copyingProducer()}
  return;
}
setmaxnreg_inc<${this.options.tma ? tmaConsumerRegisters(this.options.blocksPerSm) : CONSUMER_REGISTERS}>();`;
  }

  /** The TMA producer: its first thread copies Q, then every kv tile into its stage once the compute warps have left it. */
  private tmaProducer(): string {
    return `  setmaxnreg_dec<${TMA_PRODUCER_REGISTERS}>();
  if (threadIdx.x == COPY_BASE) {
    mbar_expect_tx(q_bar, Q_TILE_BYTES);
    tma_load_tile<BLOCK_M, DQK_PAD>(q_smem, &tma_maps.q, m0, hq, b, q_bar);
    for (int t = 0; t < total_tiles; ++t) {
      if (t >= STAGES) mbar_wait(empty_bar + (t % STAGES) * 8, (t / STAGES - 1) & 1);
      const int n = tile_start(t);
      const unsigned stage = kv_smem + (t % STAGES) * STAGE_BYTES, full = full_bar + (t % STAGES) * 8;
      mbar_expect_tx(full, STAGE_BYTES);
      tma_load_tile<BLOCK_N, DQK_PAD>(stage, &tma_maps.k, n, hkv, b, full);
      tma_load_tile<BLOCK_N, DV_PAD>(stage + K_TILE_BYTES, &tma_maps.v, n, hkv, b, full);
    }
  }`;
  }

  /** The copying producer: its 128 threads copy Q, then every kv tile, each into its stage once the compute warps have left it. */
  private copyingProducer(): string {
    return `  // The producer: Q, then every kv tile, each into its stage once the compute warps have left it.
  setmaxnreg_dec<${PRODUCER_REGISTERS}>();
  copy_qk_tile<BLOCK_M>(q_smem, q_base, stride_q_s, q_len - m0, vec);
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async();  // this thread's copies are visible to wgmma (the async proxy) before it arrives
  mbar_arrive(q_bar);
  for (int t = 0; t < total_tiles; ++t) {
    if (t >= STAGES) mbar_wait(empty_bar + (t % STAGES) * 8, (t / STAGES - 1) & 1);
${indent(copyKvTile("t"), 2)}
    cp_async_commit();
    if (t >= HANDOVER_LAG) {
      cp_async_wait<HANDOVER_LAG>();
      fence_proxy_async();
      mbar_arrive(full_bar + ((t - HANDOVER_LAG) % STAGES) * 8);
    }
  }
  cp_async_wait<0>();
  fence_proxy_async();
  for (int t = total_tiles > HANDOVER_LAG ? total_tiles - HANDOVER_LAG : 0; t < total_tiles; ++t) mbar_arrive(full_bar + (t % STAGES) * 8);`;
  }

  /** Warp-specialized compute threads issue no copies of their own. */
  protected override drainCopies(): string {
    return this.options.warpSpecialized ? "" : super.drainCopies();
  }

  override loadQ(): string {
    if (this.options.warpSpecialized) return "mbar_wait(q_bar, 0);  // Q is resident and visible to wgmma; it stays in shared memory";
    return `cp_async_wait<2 * (STAGES - 1)>();
fence_proxy_async();
__syncthreads();  // Q is visible to wgmma; it stays in shared memory`;
  }

  override loadK(): string {
    // With overlap, K of tile t was waited for a tile ago (in qk of tile t − 1, or before the loop).
    if (this.options.overlap) return "";
    // K and V of tile t at once (both were issued STAGES − 1 tiles ago): one wait per tile. Past the
    // block barrier every warp is past tile t - 1, whose stage is refilled.
    return this.awaitTile("t", "2 * STAGES - 4", "issue_tile(t + STAGES - 1);");
  }

  override qk(): string {
    const scale = `#pragma unroll
for (int j = 0; j < N_TILES; ++j) {
  #pragma unroll
  for (int e = 0; e < 4; ++e) s_acc[0][j][e] *= qk_scale;
}`;
    if (this.options.overlap) {
      return `// S of tile t was computed a tile ago (and waited for with P·V of tile t - 1).
#pragma unroll
for (int j = 0; j < N_TILES; ++j) {
  #pragma unroll
  for (int e = 0; e < 4; ++e) s_acc[0][j][e] = s_next[j][e] * qk_scale;
}
// K of tile t + 1 resident (only V of t + 1 may be pending); every warpgroup is past tile t - 1's wgmma.
// S of tile t + 1 then runs on the tensor cores during this tile's mods and softmax.
${this.awaitTile("t + 1", "2 * STAGES - 5", "issue_tile(t + STAGES - 1);")}
${this.issueQk("s_next", "t + 1")}`;
    }
    return `${this.issueQk("s_acc[0]", "t")}
wgmma_wait<0>();
fence_operands(s_acc[0]);
${scale}`;
  }

  override loadV(): string {
    // V of tile t was waited for with K (loadK), or with overlap with K of tile t + 1 (cp.async groups
    // complete in order), and made visible by that barrier.
    return "// V of tile t: resident and visible since this tile's barrier";
  }

  override accumulate(): string {
    const steps = Array.from({ length: this.spec.config.blockN / 16 }, (_, kk) =>
      `wgmma_rs_n${this.vPadded}(o_acc[0], p_frag[${kk}], v_desc + ${mnMajorStepOffset(kk) >> 4});`);
    return `{
  // P's A fragments for keys 16·kk … 16·kk + 15: this lane's S accumulators of tiles 2kk, 2kk + 1.
  unsigned p_frag[PV_STEPS][4];
  #pragma unroll
  for (int kk = 0; kk < PV_STEPS; ++kk) {
    const float (&s)[N_TILES][4] = s_acc[0];
    p_frag[kk][0] = pack2(s[2 * kk][0], s[2 * kk][1]);
    p_frag[kk][1] = pack2(s[2 * kk][2], s[2 * kk][3]);
    p_frag[kk][2] = pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    p_frag[kk][3] = pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
  }
  // V (B of P·V) is MN-major (transposed): 64-column slabs BLOCK_N·${SWIZZLE_ROW_BYTES} bytes apart (LBO), 8-row groups ${SWIZZLE_PERIOD_BYTES} (SBO).
  const unsigned long long v_desc = wgmma_desc(stage + K_TILE_BYTES, BLOCK_N * ${SWIZZLE_ROW_BYTES}, ${SWIZZLE_PERIOD_BYTES});
  wgmma_fence();
${indent(steps.join("\n"))}
  wgmma_commit();
  wgmma_wait<0>();${this.options.overlap ? "  // and S of the next tile" : ""}
  fence_operands(o_acc[0]);${this.options.overlap ? "\n  fence_operands(s_next);" : ""}${this.options.warpSpecialized ? "\n  if (lane == 0) mbar_arrive(empty_bar + (t % STAGES) * 8);  // this warp is done with the stage" : ""}
}`;
  }
}
