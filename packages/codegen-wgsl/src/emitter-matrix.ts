/**
 * The subgroup-matrix WGSL emitter (`subgroupMatrix` option): Q·Kᵀ and P·V on the tensor cores
 * through `chromium_experimental_subgroup_matrix`, f32 accuracy from f16 operands.
 *
 * Every f32 operand x is split into f16 hi + lo (hi = x with its low 13 mantissa bits cleared,
 * exact in f16; lo = x − hi rounded to f16), and a·b ≈ ah·bh + ah·bl + al·bh: three f16 products
 * with f32 accumulation per f32 product (relative error ~1e-5 at N = 4096, against 1e-3 for one).
 * WGSL has no element access to matrix results, so S goes through workgroup memory, where each
 * lane reads its row's values as the plain kernel's register tile (RM = 1, RN = CPL, TC = LPR):
 * the mods, bounds and row exchanges are the plain emitter's code.
 *
 * Per kv tile (BN keys):
 *   loadK    K and V tiles → f16 hi/lo in workgroup memory                                  barrier
 *   qk       S fragments = Q·Kᵀ (Q fragments in registers) → workgroup memory              barrier
 *            → each lane's CPL scores
 *   mods     as the plain kernel (ir's tile-mod.ts)
 *   softmax  row max over the row's LPR lanes (subgroup shuffles); lazy rescaling: a row keeps
 *            its reference max until the max passes it by TAU, so P ≤ 2^TAU and O is rescaled
 *            (a round trip through workgroup memory) only then; P → f16 hi/lo      barrier (flag)
 *   acc      O fragments += P·V                                                            barrier
 * With prefetchNext, loadK splits K and V from registers filled during the previous tile, then
 * loads the next tile's into them (the first tile of each block loop is loaded before the loop):
 * no tile waits on global memory before its first barrier.
 * Bank conflicts: every matrix row stride is a multiple of 16 bytes (the driver's alignment rule),
 * so rows of S start on few banks. S rows are padded by 16 bytes (padS), lanes 16–31 visit their
 * S columns one step rotated (staggerS: S reads and P stores touch 32 banks), and they store
 * their split halves in the other order (staggerSplit).
 * Range: operands must stay within f16's range once split (|Q·scale·log2e|, |K|, |V| < 65504); values
 * below f16's normal range (6e-5) keep an absolute error of about 6e-8.
 */
import { type BlockKind, type KernelSpec, NUMERICS } from "@flexattn/template";
import { WgslEmitter } from "./emitter.js";
import type { MatrixGeometry, WgslGeometry } from "./geometry.js";
import { wgslFloat } from "./renderer.js";
import { indent, range } from "./text.js";

/** Lazy rescaling threshold in log2 units: P stays ≤ 2^TAU, well inside f16. */
const TAU = 8;

/**
 * fn `name`: four values x → f16 hi at `arr`[i..i+3] and lo at `arr`[i+lo..]. With `stagger`,
 * o = 2 stores each half's second pair first (staggerSplit); the stored layout is the same.
 */
function splitFunction(name: string, arr: string, stagger: boolean): string {
  // Where each of the four components goes, past i (or i + lo); staggered, the vec4's halves swap.
  const at = stagger ? [" + o", " + o + 1", " + 2 - o", " + 3 - o"] : ["", " + 1", " + 2", " + 3"];
  const [h, l] = stagger ? ["hs", "ls"] : ["h", "l"];
  const stores = (v: string, lo: string) => [..."xyzw"].map((c, k) => `${arr}[i${lo}${at[k]}] = f16(${v}.${c});`).join(" ");
  return [
    "// hi keeps x's top 11 significant bits (exact in f16), lo = x - hi is exact in f32 and rounded to f16.",
    `fn ${name}(i: i32, x: vec4<f32>, lo: i32${stagger ? ", o: i32" : ""}) {`,
    "  let h = bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) & vec4<u32>(0xffffe000u));",
    "  let l = x - h;",
    ...(stagger ? ["  let hs = select(h, h.zwxy, o != 0);", "  let ls = select(l, l.zwxy, o != 0);"] : []),
    `  ${stores(h, "")}`,
    `  ${stores(l, " + lo")}`,
    "}",
  ].join("\n");
}

export class MatrixEmitter extends WgslEmitter {
  private readonly mg: MatrixGeometry;

  constructor(spec: KernelSpec, g: WgslGeometry) {
    super(spec, g);
    if (!g.matrix) throw new Error("MatrixEmitter needs a subgroupMatrix geometry");
    this.mg = g.matrix;
  }

  /** Offset of the V hi tile in sm: after K hi, K lo, or (shareKV) in their place once Q·Kᵀ is done. */
  private get vBase(): number {
    return this.g.opts.shareKV ? 0 : 2 * this.g.BN * this.mg.KS;
  }

  /** The split calls' last argument with staggerSplit. */
  private get stagger(): string {
    return this.g.opts.staggerSplit ? ", fa_stg" : "";
  }

  protected override col(j: number): string {
    return this.g.opts.staggerS ? `fa_col${j}` : super.col(j);
  }

  /** Offset of this lane's j-th S value in its row of sc (or of P in pp), plus `base`: u32, past srow or prow. */
  private rowOffset(j: number, base = 0): string {
    if (this.g.opts.staggerS) return `${base ? `${base}u + ` : ""}u32(fa_col${j})`;
    return `${base + j * this.g.TC}u + cu`;
  }

  /** A matrix load from workgroup memory at `base` (a per-subgroup expression, or none) + `offset`. */
  private load(kind: "FA_ML" | "FA_MR" | "FA_MA", layout: "row_major" | "col_major", arr: string, base: string | null, offset: number, stride: number): string {
    return `subgroupMatrixLoad<${kind}, ${layout}>(&${arr}, ${base ? `${base} + ` : ""}${offset}u, ${stride}u)`;
  }

  /**
   * O's fragments in chunks that fit sc (NF fragment columns, BN floats wide): per chunk its first
   * fragment column c0, its width n, and each fragment [rf, df] with its offset in the subgroup's tile.
   */
  private oChunks(): { c0: number; n: number; frags: (readonly [number, number, number])[] }[] {
    const { mg } = this;
    return range(Math.ceil(mg.DVF / mg.NF)).map((k) => {
      const c0 = k * mg.NF;
      const n = Math.min(mg.NF, mg.DVF - c0);
      return { c0, n, frags: range(mg.RF).flatMap((rf) => range(n).map((j) => [rf, c0 + j, rf * 16 * mg.SS + j * 16] as const)) };
    });
  }

  /** Store one chunk of O's fragments into this subgroup's sc tile. */
  private storeChunk(frags: (readonly [number, number, number])[]): string[] {
    return frags.map(([rf, df, off]) => `subgroupMatrixStore<row_major>(&fa_sc, sbase + ${off}u, fa_o_${rf}_${df}, ${this.mg.SS}u);`);
  }

  override program(): string {
    const { spec, g, mg } = this;
    const lines = [
      `// flexattn WGSL kernel (subgroup matrices): head dims ${spec.qkHeadDim}/${spec.vHeadDim}, ${spec.dtype} storage, tile ${g.BM}×${g.BN}, ` +
        `${mg.NSG} subgroups × ${mg.R} query rows; f16 hi/lo operands, three products per f32 product`,
      "enable f16;",
      "enable subgroups;",
      "enable chromium_experimental_subgroup_matrix;",
      "diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);",
      "alias FA_ML = subgroup_matrix_left<f16, 16, 16>;",
      "alias FA_MR = subgroup_matrix_right<f16, 16, 16>;",
      "alias FA_MA = subgroup_matrix_result<f32, 16, 16>;",
      ...this.moduleScope(),
      "// The rescale flag (element 0) comes first and fills 16 bytes, so every matrix array starts",
      "// 16-byte aligned whichever way the driver lays the variables out: on the H200 a 4-byte",
      "// variable placed among the arrays made every matrix kernel wrong (results/wgsl-h200.md).",
      "var<workgroup> fa_rescale: array<atomic<u32>, 4>;",
      `var<workgroup> fa_sm: array<f16, ${mg.smHalves}>;`,
      `var<workgroup> fa_sc: array<f32, ${mg.scFloats}>;`,
      `var<workgroup> fa_pp: array<f16, ${mg.ppHalves}>;`,
      splitFunction("fa_split", "fa_sm", g.opts.staggerSplit),
      splitFunction("fa_split_q", "fa_pp", g.opts.staggerSplit),
      "",
      `@compute @workgroup_size(${g.T})`,
      "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32, " +
        "@builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {",
    ];
    const body = [
      "let tid = i32(lid);",
      "// This lane's query row in the tile (g) and its first column of that row's S values (c).",
      `let g = i32(sg) * ${mg.R} + i32(lane) / ${mg.LPR};`,
      `let c = i32(lane) % ${mg.LPR};`,
      "let cu = u32(c);",
      ...(g.opts.staggerS ? [
        "// This lane's S columns in the order it visits them: lanes 16–31 one step rotated (staggerS).",
        "let fa_rot = i32(lane) / 16;",
        ...range(mg.CPL).map((j) => `let fa_col${j} = c + ${mg.LPR} * ((${j} + fa_rot) & ${mg.CPL - 1});`),
      ] : []),
      ...(g.opts.staggerSplit ? ["// Lanes 16–31 store each split vec4's halves in the other order (staggerSplit).", "let fa_stg = select(0, 2, (tid & 16) != 0);"] : []),
      ...this.tileIndices(),
      "// This subgroup's S and P tiles, and this lane's row in them.",
      `let sbase = sg * ${mg.R * mg.SS}u;`,
      `let pbase = sg * ${2 * mg.R * mg.PS}u;`,
      `let srow = sbase + (lane / ${mg.LPR}u) * ${mg.SS}u;`,
      `let prow = pbase + (lane / ${mg.LPR}u) * ${mg.PS}u;`,
      ...this.hoistedModCode(),
    ];
    return `${lines.join("\n")}\n${indent(body.join("\n"))}`;
  }

  override loadQ(): string {
    const { g, mg, spec } = this;
    const scale = spec.score ? "P.scale" : "P.scale_log2";
    const { QCW: CW } = mg;
    const QS = CW + 8; // row stride of a staged column chunk, 16-byte aligned
    const lines = [
      `// Q tile, scaled (${spec.score ? "natural" : "exp2"} domain), split into f16 hi/lo and staged ${CW} columns at a time`,
      "// through pp (free until the first P tile); every subgroup loads its rows' fragments once, to keep in registers.",
    ];
    for (let c0 = 0; c0 < g.D; c0 += CW) {
      lines.push(
        this.tileShares("q", g.BM, CW / 4, g.D, () => `fa_split_q(r * ${QS} + d4 * 4, x * ${scale}, ${g.BM * QS}${this.stagger});`, { col: c0 }),
        "workgroupBarrier();",
        ...range(mg.RF).flatMap((rf) => range(CW / 16).flatMap((k) => {
          const [kd, off] = [c0 / 16 + k, rf * 16 * QS + k * 16];
          return [
            `let fa_qh_${rf}_${kd} = ${this.load("FA_ML", "row_major", "fa_pp", `sg * ${mg.R * QS}u`, off, QS)};`,
            `let fa_ql_${rf}_${kd} = ${this.load("FA_ML", "row_major", "fa_pp", `sg * ${mg.R * QS}u`, g.BM * QS + off, QS)};`,
          ];
        })),
        "workgroupBarrier();",
      );
    }
    return indent(lines.join("\n"));
  }

  override initState(): string {
    const { mg } = this;
    const next = this.g.opts.prefetchNext
      ? ["// The next kv tile's shares of K and V (prefetchNext).", ...this.shares().map(([t, k]) => `var fa_${t}n${k} = vec4<f32>(0.0f);`)]
      : [];
    return indent([
      "var m_0 = NEG_INF;",
      "var l_0 = 0.0f;",
      ...range(mg.RF).flatMap((rf) => range(mg.DVF).map((df) => `var fa_o_${rf}_${df} = FA_MA();`)),
      ...next,
    ].join("\n"));
  }

  /** This invocation's K and V shares of a tile: [tensor, share index]. */
  private shares(): (readonly ["k" | "v", number])[] {
    const { g } = this;
    return [...range(this.kvShares(g.D4)).map((k) => ["k", k] as const), ...range(this.kvShares(g.DV4)).map((k) => ["v", k] as const)];
  }

  /** The K and V tile whose first key is `first` → registers fa_kn*, fa_vn* (rows past kv_len as zeros). */
  private loadNext(first: string): string {
    const { g } = this;
    return [
      this.tileShares("k", g.BN, g.D4, g.D, (k, x) => `fa_kn${k} = ${x};`, { first }),
      this.tileShares("v", g.BN, g.DV4, g.DV, (k, x) => `fa_vn${k} = ${x};`, { first }),
    ].join("\n");
  }

  /** prefetchNext: the block loop's first tile → registers before the loop. */
  protected override beforeTiles(blocks: BlockKind): string[] {
    if (!this.g.opts.prefetchNext) return [];
    const { count, block } = this.table(blocks);
    return [
      "// Its first tile's K and V → registers; each tile then loads the next one's (prefetchNext).",
      `if (${count} > 0) {`,
      indent([`let fa_first = ${block("0")} * ${this.g.sparseBlock[1]};`, this.loadNext("fa_first")].join("\n")),
      "}",
    ];
  }

  /**
   * The first key of the tile the block loop runs after this one (bi, tt), or kv_len if none:
   * the next tile of this block while it starts before kv_len, else the next block's first.
   */
  private nextTile(blocks: BlockKind): string {
    const { g } = this;
    const { count, block } = this.table(blocks);
    const SKV = g.sparseBlock[1];
    const inBlock = SKV > g.BN ? `if (tt + 1 < ${SKV / g.BN} && kv0 + ${g.BN} < P.kv_len) { fa_next = kv0 + ${g.BN}; } else ` : "";
    return [
      "var fa_next = P.kv_len;",
      `${inBlock}if (bi + 1 < ${count}) { fa_next = ${block("bi + 1")} * ${SKV}; }`,
    ].join("\n");
  }

  override loadK(blocks: BlockKind): string {
    const { g, mg } = this;
    const from = g.opts.prefetchNext ? { from: (k: number) => `fa_kn${k}` } : {};
    const k = this.tileShares("k", g.BN, g.D4, g.D, () => `fa_split(r * ${mg.KS} + d4 * 4, x, ${g.BN * mg.KS}${this.stagger});`, from);
    const next = g.opts.prefetchNext
      ? [
        ...(g.opts.shareKV ? ["// This tile's V stays in registers until K's place is free (qk).", ...this.shares().filter(([t]) => t === "v").map(([, i]) => `let fa_vc${i} = fa_vn${i};`)] : []),
        "// The next tile's K and V → registers: their latency hides behind this tile.",
        this.nextTile(blocks),
        this.loadNext("fa_next"),
      ]
      : [];
    if (!g.opts.shareKV) return ["// K and V tiles → f16 hi/lo in sm.", k, this.storeV(), ...next, "workgroupBarrier();"].join("\n");
    return [
      "// K tile → f16 hi/lo in sm; V takes its place once every subgroup is done with Q·Kᵀ (qk).",
      k,
      ...(g.opts.prefetchV ? ["// V tile → registers now, so its latency hides behind Q·Kᵀ.", this.prefetchV()] : []),
      ...next,
      "workgroupBarrier();",
    ].join("\n");
  }

  /**
   * The V tile → f16 hi/lo in sm at vBase: from the registers loaded a tile ahead (prefetchNext),
   * or with K (prefetchV), or from global memory.
   */
  private storeV(): string {
    const { g, mg } = this;
    const reg = g.opts.prefetchNext ? (g.opts.shareKV ? "fa_vc" : "fa_vn") : g.opts.prefetchV ? "vpre" : null;
    const from = reg ? { from: (k: number) => `${reg}${k}` } : {};
    return this.tileShares("v", g.BN, g.DV4, g.DV, () => `fa_split(${this.vBase} + r * ${mg.VKS} + d4 * 4, x, ${g.BN * mg.VKS}${this.stagger});`, from);
  }

  override qk(): string {
    const { g, mg } = this;
    const lines = [
      ...range(g.RN).map((j) => `let kj_${j} = kv0 + ${this.col(j)} + P.kv_offset;`),
      ...range(mg.RF).flatMap((rf) => range(mg.NF).map((nf) => `var fa_s_${rf}_${nf} = FA_MA();`)),
    ];
    for (const kd of range(mg.DF)) {
      const step = [
        ...range(mg.NF).flatMap((nf) => [
          `let kh${nf} = ${this.load("FA_MR", "col_major", "fa_sm", null, nf * 16 * mg.KS + kd * 16, mg.KS)};`,
          `let kl${nf} = ${this.load("FA_MR", "col_major", "fa_sm", null, g.BN * mg.KS + nf * 16 * mg.KS + kd * 16, mg.KS)};`,
        ]),
        ...range(mg.NF).flatMap((nf) => range(mg.RF).flatMap((rf) => this.products(`fa_s_${rf}_${nf}`, `fa_qh_${rf}_${kd}`, `fa_ql_${rf}_${kd}`, `kh${nf}`, `kl${nf}`))),
      ];
      lines.push(`{\n${indent(step.join("\n"))}\n}`);
    }
    lines.push(
      ...range(mg.RF).flatMap((rf) => range(mg.NF).map((nf) => `subgroupMatrixStore<row_major>(&fa_sc, sbase + ${rf * 16 * mg.SS + nf * 16}u, fa_s_${rf}_${nf}, ${mg.SS}u);`)),
      "workgroupBarrier();",
      ...range(g.RN).map((j) => `var s_0_${j} = fa_sc[srow + ${this.rowOffset(j)}];`),
      // The barrier that published S also ended every read of K: V can take its place, and the
      // softmax's flag barrier publishes it before P·V.
      ...(g.opts.shareKV ? ["// V tile → f16 hi/lo in sm, where K was.", this.storeV()] : []),
    );
    return lines.join("\n");
  }

  /** acc += a·b in three f16 products: ah·bh + ah·bl + al·bh. */
  private products(acc: string, ah: string, al: string, bh: string, bl: string): string[] {
    return [[ah, bh], [ah, bl], [al, bh]].map(([a, b]) => `${acc} = subgroupMatrixMultiplyAccumulate(${a}, ${b}, ${acc});`);
  }

  override onlineSoftmax(): string {
    const { g, mg, spec } = this;
    const cols = range(g.RN);
    const lines: string[] = [];
    if (spec.score) lines.push(...cols.map((j) => `s_0_${j} *= ${wgslFloat(NUMERICS.LOG2E)};`));
    lines.push(
      `var mx_0 = ${cols.map((j) => `s_0_${j}`).reduce((a, b) => `max(${a}, ${b})`)};`,
      this.exchange("mx", "max"),
      "// Lazy rescaling: keep the reference max m until the row max passes it by TAU.",
      "var al_0 = 1.0f;",
      `if (mx_0 > m_0 + ${wgslFloat(TAU)}) {`,
      "  al_0 = exp2(m_0 - mx_0);",
      "  m_0 = mx_0;",
      "  if (l_0 > 0.0f) { atomicStore(&fa_rescale[0], 1u); }",
      "}",
      "// A row with no unmasked key so far keeps m = -inf; exponentiate against 0 instead.",
      "let mu_0 = select(m_0, 0.0f, m_0 == NEG_INF);",
      "var ls_0 = 0.0f;",
      ...cols.map((j) => `{ let p = exp2(s_0_${j} - mu_0); ls_0 += p; let h = bitcast<f32>(bitcast<u32>(p) & 0xffffe000u); ` +
        `fa_pp[prow + ${this.rowOffset(j)}] = f16(h); fa_pp[prow + ${this.rowOffset(j, mg.R * mg.PS)}] = f16(p - h); }`),
      "l_0 = l_0 * al_0 + ls_0;",
      "let fa_flag = workgroupUniformLoad(&fa_rescale[0]);",
      "if (fa_flag != 0u) {",
      indent(this.rescaleO()),
      "  if (tid == 0) { atomicStore(&fa_rescale[0], 0u); }",
      "}",
    );
    return lines.join("\n");
  }

  /** O fragments → sc (NF at a time: sc is BN wide), each lane scales its row by al_0, → fragments. */
  private rescaleO(): string {
    const { g, mg } = this;
    return this.oChunks().flatMap(({ frags }) => [
      ...this.storeChunk(frags),
      "workgroupBarrier();",
      ...range(g.RN).map((j) => `fa_sc[srow + ${j * g.TC}u + cu] *= al_0;`),
      "workgroupBarrier();",
      ...frags.map(([rf, df, off]) => `fa_o_${rf}_${df} = ${this.load("FA_MA", "row_major", "fa_sc", "sbase", off, mg.SS)};`),
      "workgroupBarrier();",
    ]).join("\n");
  }

  override loadV(): string {
    return this.g.opts.shareKV ? "// (V was staged after Q·Kᵀ.)" : "// (V was staged with K.)";
  }

  override accumulate(): string {
    const { g, mg } = this;
    const lines: string[] = [];
    for (const nf of range(mg.NF)) {
      const step = [
        ...range(mg.RF).flatMap((rf) => [
          `let ph${rf} = ${this.load("FA_ML", "row_major", "fa_pp", "pbase", rf * 16 * mg.PS + nf * 16, mg.PS)};`,
          `let pl${rf} = ${this.load("FA_ML", "row_major", "fa_pp", "pbase", mg.R * mg.PS + rf * 16 * mg.PS + nf * 16, mg.PS)};`,
        ]),
        ...range(mg.DVF).map((df) => `{\n${indent([
          `let vh = ${this.load("FA_MR", "row_major", "fa_sm", null, this.vBase + nf * 16 * mg.VKS + df * 16, mg.VKS)};`,
          `let vl = ${this.load("FA_MR", "row_major", "fa_sm", null, this.vBase + g.BN * mg.VKS + nf * 16 * mg.VKS + df * 16, mg.VKS)};`,
          ...range(mg.RF).flatMap((rf) => this.products(`fa_o_${rf}_${df}`, `ph${rf}`, `pl${rf}`, "vh", "vl")),
        ].join("\n"))}\n}`),
      ];
      lines.push(`{\n${indent(step.join("\n"))}\n}`);
    }
    lines.push("workgroupBarrier();");
    return lines.join("\n");
  }

  override epilogue(): string {
    const { g, mg, spec } = this;
    const lines = [
      "// Row sums: each lane holds the partial over its own columns.",
      "var lt_0 = l_0;",
      this.exchange("lt", "+"),
      "let fa_r = q0 + g;",
      "// Fully masked rows (l = 0) write O·0 (0, or NaN where a listed key's V is NaN/±inf) and LSE = -inf.",
      "let inv = select(1.0f / lt_0, 0.0f, lt_0 == 0.0f);",
    ];
    // O leaves through sc, NF fragments (BN columns) at a time; each lane stores vec4s of its row.
    const vecsPerLane = (4 * mg.NF) / mg.LPR;
    for (const { c0, n, frags } of this.oChunks()) {
      lines.push(
        "workgroupBarrier();",
        ...this.storeChunk(frags),
        "workgroupBarrier();",
        `if (fa_r < P.q_len) {`,
        ...range(vecsPerLane).map((k) => {
          const col = `(c + ${k * mg.LPR}) * 4`; // column in the chunk
          return `  if (c + ${k * mg.LPR} < ${4 * n}) { let e = srow + u32(${col}); ` +
            `fa_st4_out(ob + fa_r * P.stride_out_s + ${c0 * 16} + ${col}, ${g.DV - c0 * 16} - ${col}, vec4<f32>(fa_sc[e], fa_sc[e + 1u], fa_sc[e + 2u], fa_sc[e + 3u]) * inv); }`;
        }),
        "}",
      );
    }
    if (spec.returnLse) {
      lines.push(`if (c == 0 && fa_r < P.q_len) { fa_lse[(b * P.q_heads + hq) * P.q_len + fa_r] = select(${wgslFloat(NUMERICS.LN2)} * (m_0 + log2(lt_0)), NEG_INF, lt_0 == 0.0f); }`);
    }
    return `${indent(lines.join("\n"))}\n}\n`;
  }
}
