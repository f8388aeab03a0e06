/**
 * The CUDA-core emitter (f32 inputs, and half inputs whose BlockMask blocks are too small for
 * tensor-core tiles): one method per template step. A program (thread block) owns BLOCK_M query
 * rows, one per thread; K and V tiles of BLOCK_N rows are staged through shared memory.
 * Exact f32 arithmetic throughout; f16/bf16 inputs take the tensor-core emitter (emitter.ts).
 */
import { type ModGraph, renderGraph } from "@flexattn/ir";
import { type BlockKind, type KernelSpec, type TemplateEmitter, capturedBuffers } from "@flexattn/template";
import { cudaOptions, cudaSharedBytes } from "./options.js";
import { NEG_INF } from "./ptx.js";
import { cudaRenderer } from "./renderer.js";

const indent = (code: string, n = 1) => code.split("\n").map((l) => (l ? "  ".repeat(n) + l : l)).join("\n");

function modInputs(kvExpr: string): Record<string, string> {
  return { score: "s[j]", b: "b", h: "hq", q: "(row + q_offset)", kv: `(${kvExpr} + kv_offset)` };
}

export class CudaSimtEmitter implements TemplateEmitter<string> {
  constructor(private readonly spec: KernelSpec) {}

  /** Compile-time constants, placed before the kernel. */
  prelude(): string {
    const s = this.spec;
    return `constexpr int THREADS = ${s.config.blockM};  // one thread per query row
constexpr int BLOCK_M = ${s.config.blockM};
constexpr int BLOCK_N = ${s.config.blockN};
constexpr int DQK = ${s.qkHeadDim};
constexpr int DV = ${s.vHeadDim};
constexpr int SPARSE_Q = ${s.sparseBlock[0]};
constexpr int SPARSE_KV = ${s.sparseBlock[1]};
// All shared memory is dynamic (the K and V tiles): the one size every launcher passes.
constexpr int SMEM_BYTES = ${cudaSharedBytes(s)};
static_assert(SMEM_BYTES == 4 * BLOCK_N * (DQK + 1 + DV), "SMEM_BYTES holds the K and V tiles");`;
  }

  private renderMod(graph: ModGraph, owner: "mask" | "score", prefix: string): { statements: string; result: string } {
    const names = capturedBuffers(this.spec).filter((b) => b.owner === owner).map((b) => b.name);
    const r = renderGraph(graph, cudaRenderer(modInputs("(n0 + j)"), (slot) => names[slot], { approxTanh: cudaOptions(this.spec.config, this.spec.dtype).approxTanh }), prefix);
    return { statements: r.statements.join("\n"), result: r.result };
  }

  program(): string {
    return `const int m_block = blockIdx.x, hq = blockIdx.y, b = blockIdx.z;
const int hkv = hq / (q_heads / kv_heads);
const int row = m_block * BLOCK_M + threadIdx.x;
const bool row_valid = row < q_len;
const long long table_row = ((long long)(b % sparse_b) * sparse_h + (hq % sparse_h)) * sparse_q_blocks + (m_block * BLOCK_M) / SPARSE_Q;
const storage_t* k_base = k + (long long)b * stride_k_b + (long long)hkv * stride_k_h;
const storage_t* v_base = v + (long long)b * stride_v_b + (long long)hkv * stride_v_h;
extern __shared__ __align__(16) unsigned char smem[];
// +1: rows in different banks. That padding column, k_tile[j][DQK], flags V row j as holding
// NaN or ±inf (set by loadV, read by accumulate).
float (*k_tile)[DQK + 1] = reinterpret_cast<float (*)[DQK + 1]>(smem);
float (*v_tile)[DV] = reinterpret_cast<float (*)[DV]>(smem + 4 * BLOCK_N * (DQK + 1));`;
  }

  loadQ(): string {
    const prescale = this.spec.config.prescaleQk && !this.spec.score ? " * qk_scale" : "";
    return `const float qk_scale = ${this.spec.config.prescaleQk && !this.spec.score ? "scale * LOG2E" : "scale"};
float q_reg[DQK];
{
  const storage_t* q_row = q + (long long)b * stride_q_b + (long long)hq * stride_q_h + (long long)row * stride_q_s;
  #pragma unroll
  for (int d = 0; d < DQK; ++d) q_reg[d] = row_valid ? load_s(q_row + d)${prescale} : 0.0f;
}`;
  }

  initState(): string {
    return `float m_i = ${NEG_INF}, l_i = 0.0f;
float acc[DV];
#pragma unroll
for (int d = 0; d < DV; ++d) acc[d] = 0.0f;
float s[BLOCK_N];`;
  }

  blockLoop(blocks: BlockKind, body: string[]): string {
    const [num, idx] = blocks === "partial" ? ["kv_num_blocks", "kv_indices"] : ["full_kv_num_blocks", "full_kv_indices"];
    return `// ${blocks} blocks${blocks === "partial" ? ": the mask applies" : ": the mask is skipped"}
{
  const int num_blocks = ${num}[table_row];
  const int* block_ids = ${idx} + table_row * sparse_kv_blocks;
  for (int blk = 0; blk < num_blocks; ++blk) {
    for (int sub = 0; sub < SPARSE_KV / BLOCK_N; ++sub) {
      const int n0 = block_ids[blk] * SPARSE_KV + sub * BLOCK_N;
      if (n0 >= kv_len) break;
${indent(body.join("\n"), 3)}
    }
  }
}`;
  }

  loadK(): string {
    return `__syncthreads();  // the previous tile is no longer read
for (int e = threadIdx.x; e < BLOCK_N * DQK; e += BLOCK_M) {
  const int j = e / DQK, d = e % DQK;
  k_tile[j][d] = n0 + j < kv_len ? load_s(k_base + (long long)(n0 + j) * stride_k_s + d) : 0.0f;
  if (d == 0) k_tile[j][DQK] = 0.0f;  // V row j's non-finite flag, set by loadV
}
__syncthreads();`;
  }

  qk(): string {
    return `#pragma unroll 4
for (int j = 0; j < BLOCK_N; ++j) {
  float dot = 0.0f;
  #pragma unroll
  for (int d = 0; d < DQK; ++d) dot = fmaf(q_reg[d], k_tile[j][d], dot);
  s[j] = ${this.spec.config.prescaleQk && !this.spec.score ? "dot" : "dot * qk_scale"};
}`;
  }

  scoreMod(): string {
    const { statements, result } = this.renderMod(this.spec.score!, "score", "sm");
    return `for (int j = 0; j < BLOCK_N; ++j) {
${indent(statements)}
  s[j] = ${result};
}`;
  }

  maskMod(): string {
    const { statements, result } = this.renderMod(this.spec.mask!, "mask", "mm");
    return `for (int j = 0; j < BLOCK_N; ++j) {
${indent(statements)}
  s[j] = (${result}) ? s[j] : ${NEG_INF};  // a select: a masked score is -inf whatever it was
}`;
  }

  bounds(): string {
    return `if (n0 + BLOCK_N > kv_len) {
  for (int j = 0; j < BLOCK_N; ++j) if (n0 + j >= kv_len) s[j] = ${NEG_INF};
}`;
  }

  onlineSoftmax(): string {
    // Scores move to the exp2 domain here unless Q was prescaled by scale·log2e.
    const toLog2 = this.spec.config.prescaleQk && !this.spec.score ? "" : " * LOG2E";
    return `float m_new = m_i;
for (int j = 0; j < BLOCK_N; ++j) { s[j] = s[j]${toLog2}; m_new = fmaxf(m_new, s[j]); }
// A row with nothing unmasked yet keeps m = -inf; subtract 0 then so exp2 gives 0, not NaN.
const float m_ref = m_new == ${NEG_INF} ? 0.0f : m_new;
const float alpha = exp2f(m_i - m_ref);
float row_sum = 0.0f;
for (int j = 0; j < BLOCK_N; ++j) { s[j] = exp2f(s[j] - m_ref); row_sum += s[j]; }
l_i = l_i * alpha + row_sum;
m_i = m_new;
#pragma unroll
for (int d = 0; d < DV; ++d) acc[d] *= alpha;`;
  }

  loadV(): string {
    return `for (int e = threadIdx.x; e < BLOCK_N * DV; e += BLOCK_M) {
  const int j = e / DV, d = e % DV;
  const float x = n0 + j < kv_len ? load_s(v_base + (long long)(n0 + j) * stride_v_s + d) : 0.0f;
  v_tile[j][d] = x;
  if (!isfinite(x)) k_tile[j][DQK] = 1.0f;  // every writer stores the same value
}
__syncthreads();`;
  }

  accumulate(): string {
    // A zero weight skips its V row only when the row is finite: a masked key of a listed block
    // adds 0·V, NaN for V = NaN or ±inf, as on the matrix units (NUMERICS.zeroWeights).
    return `for (int j = 0; j < BLOCK_N; ++j) {
  const float p = s[j];
  if (p == 0.0f && k_tile[j][DQK] == 0.0f) continue;
  #pragma unroll
  for (int d = 0; d < DV; ++d) acc[d] = fmaf(p, v_tile[j][d], acc[d]);
}`;
  }

  epilogue(): string {
    const lse = this.spec.returnLse
      ? `lse[((long long)b * q_heads + hq) * q_len + row] = l_i == 0.0f ? ${NEG_INF} : LN2 * (m_i + log2f(l_i));`
      : "";
    return `if (row_valid) {
  storage_t* o_row = out + (long long)b * stride_out_b + (long long)hq * stride_out_h + (long long)row * stride_out_s;
  // Fully masked rows (l = 0) write acc·0: 0, or NaN where a listed key's V is NaN/±inf.
  const float inv_l = l_i == 0.0f ? 0.0f : 1.0f / l_i;
  for (int d = 0; d < DV; ++d) store_s(o_row + d, acc[d] * inv_l);
  ${lse}
}`;
  }
}
