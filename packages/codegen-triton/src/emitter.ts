/**
 * The Triton emitter: one method per template step, each returning Python lines of the
 * `@triton.jit` kernel body. One program owns a [BLOCK_M, BLOCK_N]-tiled query block of one
 * (batch, query head); Q·Kᵀ and P·V are `tl.dot`s (wgmma on Hopper), the softmax runs in the
 * exp2 domain with scale·log2e folded into one FMA per score.
 *
 * Compile-time switches the launcher sets per call (constexpr): EVEN_M / EVEN_N drop the
 * sequence-length bounds when no tile can cross them; OUTPUT_LSE writes the log-sum-exp;
 * PARTIAL_LOOP / FULL_LOOP pick each block loop's form from the block-mask tables. Tile sizes are
 * constexprs too (BLOCK_M, BLOCK_N, TILES_PER_KV_BLOCK) and warps and stages are launch arguments,
 * so every candidate config runs this one source.
 *
 * With options.tma the kernel holds two ways to move Q, K, V and O, chosen by the constexpr
 * USE_TMA: tensor descriptors (TMA) or pointer arithmetic. Only the loads and the output store
 * differ; the block loops, mods, masks, softmax and LSE are the same lines in both.
 */
import type { ModGraph } from "@flexattn/ir";
import { type BlockKind, type KernelSpec, NUMERICS, type TemplateEmitter, capturedBuffers } from "@flexattn/template";
import { type TileMod, renderTileMod } from "./mods.js";
import { type TritonOptions, nextPow2 } from "./options.js";
import { indent } from "./python.js";
import type { HelperName } from "./runtime.js";

type Lines = string[];

/** Values of the PARTIAL_LOOP / FULL_LOOP constexprs (the launcher's LOOP_* constants). */
export const LOOP_FORMS = { none: 0, range: 1, indexed: 2 } as const;

const NEG_INF = 'float("-inf")';

/** Static facts of the kernel that decide which lines are emitted. */
export interface KernelShape {
  qkDim: number;
  qkDimPad: number;
  vDim: number;
  vDimPad: number;
}

export function kernelShape(spec: KernelSpec): KernelShape {
  const pad = (d: number) => Math.max(16, nextPow2(d));
  return { qkDim: spec.qkHeadDim, qkDimPad: pad(spec.qkHeadDim), vDim: spec.vHeadDim, vDimPad: pad(spec.vHeadDim) };
}

/**
 * A load whose row bound is checked only when the constexpr `even` is false (a tile may cross
 * the sequence's end); the head-dim padding mask, when there is one, applies either way.
 */
export function evenLoad(target: string, ptrs: string, even: string, rowMask: string, dimMask: string | null): Lines {
  const full = dimMask ? `, mask=${dimMask}, other=0.0` : "";
  return [
    `if ${even}:`,
    `    ${target} = tl.load(${ptrs}${full})`,
    "else:",
    `    ${target} = tl.load(${ptrs}, mask=${dimMask ? `${rowMask} & ${dimMask}` : rowMask}, other=0.0)`,
  ];
}

/** evenLoad's store: the row bound checked only when the constexpr `even` is false. */
export function evenStore(ptrs: string, value: string, even: string, rowMask: string, dimMask: string | null): Lines {
  return [
    `if ${even}:`,
    `    tl.store(${ptrs}, ${value}${dimMask ? `, mask=${dimMask}` : ""})`,
    "else:",
    `    tl.store(${ptrs}, ${value}, mask=${dimMask ? `${rowMask} & ${dimMask}` : rowMask})`,
  ];
}

/** One row of a pair of BlockMask tables (a count and a row of block indices), walked tile by tile. */
export interface TableRowWalk {
  /** The constexpr naming the loop's form (LOOP_FORMS), set by the launcher from the tables. */
  form: string;
  numBlocks: string;
  indices: string;
  /** This program's row, and the number of entries per row of `indices`. */
  row: string;
  width: string;
  /** The loop variable: the first position of the tile the body works on. */
  start: string;
  /** BlockMask block and tile sizes along the walk, and the length the tiles walk. */
  sparse: string;
  tile: string;
  tilesPerBlock: string;
  len: string;
  /** A condition false where the row lies past the tables: it then has no blocks. */
  rowExists?: string;
}

/**
 * A table row's loop in the three forms the launcher picks per call (from the tables, cached):
 * LOOP_NONE drops the loop (no row has such blocks), LOOP_RANGE walks the row's blocks as one
 * range (every row's blocks are one ascending run: no index loads, the loop the pipeliner handles
 * best), LOOP_INDEXED loads each block's index. The body is the same lines in both loops.
 */
export function walkTableRow(w: TableRowWalk, body: Lines): Lines {
  const guard = w.rowExists ? `, mask=${w.rowExists}, other=0` : "";
  return [
    `if ${w.form} != ${LOOP_FORMS.none}:`,
    ...indent([
      `n_blocks = tl.load(${w.numBlocks} + ${w.row}${guard})`,
      `blk_ptr = ${w.indices} + ${w.row}.to(tl.int64) * ${w.width}`,
      `if ${w.form} == ${LOOP_FORMS.range}:  # one ascending run of blocks per row: one range`,
      `    block_lo = tl.load(blk_ptr${guard}) * ${w.sparse}`,
      `    block_hi = tl.minimum(block_lo + n_blocks * ${w.sparse}, ${w.len})`,
      `    for ${w.start} in range(block_lo, block_hi, ${w.tile}):`,
      ...indent(body, 2),
      "else:",
      `    for it in range(0, n_blocks * ${w.tilesPerBlock}):`,
      `        ${w.start} = tl.load(blk_ptr + it // ${w.tilesPerBlock}) * ${w.sparse} + (it % ${w.tilesPerBlock}) * ${w.tile}`,
      ...indent(body, 2),
    ]),
  ];
}

export class TritonEmitter implements TemplateEmitter<Lines> {
  readonly helpers = new Set<HelperName>();
  private readonly mask: TileMod | null;
  private readonly score: TileMod | null;
  private readonly shape: KernelShape;
  /** Whether `kv_idx` is already defined in the tile body being emitted. */
  private kvIdxDefined = false;

  constructor(
    private readonly spec: KernelSpec,
    private readonly options: TritonOptions,
  ) {
    this.shape = kernelShape(spec);
    this.mask = spec.mask && this.renderMod(spec.mask, "mask", "mk");
    this.score = spec.score && this.renderMod(spec.score, "score", "sc");
  }

  private renderMod(graph: ModGraph, owner: "mask" | "score", prefix: string): TileMod {
    const names = capturedBuffers(this.spec).filter((b) => b.owner === owner).map((b) => b.name);
    const mod = renderTileMod(graph, { prefix, bufferName: (slot) => names[slot], approxTanh: this.options.approxTanh });
    for (const h of mod.helpers) this.helpers.add(h);
    return mod;
  }

  /** Q is multiplied by scale·log2e once, so scores come out of the dot in the exp2 domain. */
  private get prescaled(): boolean {
    return this.spec.config.prescaleQk && !this.spec.score;
  }

  private get dotPrecision(): string {
    if (this.spec.dtype !== "f32") return "";
    return `, input_precision="${this.options.allowTf32 ? "tf32" : "ieee"}"`;
  }

  /**
   * A tensor descriptor over one (batch, head)'s [len, dim] slice of a tensor: its shape is the
   * real one, so rows past `len` and columns past `dim` (head-dim padding) load as zeros and are
   * never stored; no tile can reach another head's or batch's rows. The launcher checks the 16-byte
   * alignment TMA needs before it sets USE_TMA.
   */
  private descriptor(name: string, base: string, len: string, dim: string, stride: string, block: string, dimPad: string): string {
    return `${name} = tl.make_tensor_descriptor(${base}, shape=[${len}, ${dim}], strides=[${stride}, 1], block_shape=[${block}, ${dimPad}])`;
  }

  /** With options.tma: the descriptor lines under `if USE_TMA:`, the pointer lines under `else:`. */
  private tmaOr(tma: Lines, pointer: Lines): Lines {
    if (!this.options.tma) return pointer;
    return ["if USE_TMA:", ...indent(tma), "else:", ...indent(pointer)];
  }

  private dimMask(offs: string, dim: number, pad: number, axis: "row" | "col"): string | null {
    if (dim === pad) return null;
    return axis === "col" ? `(${offs}[None, :] < ${dim})` : `(${offs}[:, None] < ${dim})`;
  }

  program(): Lines {
    const pid = this.options.reverseQBlocks ? "tl.num_programs(0) - 1 - tl.program_id(0)" : "tl.program_id(0)";
    return [
      `pid_m = ${pid}${this.options.reverseQBlocks ? "  # heavy (late) query tiles first" : ""}`,
      "off_h = tl.program_id(1)",
      "off_b = tl.program_id(2)",
      "off_hkv = off_h // (q_heads // kv_heads)  # grouped-query attention: any ratio",
      "start_m = pid_m * BLOCK_M",
      "offs_m = start_m + tl.arange(0, BLOCK_M)",
      "offs_n0 = tl.arange(0, BLOCK_N)",
      "offs_dqk = tl.arange(0, QK_D_PAD)",
      "offs_dv = tl.arange(0, V_D_PAD)",
      "q_idx = offs_m[:, None] + q_offset  # global query positions, as the mods see them",
      "# This tile's BlockMask row; batch and head broadcast when the mask has one entry.",
      "sparse_row = ((off_b % sparse_b) * sparse_h + off_h % sparse_h) * sparse_q_blocks + start_m // SPARSE_Q",
      "k_base = k + off_b.to(tl.int64) * stride_k_b + off_hkv.to(tl.int64) * stride_k_h",
      "v_base = v + off_b.to(tl.int64) * stride_v_b + off_hkv.to(tl.int64) * stride_v_h",
      ...(this.options.tma
        ? [
            "if USE_TMA:",
            "    # K and V of this (batch, kv head) as [kv_len, head dim] descriptors: tails read as zeros.",
            `    ${this.descriptor("k_desc", "k_base", "kv_len", "QK_D", "stride_k_s", "BLOCK_N", "QK_D_PAD")}`,
            `    ${this.descriptor("v_desc", "v_base", "kv_len", "V_D", "stride_v_s", "BLOCK_N", "V_D_PAD")}`,
          ]
        : []),
    ];
  }

  loadQ(): Lines {
    const s = this.shape;
    const qBase = "q + off_b.to(tl.int64) * stride_q_b + off_h.to(tl.int64) * stride_q_h";
    const lines = this.tmaOr(
      [this.descriptor("q_desc", qBase, "q_len", "QK_D", "stride_q_s", "BLOCK_M", "QK_D_PAD"), "qt = q_desc.load([start_m, 0])"],
      [
        `q_ptrs = ${qBase} + offs_m[:, None] * stride_q_s + offs_dqk[None, :]`,
        ...evenLoad("qt", "q_ptrs", "EVEN_M", "(offs_m[:, None] < q_len)", this.dimMask("offs_dqk", s.qkDim, s.qkDimPad, "col")),
      ],
    );
    if (this.prescaled) lines.push(`qt = (qt * (scale * ${NUMERICS.LOG2E})).to(q.dtype.element_ty)  # prescaled: scores leave the dot in log2 units`);
    return lines;
  }

  initState(): Lines {
    const lines = [
      `m_i = tl.full([BLOCK_M], ${NEG_INF}, tl.float32)  # running row max, log2 units`,
      "l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running row sum of exp2",
      "acc = tl.zeros([BLOCK_M, V_D_PAD], dtype=tl.float32)",
    ];
    if (!this.prescaled) lines.push(...toLog2(this.spec));
    const hoisted = [...(this.score?.hoisted ?? []), ...(this.mask?.hoisted ?? [])];
    if (hoisted.length) lines.push("# Mod terms that do not depend on kv: computed once per program.", ...hoisted);
    return lines;
  }

  /** One block loop in the form the constexpr PARTIAL_LOOP / FULL_LOOP names (walkTableRow). */
  blockLoop(blocks: BlockKind, body: Lines[]): Lines {
    const partial = blocks === "partial";
    return [
      partial ? "# ---- partial blocks: the mask applies ----" : "# ---- full blocks: the mask is skipped ----",
      ...walkTableRow({
        form: partial ? "PARTIAL_LOOP" : "FULL_LOOP",
        numBlocks: partial ? "kv_num_blocks" : "full_kv_num_blocks",
        indices: partial ? "kv_indices" : "full_kv_indices",
        row: "sparse_row", width: "sparse_kv_blocks", start: "start_n", sparse: "SPARSE_KV", tile: "BLOCK_N",
        tilesPerBlock: "TILES_PER_KV_BLOCK", len: "kv_len",
      }, body.flat()),
    ];
  }

  loadK(_blocks: BlockKind): Lines {
    this.kvIdxDefined = false;
    const s = this.shape;
    return [
      "offs_n = start_n + offs_n0",
      ...this.tmaOr(
        ["kt = k_desc.load([start_n, 0])"],
        [
          "k_ptrs = k_base + offs_n[:, None] * stride_k_s + offs_dqk[None, :]",
          ...evenLoad("kt", "k_ptrs", "EVEN_N", "(offs_n[:, None] < kv_len)", this.dimMask("offs_dqk", s.qkDim, s.qkDimPad, "col")),
        ],
      ),
    ];
  }

  qk(_blocks: BlockKind): Lines {
    // Prescaled Q has scale (of either sign) inside the dot already.
    return [`qk = tl.dot(qt, tl.trans(kt)${this.dotPrecision})`, ...(this.prescaled ? [] : scaleScore(this.spec))];
  }

  private kvIdx(mod: TileMod): Lines {
    if (!mod.usesKv || this.kvIdxDefined) return [];
    this.kvIdxDefined = true;
    return ["kv_idx = offs_n[None, :] + kv_offset"];
  }

  scoreMod(_blocks: BlockKind): Lines {
    const m = this.score!;
    const full = m.alongM && m.alongN;
    const value = full ? m.result : `tl.broadcast_to(${m.result}, (BLOCK_M, BLOCK_N))`;
    return [...this.kvIdx(m), ...m.body, `qk = ${value}`];
  }

  maskMod(_blocks: BlockKind): Lines {
    const m = this.mask!;
    return [...this.kvIdx(m), ...m.body, `qk = tl.where(${m.result}, qk, ${NEG_INF})`];
  }

  bounds(_blocks: BlockKind): Lines {
    return ["if not EVEN_N:", `    qk = tl.where(offs_n[None, :] < kv_len, qk, ${NEG_INF})`];
  }

  onlineSoftmax(blocks: BlockKind): Lines {
    const c = this.prescaled ? "" : " * to_log2";
    // A row with every score -inf so far would give exp2(-inf - -inf) = NaN: subtract 0 instead.
    // Needed only where a whole row of a tile can be -inf: masks, score mods, ragged kv tiles.
    const maybeInf = (blocks === "partial" && this.spec.mask !== null) || this.spec.score !== null;
    const guard = `tl.where(m_ij == ${NEG_INF}, 0.0, m_ij)`;
    const sub = maybeInf
      ? [`m_sub = ${guard}`]
      : ["if EVEN_N:", "    m_sub = m_ij", "else:", `    m_sub = ${guard}`];
    return [
      `m_ij = tl.maximum(m_i, tl.max(qk, 1)${c})`,
      ...sub,
      `p = tl.math.exp2(qk${c} - m_sub[:, None])`,
      "alpha = tl.math.exp2(m_i - m_sub)",
      "l_i = l_i * alpha + tl.sum(p, 1)",
      "acc = acc * alpha[:, None]",
      "m_i = m_ij",
    ];
  }

  loadV(_blocks: BlockKind): Lines {
    const s = this.shape;
    return this.tmaOr(
      ["vt = v_desc.load([start_n, 0])"],
      [
        "v_ptrs = v_base + offs_n[:, None] * stride_v_s + offs_dv[None, :]",
        ...evenLoad("vt", "v_ptrs", "EVEN_N", "(offs_n[:, None] < kv_len)", this.dimMask("offs_dv", s.vDim, s.vDimPad, "col")),
      ],
    );
  }

  accumulate(_blocks: BlockKind): Lines {
    // P·V on the tensor cores: a NaN/±∞ in V at a zero-weight key of a listed block reaches the
    // row (0·NaN), the rule every backend follows (NUMERICS.zeroWeights, PyTorch's).
    return [`acc = tl.dot(p.to(vt.dtype), vt, acc${this.dotPrecision})`];
  }

  epilogue(): Lines {
    const s = this.shape;
    const dv = this.dimMask("offs_dv", s.vDim, s.vDimPad, "col");
    const rows = "(offs_m[:, None] < q_len)";
    const oBase = "out + off_b.to(tl.int64) * stride_out_b + off_h.to(tl.int64) * stride_out_h";
    return [
      "# Fully masked rows (l_i = 0): output 0 and LSE -inf.",
      "l_safe = tl.where(l_i == 0.0, 1.0, l_i)",
      "o = (acc * (1.0 / l_safe)[:, None]).to(out.dtype.element_ty)",
      ...this.tmaOr(
        [
          this.descriptor("o_desc", oBase, "q_len", "V_D", "stride_out_s", "BLOCK_M", "V_D_PAD"),
          "o_desc.store([start_m, 0], o)  # rows past q_len and padded columns are not written",
        ],
        [
          `o_ptrs = ${oBase} + offs_m[:, None] * stride_out_s + offs_dv[None, :]`,
          ...evenStore("o_ptrs", "o", "EVEN_M", rows, dv),
        ],
      ),
      "if OUTPUT_LSE:",
      `    lse_val = tl.where(l_i == 0.0, ${NEG_INF}, (m_i + tl.math.log2(l_safe)) * ${NUMERICS.LN2})`,
      "    lse_ptrs = lse + (off_b.to(tl.int64) * q_heads + off_h) * q_len + offs_m",
      "    if EVEN_M:",
      "        tl.store(lse_ptrs, lse_val)",
      "    else:",
      "        tl.store(lse_ptrs, lse_val, mask=offs_m < q_len)",
    ];
  }
}

/**
 * The constexpr the launcher sets to `scale > 0`. Without a score mod nothing reads the scaled score, so the
 * dot's raw product is kept and scale rides in to_log2: one multiply per score fewer. That is exact only for a
 * positive scale: a zero or negative one would turn the masks' −∞ into NaN or +∞ and the row max into a min,
 * so then the score is scaled before the masks, as with a score mod.
 */
export const SCALE_IN_EXP2 = "SCALE_IN_EXP2";

/** Scales the dot's product where the score must be in natural units (Python lines, after `qk = tl.dot(…)`). */
export function scaleScore(spec: Pick<KernelSpec, "score">): string[] {
  return spec.score ? ["qk = qk * scale"] : [`if not ${SCALE_IN_EXP2}:`, "    qk = qk * scale"];
}

/** Defines to_log2, the factor taking a scaled or raw score (scaleScore) to log2 units inside exp2's FMA. */
export function toLog2(spec: Pick<KernelSpec, "score">): string[] {
  if (spec.score) return [`to_log2 = ${NUMERICS.LOG2E}`];
  return [`if ${SCALE_IN_EXP2}:`, `    to_log2 = scale * ${NUMERICS.LOG2E}`, "else:", `    to_log2 = ${NUMERICS.LOG2E}`];
}
