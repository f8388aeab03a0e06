/**
 * The Triton BackwardEmitter: one method per step of the template's backward
 * (packages/template/src/backward-steps.ts), each returning Python lines of one of four
 * `@triton.jit` functions:
 *
 *   preprocess  kernel (q tile, hq, b):  delta = rowsum(dO ∘ O)
 *   dkdv        one program (pid_n, off_hkv, off_b): for each query head of the group, the q tiles
 *               of the column's partial then full blocks (q-direction tables); dK, dV and the
 *               captured-buffer partial sums of this program
 *   dq          one program (pid_m, off_h, off_b): the kv tiles of the row's partial then full
 *               blocks (kv tables)
 *   reduce      kernel (element chunk): a buffer's gradient = its per-program partials summed in
 *               program order
 *
 * dkdv and dq are called from one kernel (backward.ts) whose grid holds both kinds of program.
 *
 * The dq pass works on [BLOCK_M, BLOCK_N] tiles as the forward does (q_idx [BLOCK_M, 1], kv_idx
 * [1, BLOCK_N]); the dkdv pass on transposed [BLOCK_N, BLOCK_M] tiles (kv_idx [BLOCK_N, 1], q_idx
 * [1, BLOCK_M]), so Pᵀ and dSᵀ leave their products in the layout the dV and dK products take as
 * their left operand, with no transpose through shared memory. The mods and their derivatives
 * render unchanged (mods.ts): they broadcast over whatever shapes q_idx and kv_idx have.
 * P is recomputed in the exp2 domain from the forward's natural-log LSE; rows whose LSE is −∞
 * (fully masked) or that lie past q_len read LSE = +∞, so their P, and every gradient through
 * them, is exactly 0.
 *
 * Buffer gradients never use atomics: a dkdv program owns one row of a workspace per buffer and
 * adds each tile's contributions to it in a fixed order, so the sums are bitwise reproducible.
 * An entry that depends on q − kv only (a [2N − 1] relative-position table) is summed along the
 * tile's diagonals, one gather and one reduction per BLOCK_M diagonals; any other entry costs one
 * tile reduction per distinct entry the tile touches (a few for a bucketed [H, buckets] table).
 */
import { INPUT_BIT, type ModGraph, diagonalEntry, renderGraph } from "@flexattn/ir";
import {
  type BackwardEmitter, type BackwardMods, type BackwardPass, type BlockKind, type KernelSpec, NUMERICS,
} from "@flexattn/template";
import { bufferArgs } from "./buffers.js";
import { type KernelShape, evenLoad, evenStore, kernelShape, scaleScore, toLog2, walkTableRow } from "./emitter.js";
import { MOD_INPUTS, renderTileMod } from "./mods.js";
import type { TritonOptions } from "./options.js";
import { tritonRenderer } from "./renderer.js";
import { indent } from "./python.js";
import type { HelperName } from "./runtime.js";

type Lines = string[];

/** Which kernel a top-level step's lines belong to. */
export type BackwardKernel = "preprocess" | "dkdv" | "dq" | "reduce";

export interface BackwardCode {
  kernel?: BackwardKernel;
  lines: Lines;
  /** A block-loop body step's lines that do not change from tile to tile: they run before the loop. */
  hoisted?: Lines;
}

const NEG_INF = 'float("-inf")';

/** Whether a derivative graph is the constant 1 (a bias added to the score): its product is skipped. */
const isOne = (g: ModGraph): boolean => g.nodes.length === 1 && g.nodes[0].op === "const" && g.nodes[0].value === 1;
const POS_INF = 'float("inf")';

/** Constexpr switching grad buffer `k`'s accumulation on (the launcher sets it where the buffer requires grad). */
export const gradFlag = (k: number): string => `GRAD_${k}`;

/**
 * Whether diagonal sums run: the dkdv kernel's constexpr, set by the launcher from the module's
 * probe for tl.gather (Triton 3.3 and later). Without it the same sites go entry by entry.
 */
export const DIAGONAL_SWITCH = { kernel: "DIAGONAL_SUMS", module: "_HAS_GATHER" } as const;

/** Workspace argument holding the per-dkdv-program partial sums of grad buffer `i`. */
export const partialName = (pyName: string): string => `dpart_${pyName}`;

/** The template's backward steps as the Python lines of the four backward kernels (see the file comment). */
export class TritonBackwardEmitter implements BackwardEmitter<BackwardCode> {
  readonly helpers = new Set<HelperName>();
  private readonly shape: KernelShape;
  /** Kernel parameter name of each score-mod / mask-mod buffer slot. */
  private readonly names: Record<"mask" | "score", string[]>;

  constructor(
    private readonly spec: KernelSpec,
    private readonly mods: BackwardMods,
    private readonly options: TritonOptions,
  ) {
    this.shape = kernelShape(spec);
    const args = bufferArgs(spec);
    const slots = (owner: "mask" | "score") => {
      const names: string[] = [];
      for (const b of args) if (b.owner === owner) names[b.slot] = b.pyName;
      return names;
    };
    this.names = { mask: slots("mask"), score: slots("score") };
  }

  /**
   * Statements computing `graph` over a tile of `pass` (those that depend on neither the score nor
   * the input the pass loops over are hoisted before its loop), and its value broadcast to the
   * tile's shape.
   */
  private render(graph: ModGraph, owner: "mask" | "score", prefix: string, pass: BackwardPass): { lines: Lines; hoisted: Lines; value: string } {
    const names = this.names[owner];
    // dkdv walks the q tiles of one kv tile (one query head at a time); dq the kv tiles of one q tile.
    const perTile = INPUT_BIT.score | (pass === "dkdv" ? INPUT_BIT.q : INPUT_BIT.kv);
    const m = renderTileMod(graph, { prefix, bufferName: (slot) => names[slot], approxTanh: this.options.approxTanh, perTile });
    for (const h of m.helpers) this.helpers.add(h);
    const shape = pass === "dkdv" ? "(BLOCK_N, BLOCK_M)" : "(BLOCK_M, BLOCK_N)";
    const value = m.alongM && m.alongN ? m.result : `tl.broadcast_to(${m.result}, ${shape})`;
    return { lines: m.body, hoisted: m.hoisted, value };
  }

  private get dotPrecision(): string {
    if (this.spec.dtype !== "f32") return "";
    return `, input_precision="${this.options.allowTf32 ? "tf32" : "ieee"}"`;
  }

  private dimMask(offs: string, dim: number, pad: number): string | null {
    return dim === pad ? null : `(${offs}[None, :] < ${dim})`;
  }

  /** A [rows, dim] tile of a strided tensor; rows checked against `rowOk` unless `even`, padded columns read as 0. */
  private loadRows(target: string, base: string, offs: string, stride: string, even: string, rowOk: string, dimOffs: string, dim: number, pad: number): Lines {
    return evenLoad(target, `${base} + ${offs}[:, None] * ${stride} + ${dimOffs}[None, :]`, even, `${rowOk}[:, None]`, this.dimMask(dimOffs, dim, pad));
  }

  private storeRows(ptrBase: string, offs: string, stride: string, even: string, rowOk: string, dimOffs: string, dim: number, pad: number, value: string): Lines {
    return evenStore(`${ptrBase} + ${offs}[:, None] * ${stride} + ${dimOffs}[None, :]`, value, even, `${rowOk}[:, None]`, this.dimMask(dimOffs, dim, pad));
  }

  /** The query side of a tile: Q, dO, LSE (+∞ where P must be 0) and delta rows at offs_m. */
  private querySide(pass: BackwardPass): Lines {
    const s = this.shape;
    return [
      "offs_m = start_m + offs_m0",
      "m_ok = offs_m < q_len",
      `q_idx = offs_m${pass === "dkdv" ? "[None, :]" : "[:, None]"} + q_offset`,
      ...this.loadRows("qt", "q_base", "offs_m", "stride_q_s", "EVEN_M", "m_ok", "offs_dqk", s.qkDim, s.qkDimPad),
      ...this.loadRows("dot", "do_base", "offs_m", "stride_dout_s", "EVEN_M", "m_ok", "offs_dv", s.vDim, s.vDimPad),
      "if EVEN_M:",
      "    lse_i = tl.load(lse + row_base + offs_m)",
      "    delta_i = tl.load(delta + row_base + offs_m)",
      "else:",
      `    lse_i = tl.load(lse + row_base + offs_m, mask=m_ok, other=${POS_INF})`,
      "    delta_i = tl.load(delta + row_base + offs_m, mask=m_ok, other=0.0)",
      `lse_i = tl.where(lse_i == ${NEG_INF}, ${POS_INF}, lse_i) * ${NUMERICS.LOG2E}  # fully masked rows: P = 0`,
    ];
  }

  /** The key side of a tile: K and V rows at offs_n. */
  private keySide(pass: BackwardPass): Lines {
    const s = this.shape;
    return [
      "offs_n = start_n + offs_n0",
      "n_ok = offs_n < kv_len",
      `kv_idx = offs_n${pass === "dkdv" ? "[:, None]" : "[None, :]"} + kv_offset`,
      ...this.loadRows("kt", "k_base", "offs_n", "stride_k_s", "EVEN_N", "n_ok", "offs_dqk", s.qkDim, s.qkDimPad),
      ...this.loadRows("vt", "v_base", "offs_n", "stride_v_s", "EVEN_N", "n_ok", "offs_dv", s.vDim, s.vDimPad),
    ];
  }

  private headBases(): Lines {
    return [
      "q_base = q + off_b.to(tl.int64) * stride_q_b + off_h.to(tl.int64) * stride_q_h",
      "do_base = dout + off_b.to(tl.int64) * stride_dout_b + off_h.to(tl.int64) * stride_dout_h",
      "row_base = (off_b.to(tl.int64) * q_heads + off_h) * q_len  # LSE and delta rows",
    ];
  }

  private commonOffsets(): Lines {
    return [
      "offs_m0 = tl.arange(0, BLOCK_M)",
      "offs_n0 = tl.arange(0, BLOCK_N)",
      "offs_dqk = tl.arange(0, QK_D_PAD)",
      "offs_dv = tl.arange(0, V_D_PAD)",
      ...toLog2(this.spec),
    ];
  }

  // ---- top-level steps ----

  preprocess(): BackwardCode {
    const s = this.shape;
    return {
      kernel: "preprocess",
      lines: [
        "offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)",
        "off_h = tl.program_id(1)",
        "off_b = tl.program_id(2)",
        "offs_dv = tl.arange(0, V_D_PAD)",
        "m_ok = offs_m < q_len",
        ...this.loadRows("o", "out + off_b.to(tl.int64) * stride_out_b + off_h.to(tl.int64) * stride_out_h", "offs_m", "stride_out_s", "EVEN_M", "m_ok", "offs_dv", s.vDim, s.vDimPad),
        ...this.loadRows("do", "dout + off_b.to(tl.int64) * stride_dout_b + off_h.to(tl.int64) * stride_dout_h", "offs_m", "stride_dout_s", "EVEN_M", "m_ok", "offs_dv", s.vDim, s.vDimPad),
        "delta_i = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)",
        "tl.store(delta + (off_b.to(tl.int64) * q_heads + off_h) * q_len + offs_m, delta_i, mask=m_ok)",
      ],
    };
  }

  kvProgram(): BackwardCode {
    return {
      kernel: "dkdv",
      lines: [
        "group = q_heads // kv_heads  # grouped-query attention: this program sums dK, dV over the group",
        ...this.commonOffsets(),
        "start_n = pid_n * BLOCK_N",
        "k_base = k + off_b.to(tl.int64) * stride_k_b + off_hkv.to(tl.int64) * stride_k_h",
        "v_base = v + off_b.to(tl.int64) * stride_v_b + off_hkv.to(tl.int64) * stride_v_h",
        ...this.keySide("dkdv"),
        "dk_acc = tl.zeros([BLOCK_N, QK_D_PAD], dtype=tl.float32)",
        "dv_acc = tl.zeros([BLOCK_N, V_D_PAD], dtype=tl.float32)",
        "kv_block = start_n // SPARSE_KV",
        "# This program's row of each buffer-gradient workspace (programs in (b, hkv, kv tile) order).",
        "prog = ((off_b * kv_heads + off_hkv) * n_kv_tiles + pid_n).to(tl.int64)",
        ...this.mods.gradBuffers.map((g) => `${this.partialRow(g.slot)} = ${this.partialArg(g.slot)} + prog * ${g.size}`),
        "for g in range(0, group):",
        "    off_h = off_hkv * group + g",
        "    sparse_col = ((off_b % sparse_b) * sparse_h + off_h % sparse_h) * sparse_kv_blocks + kv_block",
        ...indent(this.headBases()),
      ],
    };
  }

  private partialArg(slot: number): string {
    return partialName(this.names.score[slot]);
  }

  private partialRow(slot: number): string {
    return `${this.partialArg(slot)}_row`;
  }

  /**
   * A pass's walk over the BlockMask blocks of its tile (walkTableRow, in the form the launcher
   * read from the tables the pass walks): the q blocks of the kv column (dkdv, q-direction tables,
   * width sparse_q_blocks) or the kv blocks of the q row (dq, kv tables, width sparse_kv_blocks).
   */
  private tableLoop(pass: BackwardPass, blocks: BlockKind, body: BackwardCode[]): Lines {
    const partial = blocks === "partial";
    const walk = pass === "dkdv"
      ? {
          numBlocks: partial ? "q_num_blocks" : "full_q_num_blocks", indices: partial ? "q_indices" : "full_q_indices",
          row: "sparse_col", width: "sparse_q_blocks", start: "start_m", sparse: "SPARSE_Q", tile: "BLOCK_M",
          tilesPerBlock: "TILES_PER_Q_BLOCK", len: "q_len",
          // A kv tile past the table's columns (kv_len beyond the BlockMask) has no q blocks.
          rowExists: "kv_block < sparse_kv_blocks",
        }
      : {
          numBlocks: partial ? "kv_num_blocks" : "full_kv_num_blocks", indices: partial ? "kv_indices" : "full_kv_indices",
          row: "sparse_row", width: "sparse_kv_blocks", start: "start_n", sparse: "SPARSE_KV", tile: "BLOCK_N",
          tilesPerBlock: "TILES_PER_KV_BLOCK", len: "kv_len",
        };
    const hoisted = body.flatMap((c) => c.hoisted ?? []);
    return [
      partial ? "# ---- partial blocks: the mask applies ----" : "# ---- full blocks: the mask is skipped ----",
      ...(hoisted.length ? ["# Mod terms that stay the same over the loop's tiles.", ...hoisted] : []),
      ...walkTableRow({ form: partial ? "PARTIAL_LOOP" : "FULL_LOOP", ...walk }, body.flatMap((c) => c.lines)),
    ];
  }

  qBlockLoop(blocks: BlockKind, body: BackwardCode[]): BackwardCode {
    return { kernel: "dkdv", lines: indent(this.tableLoop("dkdv", blocks, body)) };
  }

  storeKV(): BackwardCode {
    const s = this.shape;
    return {
      kernel: "dkdv",
      lines: [
        "dk_base = dk + off_b.to(tl.int64) * stride_dk_b + off_hkv.to(tl.int64) * stride_dk_h",
        "dv_base = dv + off_b.to(tl.int64) * stride_dv_b + off_hkv.to(tl.int64) * stride_dv_h",
        ...this.storeRows("dk_base", "offs_n", "stride_dk_s", "EVEN_N", "n_ok", "offs_dqk", s.qkDim, s.qkDimPad, "(dk_acc * scale).to(dk.dtype.element_ty)"),
        ...this.storeRows("dv_base", "offs_n", "stride_dv_s", "EVEN_N", "n_ok", "offs_dv", s.vDim, s.vDimPad, "dv_acc.to(dv.dtype.element_ty)"),
      ],
    };
  }

  qProgram(): BackwardCode {
    return {
      kernel: "dq",
      lines: [
        "off_hkv = off_h // (q_heads // kv_heads)",
        ...this.commonOffsets(),
        "start_m = pid_m * BLOCK_M",
        ...this.headBases(),
        ...this.querySide("dq"),
        "sparse_row = ((off_b % sparse_b) * sparse_h + off_h % sparse_h) * sparse_q_blocks + start_m // SPARSE_Q",
        "k_base = k + off_b.to(tl.int64) * stride_k_b + off_hkv.to(tl.int64) * stride_k_h",
        "v_base = v + off_b.to(tl.int64) * stride_v_b + off_hkv.to(tl.int64) * stride_v_h",
        "dq_acc = tl.zeros([BLOCK_M, QK_D_PAD], dtype=tl.float32)",
      ],
    };
  }

  kvBlockLoop(blocks: BlockKind, body: BackwardCode[]): BackwardCode {
    return { kernel: "dq", lines: this.tableLoop("dq", blocks, body) };
  }

  storeQ(): BackwardCode {
    const s = this.shape;
    return {
      kernel: "dq",
      lines: [
        "dq_base = dq + off_b.to(tl.int64) * stride_dq_b + off_h.to(tl.int64) * stride_dq_h",
        ...this.storeRows("dq_base", "offs_m", "stride_dq_s", "EVEN_M", "m_ok", "offs_dqk", s.qkDim, s.qkDimPad, "(dq_acc * scale).to(dq.dtype.element_ty)"),
      ],
    };
  }

  reduceBufferGrads(): BackwardCode {
    // One program per chunk of entries; programs' partials are added in program order.
    return {
      kernel: "reduce",
      lines: [
        "offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
        "ok = offs < SIZE",
        "acc = tl.zeros([BLOCK], dtype=tl.float32)",
        "ptrs = partials + offs  # 64-bit pointer steps: programs × SIZE may pass 2^31",
        "for prog in range(0, n_programs):",
        "    acc += tl.load(ptrs, mask=ok, other=0.0)",
        "    ptrs += SIZE",
        "tl.store(grad + offs, acc, mask=ok)",
      ],
    };
  }

  // ---- block-loop body steps ----

  loadTiles(pass: BackwardPass): BackwardCode {
    return { lines: pass === "dkdv" ? this.querySide(pass) : this.keySide(pass) };
  }

  qk(pass: BackwardPass): BackwardCode {
    // qk: the score the mods see (q·k·scale, f32), or the raw product when scale rides in to_log2 (scaleScore);
    // s: after the score mod and the masks.
    const product = pass === "dkdv" ? "tl.dot(kt, tl.trans(qt)" : "tl.dot(qt, tl.trans(kt)";
    return { lines: [`qk = ${product}${this.dotPrecision})`, ...scaleScore(this.spec), "s = qk"] };
  }

  scoreMod(pass: BackwardPass, blocks: BlockKind): BackwardCode {
    const m = this.render(this.spec.score!, "score", `sc${pass[1]}${blocks[0]}_`, pass);
    return { lines: [...m.lines, `s = ${m.value}`], hoisted: m.hoisted };
  }

  maskMod(pass: BackwardPass, blocks: BlockKind): BackwardCode {
    const m = this.render(this.spec.mask!, "mask", `mk${pass[1]}${blocks[0]}_`, pass);
    return { lines: [...m.lines, `s = tl.where(${m.value}, s, ${NEG_INF})`], hoisted: m.hoisted };
  }

  /** Per-row (query) vectors as the pass's tile takes them: columns in dkdv's transposed tiles. */
  private rowVector(pass: BackwardPass, name: string): string {
    return pass === "dkdv" ? `${name}[None, :]` : `${name}[:, None]`;
  }

  bounds(pass: BackwardPass): BackwardCode {
    const [rows, cols] = pass === "dkdv" ? ["m_ok[None, :]", "n_ok[:, None]"] : ["m_ok[:, None]", "n_ok[None, :]"];
    return {
      lines: [
        "if not EVEN_M:",
        `    s = tl.where(${rows}, s, ${NEG_INF})`,
        "if not EVEN_N:",
        `    s = tl.where(${cols}, s, ${NEG_INF})`,
      ],
    };
  }

  recomputeP(pass: BackwardPass): BackwardCode {
    return { lines: [`p = tl.math.exp2(s * to_log2 - ${this.rowVector(pass, "lse_i")})`] };
  }

  accumulateDV(): BackwardCode {
    return { lines: [`dv_acc = tl.dot(p.to(dot.dtype), dot, dv_acc${this.dotPrecision})  # Pᵀ·dO (p is Pᵀ here)`] };
  }

  dP(pass: BackwardPass): BackwardCode {
    const product = pass === "dkdv" ? "tl.dot(vt, tl.trans(dot)" : "tl.dot(dot, tl.trans(vt)";
    return { lines: [`dp = ${product}${this.dotPrecision})`] };
  }

  dS(pass: BackwardPass): BackwardCode {
    return { lines: [`ds = p * (dp - ${this.rowVector(pass, "delta_i")})`] };
  }

  bufferGrad(pass: BackwardPass, blocks: BlockKind): BackwardCode {
    const grad = this.mods.gradient!;
    const lines: Lines = [];
    const hoisted: Lines = [];
    this.mods.gradBuffers.forEach((gb, k) => {
      const sites = grad.buffers.find((b) => b.slot === gb.slot)!.sites;
      sites.forEach((site, n) => {
        const tag = `${k}_${n}${pass[1]}${blocks[0]}_`;
        const off = this.render(site.offset, "score", `go${tag}`, pass);
        const w = this.render(site.weight, "score", `gw${tag}`, pass);
        const row = this.partialRow(gb.slot);
        const entry = diagonalEntry(site.offset);
        hoisted.push(...off.hoisted, ...w.hoisted);
        lines.push(
          entry
            ? `# ${gb.name}: this tile's contributions summed along its diagonals (one entry each), each sum stored once`
            : `# ${gb.name}: this tile's contributions, entry by entry (a fixed-order reduction, no atomics)`,
          `if ${gradFlag(k)}:`,
          ...indent([
            ...off.lines,
            ...w.lines,
            `g_off = ${off.value}`,
            "g_ok = (g_off >= 0) & (p != 0.0)",
            `g_val = tl.where(g_ok, ${isOne(site.weight) ? "ds" : `ds * ${w.value}`}, 0.0)`,
            ...(entry
              ? [
                `if ${DIAGONAL_SWITCH.kernel}:`,
                ...indent(this.diagonalSums(entry, row, gb.size, `ge${tag}`)),
                "else:",
                ...indent(this.entryByEntry(row, gb.size)),
              ]
              : this.entryByEntry(row, gb.size)),
            "tl.debug_barrier()  # the next tile reads these entries back",
          ]),
        );
      });
    });
    return { lines, hoisted };
  }

  /** Adds g_val to the row one entry at a time: a tile-wide reduction per entry the tile touches. */
  private entryByEntry(row: string, size: number): Lines {
    return [
      `g_lo = tl.min(tl.where(g_ok, g_off, ${size}))`,
      "g_hi = tl.max(tl.where(g_ok, g_off, -1))",
      "for e in range(g_lo, g_hi + 1):",
      "    g_sum = tl.sum(tl.where(g_off == e, g_val, 0.0))",
      `    tl.store(${row} + e, tl.load(${row} + e) + g_sum)`,
    ];
  }

  /**
   * Adds g_val to the row diagonal by diagonal, for an entry `entry` that depends on q − kv only
   * (diagonalEntry). In the dkdv tile (rows: keys r, columns: queries c) key row r meets diagonal
   * t = r − c + BLOCK_M − 1 at column r + BLOCK_M − 1 − t; a gather within each row lines each chunk
   * of BLOCK_M diagonals up in columns, and one sum over the rows gives their totals. A diagonal's
   * entry is read at its first element, and distinct diagonals have distinct entries, so each
   * chunk is one masked read-add-write of the row.
   */
  private diagonalSums(entry: ModGraph, row: string, size: number, prefix: string): Lines {
    const r = tritonRenderer({ inputs: { ...MOD_INPUTS, q: "gd_q", kv: "gd_kv" }, bufferName: (slot) => this.names.score[slot], approxTanh: this.options.approxTanh });
    const e = renderGraph(entry, r, prefix);
    for (const h of r.helpers) this.helpers.add(h);
    return [
      "for g_k in tl.static_range((BLOCK_N + 2 * BLOCK_M - 2) // BLOCK_M):  # chunks covering the BLOCK_M + BLOCK_N - 1 diagonals",
      ...indent([
        "g_t = g_k * BLOCK_M + offs_m0[None, :]",
        "g_col = offs_n0[:, None] + (BLOCK_M - 1) - g_t",
        "g_on = (g_col >= 0) & (g_col < BLOCK_M)",
        "g_sum = tl.sum(tl.where(g_on, tl.gather(g_val, tl.where(g_on, g_col, 0), 1), 0.0), 0)[None, :]",
        "gd_kv = start_n + tl.maximum(g_t - (BLOCK_M - 1), 0) + kv_offset",
        "gd_q = start_m + tl.maximum((BLOCK_M - 1) - g_t, 0) + q_offset",
        ...e.statements,
        `g_e = ${e.result}`,
        `g_in = (g_t < BLOCK_M + BLOCK_N - 1) & (g_e >= 0) & (g_e < ${size})`,
        `tl.store(${row} + g_e, tl.load(${row} + g_e, mask=g_in, other=0.0) + g_sum, mask=g_in)`,
      ]),
    ];
  }

  scoreGrad(pass: BackwardPass, blocks: BlockKind): BackwardCode {
    // ∂mod/∂s = 1: dS is already 0 wherever P is.
    if (isOne(this.mods.gradient!.dScore)) return { lines: [] };
    const g = this.render(this.mods.gradient!.dScore, "score", `gs${pass[1]}${blocks[0]}_`, pass);
    // Where P = 0 nothing flows, even where ∂mod/∂s is infinite or NaN.
    return { lines: [...g.lines, `ds = tl.where(p == 0.0, 0.0, ds * ${g.value})`], hoisted: g.hoisted };
  }

  accumulateDK(): BackwardCode {
    return { lines: [`dk_acc = tl.dot(ds.to(qt.dtype), qt, dk_acc${this.dotPrecision})  # dSᵀ·Q (ds is dSᵀ here)`] };
  }

  accumulateDQ(): BackwardCode {
    return { lines: [`dq_acc = tl.dot(ds.to(kt.dtype), kt, dq_acc${this.dotPrecision})`] };
  }
}
