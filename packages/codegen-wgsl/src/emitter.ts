/**
 * The WGSL emitter: one method per template step, producing one compute shader.
 *
 * Per kv tile (BN keys):
 *   loadK    K tile → workgroup memory, V tile → registers (prefetchV: its latency hides
 *            behind Q·Kᵀ)                                                                 barrier
 *   qk       S (RM × RN per invocation) = Q·Kᵀ, vec4 steps, Q and K from workgroup memory
 *   mods     score mod, mask (partial blocks only), kv bounds — inlined per element, their
 *            per-row and per-key parts hoisted (ir's tile-mod.ts)
 *   softmax  row max across the TC invocations of a row group (workgroup memory + barrier,
 *            or subgroup shuffles); P = exp2(S − m) → workgroup memory; rescale O and l
 *   loadV    V (registers, or global without prefetchV) → workgroup memory, transposed   barrier
 *            (shareKV: V takes K's array, behind one more barrier)
 *   acc      O (RM × CV vec4 per invocation) += P·V                  barrier (unless double-buffered)
 * All arithmetic is f32. Hot loops are unrolled and read workgroup memory through per-invocation
 * row pointers with constant offsets, so WebGPU's bounds clamping costs one clamp per row, not
 * one per load.
 */
import { type TileMod, renderTileMod } from "@flexattn/ir";
import { type BlockKind, type KernelSpec, NUMERICS, type TemplateEmitter } from "@flexattn/template";
import { BINDING, capturedOffsets, paramsStruct } from "./abi.js";
import type { WgslGeometry } from "./geometry.js";
import { WGSL_LOAD_PRELUDE, WGSL_MOD_PRELUDE, wgslFloat, wgslRenderer } from "./renderer.js";
import { elementType, loadFunction, storageFormat, storeFunction } from "./storage.js";
import { indent, range } from "./text.js";

const COMP = ["x", "y", "z", "w"];

/** Emit `step(k)` for k in [0, n): fully unrolled (unroll 0 or ≥ n), else a loop of `unroll` copies. */
function unrolled(n: number, unroll: number, v: string, step: (k: string) => string): string {
  if (unroll === 0 || unroll >= n) return range(n).map((k) => `{\n${indent(step(String(k)))}\n}`).join("\n");
  let u = unroll;
  while (n % u !== 0) u--;
  const copies = range(u).map((k) => indent(`{\n${indent(step(k ? `${v} + ${k}` : v))}\n}`)).join("\n");
  return `for (var ${v} = 0; ${v} < ${n}; ${v} += ${u}) {\n${copies}\n}`;
}

export class WgslEmitter implements TemplateEmitter<string> {
  protected readonly unitType: string;
  protected readonly prescaled: boolean;
  protected readonly offsets: ReturnType<typeof capturedOffsets>;
  /** WGSL expression of the K/V buffer used by the current tile. */
  protected readonly buf: string;
  protected readonly mods: { mask: TileMod | null; score: TileMod | null };
  /** Workgroup arrays of the K and Vᵀ tiles (one array with shareKV). */
  protected readonly ks: string;
  protected readonly vs: string;

  constructor(
    protected readonly spec: KernelSpec,
    protected readonly g: WgslGeometry,
  ) {
    this.unitType = g.W === 1 ? "f32" : `vec${g.W}<f32>`;
    this.prescaled = spec.config.prescaleQk && spec.score === null && g.useQShared;
    this.offsets = capturedOffsets(spec);
    this.buf = g.buffers === 2 ? "buf" : "0";
    this.mods = { mask: this.tileMod("mask"), score: this.tileMod("score") };
    [this.ks, this.vs] = g.opts.shareKV ? ["fa_kv", "fa_kv"] : ["fa_ks", "fa_vs"];
  }

  // ---- helpers -------------------------------------------------------------------------

  /** The W rows of unit u as a vecW (or an f32) built from per-row names. */
  protected unitOf(u: number, name: (i: number) => string): string {
    const rows = range(this.g.W).map((k) => name(u * this.g.W + k));
    return this.g.W === 1 ? rows[0] : `${this.unitType}(${rows.join(", ")})`;
  }

  /** Row i's component of the unit value that holds it. */
  protected comp(unitName: (u: number) => string, i: number): string {
    const unit = unitName(Math.floor(i / this.g.W));
    return this.g.W === 1 ? unit : `${unit}.${COMP[i % this.g.W]}`;
  }

  /** A graph rendered for the register tile, its loop-invariant nodes hoisted (ir's tile-mod.ts). */
  protected tileMod(owner: "mask" | "score"): TileMod | null {
    const graph = owner === "mask" ? this.spec.mask : this.spec.score;
    if (!graph) return null;
    const offsets = owner === "mask" ? this.offsets.mask : this.offsets.score;
    return renderTileMod(graph, owner === "mask" ? "fm" : "fs", this.g.RM, this.g.RN, (i, j) => wgslRenderer({
      inputs: { score: `s_${i}_${j}`, b: "b", h: "hq", q: `qi_${i}`, kv: `kj_${j}` },
      bufferBase: (slot) => `${offsets[slot]}u`,
      specials: { posInf: "P.pos_inf", negInf: "NEG_INF", nan: "P.nan" },
      tanh: this.g.opts.tanh,
    }));
  }

  /** A mod applied to every S element: its per-tile column values, then one block per element. */
  protected applyMod(mod: TileMod, assign: (i: number, j: number, r: string) => string): string {
    const elements = this.eachS((i, j) => {
      const { statements, result } = mod.element(i, j);
      return `{\n${indent([...statements, assign(i, j, result)].join("\n"))}\n}`;
    });
    return [...mod.columns, elements].join("\n");
  }

  /** The tile column of this invocation's j-th S value. */
  protected col(j: number): string {
    return `c + ${j * this.g.TC}`;
  }

  /** For each S element of the register tile. */
  protected eachS(f: (i: number, j: number) => string): string {
    return range(this.g.RM).flatMap((i) => range(this.g.RN).map((j) => f(i, j))).join("\n");
  }

  /**
   * Cooperative load of `rows` × `width4` vec4 of a tensor tile (from the tile's first row and
   * head-dim element 0, or `at`), `k`-th share of this invocation: `use(k, x)` runs with the row r,
   * the vec4 column d4 (relative to `at.col`) and the value x in scope (0 past the length / dim).
   * With `at.from`, x is the share already loaded into that register (prefetchV) instead;
   * `at.first` names the tile's first row when it is not this tile's (q0 or kv0).
   */
  protected tileShares(tensor: "q" | "k" | "v", rows: number, width4: number, dim: number, use: (k: number, x: string) => string, at: { col?: number; from?: (k: number) => string; first?: string } = {}): string {
    const { T } = this.g;
    const total = rows * width4;
    const [len, base] = tensor === "q" ? ["P.q_len", "qb"] : ["P.kv_len", tensor === "k" ? "kb" : "vb"];
    const first = at.first ?? (tensor === "q" ? "q0" : "kv0");
    const col = at.col ? `${at.col} + ` : "";
    return range(Math.ceil(total / T)).map((k) => {
      const guard = (k + 1) * T > total ? `if (i < ${total}) ` : "";
      const x = at.from
        ? `let x = ${at.from(k)};`
        : `var x = vec4<f32>(0.0f);
    if (${first} + r < ${len}) { x = fa_ld4_${tensor}(${base} + (${first} + r) * P.stride_${tensor}_s + ${col}d4 * 4, ${dim - (at.col ?? 0)} - d4 * 4); }`;
      return `{
  let i = tid + ${k * T};
  ${guard}{
    let r = i / ${width4};
    let d4 = i - r * ${width4};
    ${x}
${indent(use(k, "x"), "    ")}
  }
}`;
    }).join("\n");
  }

  // ---- template steps ------------------------------------------------------------------

  program(): string {
    const { spec, g } = this;
    const vec4 = "vec4<f32>";
    const lines = [
      `// flexattn WGSL kernel: head dims ${spec.qkHeadDim}/${spec.vHeadDim}, ${spec.dtype} storage, tile ${g.BM}×${g.BN}, ` +
        `${g.T} invocations (${g.G} row groups × ${g.TC}); per invocation ${g.RM}×${g.RN} of S and ${g.RM}×${g.CV * 4} of O`,
      ...(g.opts.subgroups ? ["enable subgroups;"] : []),
      ...this.moduleScope(),
      ...(g.useQShared ? [`var<workgroup> fa_qs: array<array<${vec4}, ${g.QGS}>, ${g.G}>;`] : []),
      ...(g.opts.shareKV
        ? [`var<workgroup> fa_kv: array<array<array<${vec4}, ${g.KS}>, ${Math.max(g.BN, g.VW)}>, ${g.buffers}>;`]
        : [
          `var<workgroup> fa_ks: array<array<array<${vec4}, ${g.KS}>, ${g.BN}>, ${g.buffers}>;`,
          `var<workgroup> fa_vs: array<array<array<${vec4}, ${g.VS}>, ${g.VW}>, ${g.buffers}>;`,
        ]),
      `var<workgroup> fa_ps: array<array<${this.unitType}, ${g.PS}>, ${g.G * g.U}>;`,
      ...(g.useMx ? [`var<workgroup> fa_mx: array<array<${this.unitType}, ${g.MS}>, ${g.G * g.U}>;`] : []),
      "",
      `@compute @workgroup_size(${g.T})`,
      "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
    ];
    const body = [
      "let tid = i32(lid);",
      `let g = tid / ${g.TC};`,
      `let c = tid - g * ${g.TC};`,
      ...this.tileIndices(),
      // Row pointers: one bounds clamp each, then constant offsets in the unrolled loops.
      ...(g.useQShared ? ["let qrow = &fa_qs[g];"] : range(g.RM).map((i) => `let qv_${i} = (qb + min(q0 + g * ${g.RM} + ${i}, P.q_len - 1) * P.stride_q_s) >> 2u;`)),
      ...range(g.U).map((u) => `let prow${u} = &fa_ps[g * ${g.U} + ${u}];`),
      ...(g.useMx ? range(g.U).map((u) => `let mrow${u} = &fa_mx[g * ${g.U} + ${u}];`) : []),
      ...(g.buffers === 2 ? ["var buf = 0;"] : []),
      ...this.hoistedModCode(),
    ];
    return `${lines.join("\n")}\n${indent(body.join("\n"))}`;
  }

  /** Bindings, the Params struct, the mod and load/store helpers: everything at module scope but workgroup memory. */
  protected moduleScope(): string[] {
    const { spec } = this;
    const fmt = storageFormat(spec.dtype, this.g.opts.vec4);
    const el = elementType(fmt);
    const hasCaptured = this.offsets.words > 0;
    const bind = (n: number, decl: string) => `@group(0) @binding(${n}) ${decl};`;
    return [
      paramsStruct(),
      bind(BINDING.q, `var<storage, read> fa_q: array<${el}>`),
      bind(BINDING.k, `var<storage, read> fa_k: array<${el}>`),
      bind(BINDING.v, `var<storage, read> fa_v: array<${el}>`),
      bind(BINDING.out, `var<storage, read_write> fa_out: array<${el}>`),
      ...(spec.returnLse ? [bind(BINDING.lse, "var<storage, read_write> fa_lse: array<f32>")] : []),
      bind(BINDING.tables, "var<storage, read> fa_tab: array<i32>"),
      ...(hasCaptured ? [bind(BINDING.captured, "var<storage, read> fa_cap: array<u32>")] : []),
      bind(BINDING.params, "var<uniform> P: Params"),
      WGSL_MOD_PRELUDE,
      ...(hasCaptured ? [WGSL_LOAD_PRELUDE] : []),
      loadFunction("q", fmt, spec.qkHeadDim),
      loadFunction("k", fmt, spec.qkHeadDim),
      loadFunction("v", fmt, spec.vHeadDim),
      storeFunction(fmt, spec.vHeadDim),
      "",
    ];
  }

  /**
   * The workgroup's query tile, heads and batch, and the base offsets of its tensors; the query
   * index of each of the invocation's rows (qi_i). Needs tid, g and c defined.
   */
  protected tileIndices(): string[] {
    const { g } = this;
    return [
      "let NEG_INF = P.neg_inf;",
      "// The last query tiles (the longest rows under causal masks) are scheduled first.",
      `let m = (P.q_len + ${g.BM - 1}) / ${g.BM} - 1 - i32(wg.x);`,
      "let hq = i32(wg.y);",
      "let b = i32(wg.z);",
      "let hkv = hq / (P.q_heads / P.kv_heads);",
      `let q0 = m * ${g.BM};`,
      `let tab = ((b % P.sparse_b) * P.sparse_h + hq % P.sparse_h) * P.sparse_q_blocks + q0 / ${g.sparseBlock[0]};`,
      "let qb = b * P.stride_q_b + hq * P.stride_q_h;",
      "let kb = b * P.stride_k_b + hkv * P.stride_k_h;",
      "let vb = b * P.stride_v_b + hkv * P.stride_v_h;",
      "let ob = b * P.stride_out_b + hq * P.stride_out_h;",
      ...range(g.RM).map((i) => `let qi_${i} = q0 + g * ${g.RM} + ${i} + P.q_offset;`),
    ];
  }

  /** The mods' values that depend on b, h and the query row only, computed once. */
  protected hoistedModCode(): string[] {
    const { mask, score } = this.mods;
    const lines = [...(mask?.program ?? []), ...(score?.program ?? [])];
    return lines.length ? ["// Mod values fixed for the whole kernel (per head, per query row).", ...lines] : [];
  }

  loadQ(): string {
    const { g } = this;
    if (!g.useQShared) return indent("// Q is read from global memory (cached) inside Q·Kᵀ.");
    const scale = this.prescaled ? " * P.scale_log2" : "";
    return indent(`// Q tile → workgroup memory (visible after the first K tile's barrier)
${this.tileShares("q", g.BM, g.D4, g.D, (_k, x) => `fa_qs[r / ${g.RM}][(r % ${g.RM}) * ${g.D4} + d4] = ${x}${scale};`)}`);
  }

  initState(): string {
    const { g } = this;
    return indent(range(g.RM).map((i) =>
      [`var m_${i} = NEG_INF;`, `var l_${i} = 0.0f;`, ...range(g.CV).map((v) => `var o_${i}_${v} = vec4<f32>(0.0f);`)].join(" "),
    ).join("\n"));
  }

  /** A block kind's table for this query tile: its block count and its i-th kv block (WGSL expressions). */
  protected table(blocks: BlockKind): { count: string; block: (i: string) => string } {
    const [num, idx] = blocks === "partial" ? ["P.tab_kv_num", "P.tab_kv_idx"] : ["P.tab_full_num", "P.tab_full_idx"];
    return { count: `fa_tab[${num} + tab]`, block: (i) => `fa_tab[${idx} + tab * P.sparse_kv_blocks + ${i}]` };
  }

  /** Code before a block loop (none here; the matrix kernel's prefetchNext loads the first tile). */
  protected beforeTiles(_blocks: BlockKind): string[] {
    return [];
  }

  blockLoop(blocks: BlockKind, body: string[]): string {
    const { g } = this;
    const { count, block } = this.table(blocks);
    const SKV = g.sparseBlock[1];
    const tiles = SKV / g.BN;
    const inner = body.join("\n");
    const tile = tiles === 1
      ? `let kv0 = kblk * ${SKV};\n${inner}`
      : `for (var tt = 0; tt < ${tiles}; tt++) {
  let kv0 = kblk * ${SKV} + tt * ${g.BN};
  if (kv0 >= P.kv_len) { break; }
${indent(inner)}
}`;
    return indent(`// ${blocks} blocks${blocks === "partial" ? " (mask applied)" : " (mask skipped)"}
${this.beforeTiles(blocks).map((l) => `${l}\n`).join("")}for (var bi = 0; bi < ${count}; bi++) {
  let kblk = ${block("bi")};
${indent(tile)}
}`);
  }

  loadK(_blocks: BlockKind): string {
    const { g, buf } = this;
    return [
      ...range(g.RN).map((j) => `let krow${j} = &${this.ks}[${buf}][${this.col(j)}];`),
      ...range(g.CV).map((v) => `let vcol${v} = &${this.vs}[${buf}][c + ${v * g.TC}];`),
      this.tileShares("k", g.BN, g.D4, g.D, (_k, x) => `${this.ks}[${buf}][r][d4] = ${x};`),
      ...(g.opts.prefetchV ? ["// V tile → registers now; stored after the softmax (loadV).", this.prefetchV()] : []),
      "workgroupBarrier();",
    ].join("\n");
  }

  /** How many vec4 shares of a kv tile `width4` vec4 wide each invocation loads (tileShares' k). */
  protected kvShares(width4: number): number {
    return Math.ceil((this.g.BN * width4) / this.g.T);
  }

  /** This invocation's shares of the V tile → registers vpre0, vpre1, … (tileShares' order). */
  protected prefetchV(): string {
    const { g } = this;
    return [
      ...range(this.kvShares(g.DV4)).map((k) => `var vpre${k} = vec4<f32>(0.0f);`),
      this.tileShares("v", g.BN, g.DV4, g.DV, (k, x) => `vpre${k} = ${x};`),
    ].join("\n");
  }

  qk(): string {
    const { g } = this;
    const step = (d: string) => [
      ...range(g.RM).map((i) => `let aq${i} = ${g.useQShared ? `(*qrow)[${i * g.D4} + ${d}]` : `fa_q[qv_${i} + ${d}]`};`),
      ...range(g.RN).map((j) => `let bk${j} = (*krow${j})[${d}];`),
      this.eachS((i, j) => `s_${i}_${j} = fma(aq${i}.w, bk${j}.w, fma(aq${i}.z, bk${j}.z, fma(aq${i}.y, bk${j}.y, fma(aq${i}.x, bk${j}.x, s_${i}_${j}))));`),
    ].join("\n");
    const scale = this.prescaled ? null : this.spec.score ? "P.scale" : "P.scale_log2";
    return [
      range(g.RN).map((j) => `let kj_${j} = kv0 + ${this.col(j)} + P.kv_offset;`).join("\n"),
      this.eachS((i, j) => `var s_${i}_${j} = 0.0f;`),
      unrolled(g.D4, g.opts.unrollD, "d4", step),
      // Without a score mod the scores go straight to the exp2 domain.
      ...(scale ? [this.eachS((i, j) => `s_${i}_${j} *= ${scale};`)] : []),
    ].join("\n");
  }

  scoreMod(): string {
    return this.applyMod(this.mods.score!, (i, j, r) => `s_${i}_${j} = ${r};`);
  }

  maskMod(): string {
    return this.applyMod(this.mods.mask!, (i, j, r) => `s_${i}_${j} = select(NEG_INF, s_${i}_${j}, ${r});`);
  }

  bounds(): string {
    const { g } = this;
    return `if (kv0 + ${g.BN} > P.kv_len) {
${indent(this.eachS((i, j) => `s_${i}_${j} = select(NEG_INF, s_${i}_${j}, kv0 + ${this.col(j)} < P.kv_len);`))}
}`;
  }

  onlineSoftmax(): string {
    const { g } = this;
    const lines: string[] = [];
    if (this.spec.score) lines.push(this.eachS((i, j) => `s_${i}_${j} *= ${wgslFloat(NUMERICS.LOG2E)};`));
    const rowMax = (i: number) => range(g.RN).map((j) => `s_${i}_${j}`).reduce((a, b) => `max(${a}, ${b})`);
    lines.push(...range(g.RM).map((i) => `var mx_${i} = ${rowMax(i)};`));
    lines.push(this.exchange("mx", "max"));
    for (const i of range(g.RM)) {
      lines.push(
        `let mn_${i} = max(m_${i}, mx_${i});`,
        // A row with no unmasked key so far keeps m = -inf; exponentiate against 0 instead.
        `let mu_${i} = select(mn_${i}, 0.0f, mn_${i} == NEG_INF);`,
        `let al_${i} = exp2(m_${i} - mu_${i});`,
        `m_${i} = mn_${i};`,
        ...range(g.RN).map((j) => `let p_${i}_${j} = exp2(s_${i}_${j} - mu_${i});`),
        `l_${i} = l_${i} * al_${i} + ${range(g.RN).map((j) => `p_${i}_${j}`).join(" + ")};`,
        ...range(g.CV).map((v) => `o_${i}_${v} *= al_${i};`),
      );
    }
    for (const j of range(g.RN)) {
      for (const u of range(g.U)) lines.push(`(*prow${u})[${this.col(j)}] = ${this.unitOf(u, (i) => `p_${i}_${j}`)};`);
    }
    return lines.join("\n");
  }

  /** Reduce per-row values `${v}_i` across the TC invocations of each row group, in place. */
  protected exchange(v: string, op: "max" | "+"): string {
    const { g } = this;
    const combine = (a: string, b: string) => (op === "max" ? `max(${a}, ${b})` : `${a} + ${b}`);
    if (g.TC === 1) return "";
    if (g.opts.subgroups) {
      // Row groups are TC consecutive invocations inside one subgroup (the runner checks the size).
      const steps: string[] = [];
      for (let off = g.TC / 2; off >= 1; off /= 2) {
        steps.push(...range(g.RM).map((i) => `${v}_${i} = ${combine(`${v}_${i}`, `subgroupShuffleXor(${v}_${i}, ${off}u)`)};`));
      }
      return steps.join("\n");
    }
    // Every invocation of the group combines the TC partials in the same order, so all agree bitwise.
    return [
      ...range(g.U).map((u) => `(*mrow${u})[c] = ${this.unitOf(u, (i) => `${v}_${i}`)};`),
      "workgroupBarrier();",
      ...range(g.TC).flatMap((cc) => [
        ...range(g.U).map((u) => `let ${v}e${cc}_${u} = (*mrow${u})[${cc}];`),
        ...range(g.RM).map((i) => {
          const x = this.comp((u) => `${v}e${cc}_${u}`, i);
          return `${v}_${i} = ${cc === 0 ? x : combine(`${v}_${i}`, x)};`;
        }),
      ]),
    ].join("\n");
  }

  loadV(): string {
    const { g, buf } = this;
    // With shareKV, V overwrites K: every invocation must be done with Q·Kᵀ first.
    const kDone = g.opts.shareKV ? ["workgroupBarrier();"] : [];
    if (!g.opts.prefetchV) {
      return [...kDone, this.tileShares("v", g.BN, g.DV4, g.DV, (_k, x) => `${this.vs}[${buf}][d4][r] = ${x};`), "workgroupBarrier();"].join("\n");
    }
    const stores = this.tileShares("v", g.BN, g.DV4, g.DV, (_k, x) => `${this.vs}[${buf}][d4][r] = ${x};`, { from: (k) => `vpre${k}` });
    return [...kDone, stores, "workgroupBarrier();"].join("\n");
  }

  accumulate(): string {
    const { g } = this;
    const step = (n: string) => [
      ...range(g.U).map((u) => `let pu${u} = (*prow${u})[${n}];`),
      ...range(g.CV).map((v) => `let vv${v} = (*vcol${v})[${n}];`),
      // Every key of the tile adds p·V, p = 0 for a masked key, as on the matrix units: a NaN or
      // ±inf in a listed key's V reaches its row's columns (NUMERICS.zeroWeights). Keys past
      // kvLen were loaded as 0.
      ...range(g.RM).flatMap((i) => range(g.CV).map((v) => `o_${i}_${v} = fma(vec4<f32>(${this.comp((u) => `pu${u}`, i)}), vv${v}, o_${i}_${v});`)),
    ].join("\n");
    // Double-buffered K/V: the next tile writes the other buffer, and its first barrier
    // orders this tile's reads of P before the next writes of P.
    const end = g.buffers === 2 ? "buf = 1 - buf;" : "workgroupBarrier();";
    return [unrolled(g.BN, g.opts.unrollN, "n", step), end].join("\n");
  }

  epilogue(): string {
    const { g, spec } = this;
    const lines = [
      "// Row sums: each invocation holds the partial over its own columns.",
      ...range(g.RM).map((i) => `var lt_${i} = l_${i};`),
      this.exchange("lt", "+"),
    ];
    for (const i of range(g.RM)) {
      const store = range(g.CV).map((v) => `if (c + ${v * g.TC} < ${g.DV4}) { fa_st4_out(ob + r * P.stride_out_s + (c + ${v * g.TC}) * 4, ${g.DV} - (c + ${v * g.TC}) * 4, o_${i}_${v} * inv); }`);
      const lse = spec.returnLse
        ? [`if (c == 0) { fa_lse[(b * P.q_heads + hq) * P.q_len + r] = select(${wgslFloat(NUMERICS.LN2)} * (m_${i} + log2(lt_${i})), NEG_INF, lt_${i} == 0.0f); }`]
        : [];
      lines.push(`{
  let r = q0 + g * ${g.RM} + ${i};
  if (r < P.q_len) {
    // Fully masked rows (l = 0) write O·0 (0, or NaN where a listed key's V is NaN/±inf) and LSE = -inf.
    let inv = select(1.0f / lt_${i}, 0.0f, lt_${i} == 0.0f);
${indent(indent([...store, ...lse].join("\n")))}
  }
}`);
    }
    return `${indent(lines.join("\n"))}\n}\n`;
  }
}
