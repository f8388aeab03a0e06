/**
 * The tensor-core CUDA emitter (f16/bf16, sm_80+): FlashAttention-2's forward with one method per
 * template step. A thread block owns BLOCK_M = 16·M_TILES·WARPS query rows, 16·M_TILES per warp (each
 * K/V fragment read from shared memory serves M_TILES row tiles); Q·Kᵀ and P·V are
 * mma.sync m16n8k16 with f32 accumulators; K and V tiles stream through a ring of STAGES
 * shared-memory stages filled by cp.async. The kv tiles of the partial blocks and then of the full
 * blocks form one sequence t = 0, 1, …, so the pipeline runs on across the two block loops.
 *
 * Fragments (PTX ISA, mma.m16n8k16): lane l holds the accumulator elements e = 0..3 of an 8-column
 * tile j at row l/4 + 8·(e/2) and column 8j + 2·(l%4) + e%2; the mods are rendered per element with
 * those (q, kv) indices. Each thread thus owns two query rows; their max and sum reduce over the 4
 * lanes of a quad. The S accumulators become P's A fragments in registers (no shared-memory trip).
 *
 * Pipeline, for tile t (stage t % STAGES), with K and V as separate cp.async groups:
 *   wait K[t]; barrier (K[t] visible; every warp is past tile t−1, so its stage is free);
 *   issue tile t+STAGES−1 into that stage; S = Q·K[t]ᵀ; mods; online softmax;
 *   wait V[t]; barrier; O += P·V[t].
 */
import { type TileMod, renderTileMod } from "@flexattn/ir";
import { type BlockKind, type KernelSpec, type TemplateEmitter, capturedBuffers } from "@flexattn/template";
import { type CudaOptions, MMA_TILE, RESCALE_SLACK_LOG2, cudaOptions } from "./options.js";
import { type MmaLayout, NEG_INF, mmaLayout } from "./ptx.js";
import { cudaRenderer } from "./renderer.js";

const indent = (code: string, n = 1) => code.split("\n").map((l) => (l ? "  ".repeat(n) + l : l)).join("\n");

/** The accumulator element of this lane's row i and tile column c (see CudaMmaEmitter.mod). */
const scoreElement = (i: number, c: number) => `s_acc[${i >> 1}][${c >> 1}][${2 * (i & 1) + (c & 1)}]`;
// Positions are expressions, not variables: one add to recompute, while a variable kept across the kv
// loop costs a register the tight configs do not have.
const plus = (k: number) => (k ? ` + ${k}` : "");
const queryPosition = (i: number) => `(row0${plus(16 * (i >> 1) + 8 * (i & 1))} + q_offset)`;
const keyPosition = (c: number) => `(n0${plus(8 * (c >> 1) + (c & 1))} + ((lane & 3) << 1) + kv_offset)`;

/**
 * The copies of kv tile `t` into its stage (K, then V, with `between` in between): its first key, its
 * stage, and one copy_*_tile call per operand. Shared by the block-wide loader and the producer warpgroup.
 */
export function copyKvTile(t: string, between = ""): string {
  return `const int n = tile_start(${t});
const unsigned stage = kv_smem + (${t} % STAGES) * STAGE_BYTES;
copy_qk_tile<BLOCK_N>(stage, k_base + (long long)n * stride_k_s, stride_k_s, kv_len - n, vec);
${between}copy_v_tile<BLOCK_N>(stage + K_TILE_BYTES, v_base + (long long)n * stride_v_s, stride_v_s, kv_len - n, vec);`;
}

/**
 * Copy 16-byte chunk `cc` of tile row `r` from global `src` (rows `row_stride` apart) to shared
 * address `to`, zero-filling rows ≥ rows_left and columns past dim: 16-byte cp.async when `vec`
 * (aligned rows), else element loads and one 16-byte store. Shared by the tensor-core kernels' tile copies.
 */
export function copyChunk(dim: string): string {
  return `const storage_t* from = src + r * row_stride + cc * 8;
if (VEC_DIMS && vec) {
  const bool ok = r < rows_left && cc * 8 < ${dim};
  cp_async_16(to, ok ? from : src, ok ? 16 : 0);
} else {
  unsigned w[4];
  #pragma unroll
  for (int k = 0; k < 4; ++k) {
    const bool lo = r < rows_left && cc * 8 + 2 * k < ${dim}, hi = r < rows_left && cc * 8 + 2 * k + 1 < ${dim};
    w[k] = (lo ? (unsigned)from[2 * k] : 0u) | ((hi ? (unsigned)from[2 * k + 1] : 0u) << 16);
  }
  st_shared_16(to, w[0], w[1], w[2], w[3]);
}`;
}

export class CudaMmaEmitter implements TemplateEmitter<string> {
  readonly qkLayout: MmaLayout;
  readonly vLayout: MmaLayout;
  /** Q's fragments stay in registers up to this padded head dim × row tiles; more are re-read from shared memory. */
  static readonly Q_IN_REGISTERS_MAX_DIM = 128;

  protected readonly options: CudaOptions;

  constructor(protected readonly spec: KernelSpec) {
    this.options = cudaOptions(spec.config, spec.dtype);
    this.qkLayout = mmaLayout(spec.qkHeadDim);
    this.vLayout = mmaLayout(spec.vHeadDim);
  }

  /** 16-row mma tiles per warp (the wgmma kernel's warp owns one). */
  protected get mTiles(): number {
    return this.spec.config.blockM / (MMA_TILE * this.spec.config.numWarps);
  }

  private get qInRegisters(): boolean {
    return this.qkLayout.chunks * 8 * this.mTiles <= CudaMmaEmitter.Q_IN_REGISTERS_MAX_DIM;
  }

  /** Whether scores are scaled by scale·log2e at once (no score mod sees them in natural units). */
  protected get scaledToLog2(): boolean {
    return !this.spec.score;
  }

  /** Compile-time constants and the tile copy helpers, placed before the kernel. */
  prelude(): string {
    const s = this.spec;
    const c = s.config;
    // 16-byte copies need whole chunks of data per row; other head dims copy element by element.
    const vecDims = s.qkHeadDim % 8 === 0 && s.vHeadDim % 8 === 0;
    return `${this.shapeConstants(this.mTiles, "16-row mma tiles per warp")}
constexpr int QK_CHUNKS = ${this.qkLayout.chunks};  // 16-byte chunks per padded row
constexpr int V_CHUNKS = ${this.vLayout.chunks};
constexpr int K_STEPS = QK_CHUNKS / 2;        // mma k-steps of Q·Kᵀ
constexpr int N_TILES = BLOCK_N / 8;          // 8-column accumulator tiles of S
constexpr int D_TILES = V_CHUNKS;             // 8-column accumulator tiles of O
constexpr int PV_STEPS = BLOCK_N / ${MMA_TILE};
${this.tileConstants(`${this.qkLayout.rowBytes}`, `${this.vLayout.rowBytes}`)}
constexpr int SMEM_BYTES = Q_TILE_BYTES + STAGES * STAGE_BYTES;
constexpr bool VEC_DIMS = ${vecDims};
// ldmatrix addressing (see MmaLayout): per lane, K_BASES / V_BASES base offsets, the rest immediates.
constexpr int K_BASES = ${Math.min(this.qkLayout.chunkPeriod, this.qkLayout.chunks) / 2};
constexpr int V_BASES = ${Math.min(this.vLayout.chunkPeriod, this.vLayout.chunks) / 2};
constexpr int QK_ROW_UNITS = ${this.qkLayout.rowBytes / 16};
constexpr int V_ROW_UNITS = ${this.vLayout.rowBytes / 16};

__device__ __forceinline__ unsigned qk_unit(int r, int c) { return ${this.qkLayout.unit("r", "c")}; }
__device__ __forceinline__ unsigned v_unit(int r, int c) { return ${this.vLayout.unit("r", "c")}; }

${this.copyHelper("qk", "QK_CHUNKS", "DQK")}

${this.copyHelper("v", "V_CHUNKS", "DV")}`;
  }

  /** The block's shape: warps, 16-row tiles per warp, threads, tile, stages and head dims. */
  protected shapeConstants(mTiles: number, note: string): string {
    const s = this.spec;
    const c = s.config;
    return `constexpr int WARPS = ${c.numWarps};
constexpr int M_TILES = ${mTiles};  // ${note}
constexpr int THREADS = 32 * WARPS;
constexpr int BLOCK_M = ${c.blockM};
constexpr int BLOCK_N = ${c.blockN};
constexpr int STAGES = ${c.numStages};
constexpr int DQK = ${s.qkHeadDim};
constexpr int DV = ${s.vHeadDim};`;
  }

  /** kv tiles per BlockMask block and the shared tiles' sizes, from the bytes of a Q/K row and of a V row. */
  protected tileConstants(qkRowBytes: string, vRowBytes: string): string {
    return `constexpr int SPARSE_Q = ${this.spec.sparseBlock[0]};
constexpr int SPARSE_KV = ${this.spec.sparseBlock[1]};
constexpr int TILES_PER_BLOCK = SPARSE_KV / BLOCK_N;
constexpr int Q_TILE_BYTES = BLOCK_M * ${qkRowBytes};
constexpr int K_TILE_BYTES = BLOCK_N * ${qkRowBytes};
constexpr int V_TILE_BYTES = BLOCK_N * ${vRowBytes};
constexpr int STAGE_BYTES = K_TILE_BYTES + V_TILE_BYTES;`;
  }

  /**
   * Copy ROWS rows of a head-dim tile into its shared layout, zero-filling rows ≥ rows_left and the
   * padding past dim. vec: 16-byte cp.async (aligned rows); else element loads and 16-byte stores.
   */
  private copyHelper(name: "qk" | "v", chunks: string, dim: string): string {
    const layout = name === "qk" ? this.qkLayout : this.vLayout;
    return `template <int ROWS>
__device__ __forceinline__ void copy_${name}_tile(unsigned dst, const storage_t* src, long long row_stride, int rows_left, bool vec) {
  constexpr int N = ROWS * ${chunks};
  // When the threads cover whole rows, a multiple of the layout's row period at a time, each thread keeps
  // one chunk column: its shared offset is one base plus an immediate per step.
  constexpr int STEP_ROWS = THREADS / ${chunks};
  constexpr bool PERIODIC = THREADS % ${chunks} == 0 && STEP_ROWS % ${layout.rowPeriod} == 0;
  const int r0 = threadIdx.x / ${chunks}, c = threadIdx.x % ${chunks};
  const unsigned to0 = dst + ${name}_unit(r0, c) * 16;
  #pragma unroll
  for (int i = 0; i < (N + THREADS - 1) / THREADS; ++i) {
    const int e = threadIdx.x + i * THREADS;
    if (N % THREADS != 0 && e >= N) break;
    const int r = PERIODIC ? r0 + i * STEP_ROWS : e / ${chunks};
    const int cc = PERIODIC ? c : e % ${chunks};
    const unsigned to = PERIODIC ? to0 + i * STEP_ROWS * ${layout.rowBytes} : dst + ${name}_unit(r, cc) * 16;
${indent(copyChunk(dim), 2)}
  }
}`;
  }

  private tileMods?: { mask: TileMod | null; score: TileMod | null };

  /**
   * The mods over this thread's accumulator elements, loop-invariant nodes hoisted (ir's tile-mod).
   * Lane l owns rows i = 2·mt + r at row0 + 16·mt + 8·r and, per kv tile, columns c = 2·j + u at
   * n0 + 8·j + 2·(l % 4) + u; element e of 8-column tile j of row tile mt is (2·mt + e/2, 2·j + e%2).
   */
  protected mod(owner: "mask" | "score"): TileMod | null {
    this.tileMods ??= { mask: this.renderTile("mask"), score: this.renderTile("score") };
    return this.tileMods[owner];
  }

  private renderTile(owner: "mask" | "score"): TileMod | null {
    const graph = owner === "mask" ? this.spec.mask : this.spec.score;
    if (!graph) return null;
    const names = capturedBuffers(this.spec).filter((b) => b.owner === owner).map((b) => b.name);
    return renderTileMod(graph, owner === "mask" ? "mm" : "sm", 2 * this.mTiles, this.spec.config.blockN / 4, (i, c) =>
      cudaRenderer({ score: scoreElement(i, c), b: "b", h: "hq", q: queryPosition(i), kv: keyPosition(c) }, (slot) => names[slot],
        { approxTanh: this.options.approxTanh, reciprocalDivision: true }));
  }

  /** The mods' values fixed per head and query row, once before the kv loops. */
  protected hoistedRows(): string {
    const lines = [...(this.mod("mask")?.program ?? []), ...(this.mod("score")?.program ?? [])];
    return lines.length ? `\n// The mods' values fixed per head and query row.\n${lines.join("\n")}` : "";
  }

  /**
   * `mod` over every accumulator element of the tile, `assign(element, value)` storing each: per 8-column
   * tile j, the mod's per-key values, then its elements.
   */
  private applyMod(owner: "mask" | "score", assign: (element: string, value: string) => string): string {
    const mod = this.mod(owner)!;
    const lines: string[] = [];
    for (let j = 0; j < this.spec.config.blockN / 8; j++) {
      lines.push(...mod.column(2 * j), ...mod.column(2 * j + 1));
      for (let i = 0; i < 2 * this.mTiles; i++) {
        for (const c of [2 * j, 2 * j + 1]) {
          const { statements, result } = mod.element(i, c);
          const body = [...statements, assign(scoreElement(i, c), result)];
          lines.push(statements.length ? `{\n${indent(body.join("\n"))}\n}` : body[0]);
        }
      }
    }
    return `{\n${indent(lines.join("\n"))}\n}`;
  }

  /** The shared address of the Q tile, where the tiles start. */
  protected sharedBase(): string {
    return "smem_addr(smem)";
  }

  program(): string {
    return `${this.programSetup()}
${this.issueTileHelper()}
copy_qk_tile<BLOCK_M>(q_smem, q_base, stride_q_s, q_len - m0, vec);
cp_async_commit();
#pragma unroll
for (int t = 0; t < STAGES - 1; ++t) issue_tile(t);`;
  }

  /**
   * The block's rows, head, tables, the kv tile sequence (tile_start) and, unless the tiles come
   * through tensor maps (`globalCopies` false), the global bases the threads copy from.
   */
  protected programSetup(globalCopies = true): string {
    return `extern __shared__ __align__(128) unsigned char smem[];
const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
const unsigned q_smem = ${this.sharedBase()};
// The last query tiles first: under causal-like masks they hold the most kv tiles.
const int m_block = gridDim.x - 1 - blockIdx.x, hq = blockIdx.y, b = blockIdx.z;
const int hkv = hq / (q_heads / kv_heads);
const int m0 = m_block * BLOCK_M;
const long long table_row = ((long long)(b % sparse_b) * sparse_h + (hq % sparse_h)) * sparse_q_blocks + m0 / SPARSE_Q;
${globalCopies ? `${this.globalBases()}\n` : ""}const unsigned kv_smem = q_smem + Q_TILE_BYTES;  // stage s: K at s·STAGE_BYTES, V after it
const int* part_ids = kv_indices + table_row * sparse_kv_blocks;
const int* full_ids = full_kv_indices + table_row * sparse_kv_blocks;
const int part_tiles = kv_num_blocks[table_row] * TILES_PER_BLOCK;
const int total_tiles = part_tiles + full_kv_num_blocks[table_row] * TILES_PER_BLOCK;
${globalCopies ? `${this.vectorCopies()}\n` : ""}// First key of kv tile t: the partial blocks' tiles, then the full blocks'.
auto tile_start = [&](int t) {
  const bool partial = t < part_tiles;
  const int u = partial ? t : t - part_tiles;
  return (partial ? part_ids : full_ids)[u / TILES_PER_BLOCK] * SPARSE_KV + (u % TILES_PER_BLOCK) * BLOCK_N;
};`;
  }

  /** This block's Q rows and its kv head's K and V in global memory. */
  private globalBases(): string {
    return `const storage_t* q_base = q + (long long)b * stride_q_b + (long long)hq * stride_q_h + (long long)m0 * stride_q_s;
const storage_t* k_base = k + (long long)b * stride_k_b + (long long)hkv * stride_k_h;
const storage_t* v_base = v + (long long)b * stride_v_b + (long long)hkv * stride_v_h;`;
  }

  private vectorCopies(): string {
    return `// 16-byte copies need 16-byte-aligned rows; otherwise the tiles are copied element by element.
const bool vec = VEC_DIMS && ((reinterpret_cast<unsigned long long>(q) | reinterpret_cast<unsigned long long>(k) |
                               reinterpret_cast<unsigned long long>(v)) & 15) == 0 &&
                 ((stride_q_b | stride_q_h | stride_q_s | stride_k_b | stride_k_h | stride_k_s |
                   stride_v_b | stride_v_h | stride_v_s) & 7) == 0;`;
  }

  /** issue_tile(t): the cp.async loads of kv tile t into its stage, by every thread of the block. */
  protected issueTileHelper(): string {
    return `// Load kv tile t into its stage as two cp.async groups (K, then V); past the end, two empty groups
// keep the group count that the waits rely on.
auto issue_tile = [&](int t) {
  if (t < total_tiles) {
${indent(copyKvTile("t", "cp_async_commit();\n"), 2)}
    cp_async_commit();
  } else {
    cp_async_commit();
    cp_async_commit();
  }
};`;
  }

  loadQ(): string {
    const frag = `q_smem + qk_unit((warp * M_TILES + mt) * 16 + (lane & 15), kk * 2 + (lane >> 4)) * 16`;
    const registers = this.qInRegisters
      ? `// Q's A fragments stay in registers for the whole kv loop.
unsigned q_frag[M_TILES][K_STEPS][4];
#pragma unroll
for (int mt = 0; mt < M_TILES; ++mt) {
  #pragma unroll
  for (int kk = 0; kk < K_STEPS; ++kk) ldmatrix_x4(q_frag[mt][kk], ${frag});
}`
      : "// Q stays in shared memory: its fragments are read per k-step (wide head dims leave no registers for them).";
    return `cp_async_wait<2 * (STAGES - 1)>();
__syncthreads();
${registers}`;
  }

  initState(): string {
    return `// This lane's rows: row0 + 16·mt + 8·r. Running max (log2 units) and this lane's part of the running
// sums (reduced over the quad at the end).
float m_i[M_TILES][2], l_i[M_TILES][2];
float o_acc[M_TILES][D_TILES][4];
float s_acc[M_TILES][N_TILES][4];
#pragma unroll
for (int mt = 0; mt < M_TILES; ++mt) {
  m_i[mt][0] = m_i[mt][1] = ${NEG_INF};
  l_i[mt][0] = l_i[mt][1] = 0.0f;
  #pragma unroll
  for (int d = 0; d < D_TILES; ++d) o_acc[mt][d][0] = o_acc[mt][d][1] = o_acc[mt][d][2] = o_acc[mt][d][3] = 0.0f;
}
const int row0 = m0 + warp * M_TILES * 16 + (lane >> 2);${this.hoistedRows()}
${this.fragmentAddressing()}
const float qk_scale = ${this.scaledToLog2 ? "scale * LOG2E" : "scale"};
int t = 0;`;
  }

  /** This lane's ldmatrix base offsets into the K and V tiles. */
  protected fragmentAddressing(): string {
    return `// This lane's ldmatrix row and chunk pattern: K (B of Q·Kᵀ) reads rows of key tiles j, j + 1 and chunk pairs
// 2kk, 2kk + 1; V (B of P·V, transposed) reads rows 16kk … 16kk + 15 and chunk pairs d, d + 1.
unsigned k_ld[K_BASES], v_ld[V_BASES];
#pragma unroll
for (int i = 0; i < K_BASES; ++i) k_ld[i] = qk_unit((lane & 7) + ((lane >> 4) << 3), 2 * i + ((lane >> 3) & 1)) * 16;
#pragma unroll
for (int i = 0; i < V_BASES; ++i) v_ld[i] = K_TILE_BYTES + v_unit(lane & 15, 2 * i + (lane >> 4)) * 16;`;
  }

  blockLoop(blocks: BlockKind, body: string[]): string {
    const end = blocks === "partial" ? "part_tiles" : "total_tiles";
    return `// ${blocks} blocks${blocks === "partial" ? ": the mask applies" : ": the mask is skipped"}
for (; t < ${end}; ++t) {
  const int n0 = tile_start(t);
  const unsigned stage = kv_smem + (t % STAGES) * STAGE_BYTES;
${indent(body.join("\n"))}
}`;
  }

  loadK(): string {
    return `cp_async_wait<2 * STAGES - 3>();
__syncthreads();  // K of tile t is visible; every warp is past tile t - 1, whose stage is refilled now
issue_tile(t + STAGES - 1);`;
  }

  qk(): string {
    const qFrag = this.qInRegisters
      ? ""
      : `unsigned q_frag_k[M_TILES][4];
  #pragma unroll
  for (int mt = 0; mt < M_TILES; ++mt) {
    ldmatrix_x4(q_frag_k[mt], q_smem + qk_unit((warp * M_TILES + mt) * 16 + (lane & 15), kk * 2 + (lane >> 4)) * 16);
  }
  `;
    const a = this.qInRegisters ? "q_frag[mt][kk]" : "q_frag_k[mt]";
    return `#pragma unroll
for (int mt = 0; mt < M_TILES; ++mt) {
  #pragma unroll
  for (int j = 0; j < N_TILES; ++j) s_acc[mt][j][0] = s_acc[mt][j][1] = s_acc[mt][j][2] = s_acc[mt][j][3] = 0.0f;
}
#pragma unroll
for (int kk = 0; kk < K_STEPS; ++kk) {
  ${qFrag}#pragma unroll
  for (int j = 0; j < N_TILES; j += 2) {
    unsigned kf[4];  // B fragments of key tiles j and j + 1
    ldmatrix_x4(kf, stage + k_ld[kk % K_BASES] + (j * 8 * QK_ROW_UNITS + (kk / K_BASES) * 2 * K_BASES) * 16);
    #pragma unroll
    for (int mt = 0; mt < M_TILES; ++mt) {
      mma_16816(s_acc[mt][j], ${a}, kf[0], kf[1]);
      mma_16816(s_acc[mt][j + 1], ${a}, kf[2], kf[3]);
    }
  }
}
#pragma unroll
for (int mt = 0; mt < M_TILES; ++mt) {
  #pragma unroll
  for (int j = 0; j < N_TILES; ++j) {
    #pragma unroll
    for (int e = 0; e < 4; ++e) s_acc[mt][j][e] *= qk_scale;
  }
}`;
  }

  scoreMod(): string {
    return this.applyMod("score", (element, value) => `${element} = ${value};`);
  }

  maskMod(): string {
    // A select, not arithmetic: a masked score is -inf whatever the score mod made of it.
    return this.applyMod("mask", (element, value) => `${element} = (${value}) ? ${element} : ${NEG_INF};`);
  }

  bounds(): string {
    return `if (n0 + BLOCK_N > kv_len) {
  #pragma unroll
  for (int mt = 0; mt < M_TILES; ++mt) {
    #pragma unroll
    for (int j = 0; j < N_TILES; ++j) {
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (n0 + j * 8 + ((lane & 3) << 1) + (e & 1) >= kv_len) s_acc[mt][j][e] = ${NEG_INF};
      }
    }
  }
}`;
  }

  onlineSoftmax(): string {
    const { lazyRescale, polyExp2 } = this.options;
    const toLog2 = this.scaledToLog2 ? "" : "\n        s[j][2 * r + c] *= LOG2E;";
    // The lazy softmax takes the SFU's ex2 alone (fa_exp2), and with polyExp2 the first polyExp2 of every
    // 8 accumulator tiles on the FMA units instead (j is unrolled); the eager one exp2f.
    const sfu = lazyRescale ? "fa_exp2" : "exp2f";
    const exp2 = (x: string) => (polyExp2 ? `(j % 8 < ${polyExp2} ? fa_exp2_poly(${x}) : ${sfu}(${x}))` : `${sfu}(${x})`);
    // The reference m_ref moves to the row's new max: always, or with lazyRescale only when the max
    // outgrows it by more than the slack. A row with nothing unmasked yet keeps m = -inf and P
    // subtracts 0, so exp2 gives 0, not NaN. O and l follow a moved reference by alpha.
    const reference = lazyRescale
      ? `const bool moved = m_new > m_i[mt][r] + ${RESCALE_SLACK_LOG2}.0f;  // -inf + slack is -inf: the first unmasked tile moves it
    const float m_ref = moved ? m_new : m_i[mt][r] == ${NEG_INF} ? 0.0f : m_i[mt][r];`
      : `const float m_ref = m_new == ${NEG_INF} ? 0.0f : m_new;`;
    const rescale = `{
      const float alpha = ${sfu}(m_i[mt][r] - m_ref);
      m_i[mt][r] = m_new;
      l_i[mt][r] *= alpha;
      #pragma unroll
      for (int d = 0; d < D_TILES; ++d) {
        o_acc[mt][d][2 * r] *= alpha;
        o_acc[mt][d][2 * r + 1] *= alpha;
      }
    }`;
    return `#pragma unroll
for (int mt = 0; mt < M_TILES; ++mt) {
  float (&s)[N_TILES][4] = s_acc[mt];
  #pragma unroll
  for (int r = 0; r < 2; ++r) {
    float m_new = m_i[mt][r];
    #pragma unroll
    for (int j = 0; j < N_TILES; ++j) {
      #pragma unroll
      for (int c = 0; c < 2; ++c) {${toLog2}
        m_new = fmaxf(m_new, s[j][2 * r + c]);
      }
    }
    m_new = fmaxf(m_new, __shfl_xor_sync(0xffffffffu, m_new, 1));
    m_new = fmaxf(m_new, __shfl_xor_sync(0xffffffffu, m_new, 2));
    ${reference}
    float row_sum = 0.0f;
    #pragma unroll
    for (int j = 0; j < N_TILES; ++j) {
      #pragma unroll
      for (int c = 0; c < 2; ++c) {
        s[j][2 * r + c] = ${exp2("s[j][2 * r + c] - m_ref")};
        row_sum += s[j][2 * r + c];
      }
    }
    ${lazyRescale ? "if (moved) " : ""}${rescale}
    l_i[mt][r] += row_sum;
  }
}`;
  }

  loadV(): string {
    return `cp_async_wait<2 * STAGES - 2>();
__syncthreads();  // V of tile t is visible`;
  }

  accumulate(): string {
    return `#pragma unroll
for (int kk = 0; kk < PV_STEPS; ++kk) {
  // P's A fragment for keys 16·kk … 16·kk + 15 is this lane's S accumulators of tiles 2kk, 2kk + 1.
  unsigned p_frag[M_TILES][4];
  #pragma unroll
  for (int mt = 0; mt < M_TILES; ++mt) {
    const float (&s)[N_TILES][4] = s_acc[mt];
    p_frag[mt][0] = pack2(s[2 * kk][0], s[2 * kk][1]);
    p_frag[mt][1] = pack2(s[2 * kk][2], s[2 * kk][3]);
    p_frag[mt][2] = pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    p_frag[mt][3] = pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
  }
  #pragma unroll
  for (int d = 0; d < D_TILES; d += 2) {
    unsigned vf[4];  // B fragments of value columns 8d … 8d + 15 (transposed: V is stored key-major)
    ldmatrix_x4_trans(vf, stage + v_ld[(d / 2) % V_BASES] + (kk * 16 * V_ROW_UNITS + (d / 2 / V_BASES) * 2 * V_BASES) * 16);
    #pragma unroll
    for (int mt = 0; mt < M_TILES; ++mt) {
      mma_16816(o_acc[mt][d], p_frag[mt], vf[0], vf[1]);
      mma_16816(o_acc[mt][d + 1], p_frag[mt], vf[2], vf[3]);
    }
  }
}`;
  }

  /** Before the epilogue: this thread's outstanding copies (the pipeline's empty tail groups) are done. */
  protected drainCopies(): string {
    return "cp_async_wait<0>();\n";
  }

  epilogue(): string {
    const lse = this.spec.returnLse
      ? `\n      if ((lane & 3) == 0) lse[((long long)b * q_heads + hq) * q_len + row] = l == 0.0f ? ${NEG_INF} : LN2 * (m_i[mt][r] + log2f(l));`
      : "";
    return `${this.drainCopies()}#pragma unroll
for (int mt = 0; mt < M_TILES; ++mt) {
  #pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = l_i[mt][r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = row0 + 16 * mt + 8 * r;
    if (row < q_len) {
      storage_t* o_row = out + (long long)b * stride_out_b + (long long)hq * stride_out_h + (long long)row * stride_out_s;
      // Fully masked rows (l = 0) write acc·0: 0, or NaN where a listed key's V is NaN/±inf.
      const float inv_l = l == 0.0f ? 0.0f : 1.0f / l;
      #pragma unroll
      for (int d = 0; d < D_TILES; ++d) {
        #pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int col = d * 8 + ((lane & 3) << 1) + c;
          if (col < DV) store_s(o_row + col, o_acc[mt][d][2 * r + c] * inv_l);
        }
      }${lse}
    }
  }
}`;
  }
}
