/**
 * The WGSL BackwardEmitter: one method per backward step (template's backward-steps.ts), into
 * one shader module with an entry point per pass:
 *
 *   fa_bwd_preprocess  (q tile of 64 rows, hq, b)  delta = rowsum(dO ∘ O) → scratch
 *   fa_bwd_dkdv        (kv tile, hkv, b)           K, V tiles held in workgroup memory; for each query
 *                                                  head of the group, for each q tile of the column's
 *                                                  partial then full blocks (q-direction tables):
 *                                                    tile phase     Q, dO, LSE, delta → workgroup memory
 *                                                    element phase  one (query, key) pair per invocation
 *                                                                   at a time: s, P, dP, dS, mod derivatives
 *                                                    walk           buffer-gradient contributions: each owner
 *                                                                   invocation (entry ≡ tid mod owners) adds those
 *                                                                   of its partial-row entries, found through its
 *                                                                   bitmask, in (site, element) order; a site
 *                                                                   with one entry per tile (per head) by a tree
 *                                                    product phase  dK, dV accumulate in registers, each
 *                                                                   invocation owning some vec4 of them
 *   fa_bwd_dq          (q tile, hq, b)             the same over the row's kv blocks; dQ in registers
 *   fa_bwd_reduce      (64 words)                  buffer gradients = partial rows summed in program order
 *
 * Steps contribute to the phases of a tile through slots (WgslBackwardCode); the block loops
 * assemble them between barriers. Every (query, key) pair is visited once per pass: no float
 * atomics (only the walk's ownership bitmasks are built with atomicOr, whose result has no order).
 * Elements with P = 0 (masked, out of bounds, fully masked rows) contribute nothing, through
 * selects, so a non-finite derivative there cannot leak a NaN. All arithmetic is f32.
 */
import { FlexAttnError, INPUT_BIT, type ModGraph, inputDependence, renderGraph } from "@flexattn/ir";
import type { BackwardEmitter, BackwardMods, BackwardPass, BlockKind, KernelSpec } from "@flexattn/template";
import { capturedOffsets } from "./abi.js";
import { BACKWARD_BINDING, backwardParamsStruct, gradBufferOffsets } from "./backward-abi.js";
import { WGSL_LOAD_PRELUDE, WGSL_MOD_PRELUDE, wgslRenderer } from "./renderer.js";
import { loadFunction, storageFormat } from "./storage.js";
import { indentLines, range } from "./text.js";

/** A step's code: whole lines (program-level steps) or its part of a tile's phases. */
export interface WgslBackwardCode {
  lines?: string[];
  /** Tile phase: cooperative loads into workgroup memory. */
  tile?: string[];
  /** Element phase: per (i, j) element, in step order. */
  element?: string[];
  /** After the element phase's barrier: the owners' walk over the buffer-gradient contributions. */
  walk?: string[];
  /** After the element phase's barrier: the tile products into this invocation's accumulators. */
  after?: string[];
}

/** The sizes a backward kernel is generated for. */
export interface WgslBackwardGeometry {
  readonly BM: number;
  readonly BN: number;
  /** Invocations per workgroup. */
  readonly T: number;
  readonly D: number;
  readonly DV: number;
  readonly D4: number;
  readonly DV4: number;
  readonly SQ: number;
  readonly SKV: number;
  /** Load sites of the captured f32 buffers that receive a gradient. */
  readonly sites: number;
  /** Those of them whose entry moves over the tile (not tileWide): the owners walk their contributions. */
  readonly walkedSites: number;
  readonly sharedBytes: number;
}

export const PREPROCESS_WORKGROUP = 64;
export const REDUCE_WORKGROUP = 64;

/**
 * Invocations that add a tile's buffer-gradient contributions into the partial row, each owning
 * the entries ≡ its index mod this count. At 64 their bitmasks take 8 bytes per contribution, as
 * much as the contributions' entries and values, while a relative-position tile's BM + BN − 1
 * entries (up to 64) still land on distinct owners.
 */
export const gradOwners = (T: number): number => Math.min(T, 64);

/** Words of one owner's bitmask: a bit per (site, tile element) contribution. */
export const gradMaskWords = (sites: number, elements: number): number => Math.ceil((sites * elements) / 32);

/** Whether a load site's entry is the same for the whole tile: its offset reads neither q nor kv. */
export const tileWide = (offset: ModGraph): boolean => (inputDependence(offset).at(-1)! & (INPUT_BIT.q | INPUT_BIT.kv)) === 0;

export class WgslBackwardEmitter implements BackwardEmitter<WgslBackwardCode> {
  private readonly offsets: ReturnType<typeof capturedOffsets>;
  private readonly grads: { offsets: number[]; words: number };
  /** Every load site of a buffer that receives a gradient: its graphs and its buffer's offset in a partial row. */
  private readonly siteList: { weight: ModGraph; offset: ModGraph; at: number; walked: boolean }[];

  constructor(
    readonly spec: KernelSpec,
    readonly mods: BackwardMods,
    readonly g: WgslBackwardGeometry,
  ) {
    this.offsets = capturedOffsets(spec);
    this.grads = gradBufferOffsets(mods);
    const sites = mods.gradBuffers.flatMap((gb, k) =>
      mods.gradient!.buffers.find((b) => b.slot === gb.slot)!.sites.map((s) => ({
        weight: s.weight, offset: s.offset, at: this.grads.offsets[k], walked: !tileWide(s.offset),
      })),
    );
    // Sites the owners walk first (g.walkedSites of them), tile-wide ones (summed by trees) after:
    // contribution k = site·E + e then indexes the owners' masks and entries for the walked sites alone.
    this.siteList = [...sites.filter((x) => x.walked), ...sites.filter((x) => !x.walked)];
  }

  /** Statements computing `graph` for the current element, and its value's expression. */
  private render(graph: ModGraph, owner: "mask" | "score", prefix: string): { statements: string[]; result: string } {
    const offsets = owner === "mask" ? this.offsets.mask : this.offsets.score;
    const r = wgslRenderer({
      inputs: { score: "x", b: "b", h: "hq", q: "qi", kv: "kj" },
      bufferBase: (slot) => {
        if (offsets[slot] === undefined) throw new FlexAttnError(`codegen-wgsl backward: no captured buffer ${owner}[${slot}]`);
        return `${offsets[slot]}u`;
      },
      specials: { posInf: "P.pos_inf", negInf: "NEG_INF", nan: "P.nan" },
    });
    return renderGraph(graph, r, prefix);
  }

  /** Module scope: bindings, params, helpers and workgroup memory. */
  moduleScope(): string {
    const { spec, g } = this;
    const fmt = storageFormat(spec.dtype, false);
    const el = fmt === "f32" ? "f32" : "u32";
    const B = BACKWARD_BINDING;
    const bind = (n: number, decl: string) => `@group(0) @binding(${n}) ${decl};`;
    const hasCaptured = this.offsets.words > 0;
    const E = g.BM * g.BN;
    return [
      `// flexattn WGSL backward: head dims ${spec.qkHeadDim}/${spec.vHeadDim}, ${spec.dtype} storage, tile ${g.BM}×${g.BN}, ` +
        `${g.T} invocations; ${spec.mask ? `mask ${spec.mask.key}` : "no mask"}, ${spec.score ? `score mod ${spec.score.key}` : "identity score"}`,
      backwardParamsStruct(),
      bind(B.q, `var<storage, read> fa_q: array<${el}>`),
      bind(B.k, `var<storage, read> fa_k: array<${el}>`),
      bind(B.v, `var<storage, read> fa_v: array<${el}>`),
      bind(B.dout, `var<storage, read> fa_dout: array<${el}>`),
      bind(B.out, `var<storage, read> fa_out: array<${el}>`),
      bind(B.tables, "var<storage, read> fa_tab: array<i32>"),
      ...(hasCaptured ? [bind(B.captured, "var<storage, read> fa_cap: array<u32>")] : []),
      bind(B.scratch, "var<storage, read_write> fa_scratch: array<f32>"),
      bind(B.dq, "var<storage, read_write> fa_dq: array<f32>"),
      bind(B.dkv, "var<storage, read_write> fa_dkv: array<f32>"),
      bind(B.params, "var<uniform> P: Params"),
      WGSL_MOD_PRELUDE,
      ...(hasCaptured ? [WGSL_LOAD_PRELUDE] : []),
      loadFunction("q", fmt, spec.qkHeadDim),
      loadFunction("k", fmt, spec.qkHeadDim),
      loadFunction("v", fmt, spec.vHeadDim),
      loadFunction("dout", fmt, spec.vHeadDim),
      loadFunction("out", fmt, spec.vHeadDim),
      `var<workgroup> fa_qs: array<vec4<f32>, ${g.BM * g.D4}>;`,
      `var<workgroup> fa_dos: array<vec4<f32>, ${g.BM * g.DV4}>;`,
      `var<workgroup> fa_ks: array<vec4<f32>, ${g.BN * g.D4}>;`,
      `var<workgroup> fa_vs: array<vec4<f32>, ${g.BN * g.DV4}>;`,
      `var<workgroup> fa_lse_s: array<f32, ${g.BM}>;`,
      `var<workgroup> fa_delta_s: array<f32, ${g.BM}>;`,
      `var<workgroup> fa_p: array<f32, ${E}>;`,
      `var<workgroup> fa_ds: array<f32, ${E}>;`,
      ...(g.sites
        ? [
          // Contribution k = site·E + e: its partial-row entry and value; bit k of its owner's mask
          // (word k/32 of owner o at (k/32)·owners + o) says it is live.
          `var<workgroup> fa_gval: array<f32, ${g.sites * E}>;`,
          ...(this.g.walkedSites
            ? [
              `var<workgroup> fa_goff: array<i32, ${this.g.walkedSites * E}>;`,
              `var<workgroup> fa_gmask: array<atomic<u32>, ${gradOwners(g.T) * gradMaskWords(this.g.walkedSites, E)}>;`,
            ]
            : []),
        ]
        : []),
      "",
    ].join("\n");
  }

  /**
   * Cooperative load of `rows` rows (from `first`, 0 past `len`) of a tensor into a workgroup
   * array of `width4` vec4 per row (0 past the head dim).
   */
  private loadRows(dst: string, tensor: string, base: string, first: string, len: string, rows: number, width4: number, dim: number): string[] {
    return [
      `for (var t = tid; t < ${rows * width4}; t += ${this.g.T}) {`,
      `  let r = t / ${width4};`,
      `  let d4 = t - r * ${width4};`,
      `  var x = vec4<f32>(0.0f);`,
      `  if (${first} + r < ${len}) { x = fa_ld4_${tensor}(${base} + (${first} + r) * P.stride_${tensor}_s + d4 * 4, ${dim} - d4 * 4); }`,
      `  ${dst}[t] = x;`,
      `}`,
    ];
  }

  /** Q, dO, LSE and delta rows of the q tile at row0. */
  private loadQSide(): string[] {
    const { g } = this;
    return [
      ...this.loadRows("fa_qs", "q", "qb", "row0", "P.q_len", g.BM, g.D4, g.D),
      ...this.loadRows("fa_dos", "dout", "dob", "row0", "P.q_len", g.BM, g.DV4, g.DV),
      `for (var t = tid; t < ${g.BM}; t += ${g.T}) {`,
      `  let ok = row0 + t < P.q_len;`,
      `  let r = rowbase + select(0, row0 + t, ok);`,
      `  fa_lse_s[t] = select(NEG_INF, fa_scratch[r], ok);`,
      `  fa_delta_s[t] = select(0.0f, fa_scratch[P.scratch_delta + r], ok);`,
      `}`,
    ];
  }

  /** Register accumulators `${name}_k` (vec4) owned by this invocation: k-th is output tid + k·T of `count`. */
  private accumulators(name: string, count: number): { n: number; declare: string[]; each: (f: (reg: string, o: string) => string[]) => string[] } {
    const n = Math.ceil(count / this.g.T);
    const guard = n * this.g.T > count;
    return {
      n,
      declare: range(n).map((k) => `var ${name}_${k} = vec4<f32>(0.0f);`),
      each: (f) => range(n).flatMap((k) => {
        const body = f(`${name}_${k}`, "o");
        return [`{`, `  let o = tid + ${k * this.g.T};`, ...(guard ? [`  if (o < ${count}) {`, ...body.map((l) => `    ${l}`), `  }`] : body.map((l) => `  ${l}`)), `}`];
      }),
    };
  }

  private get dk() {
    return this.accumulators("dk", this.g.BN * this.g.D4);
  }

  private get dv() {
    return this.accumulators("dv", this.g.BN * this.g.DV4);
  }

  private get dq() {
    return this.accumulators("dq", this.g.BM * this.g.D4);
  }

  // ---- top-level steps ----

  preprocess(): WgslBackwardCode {
    const { g } = this;
    return {
      lines: [
        `// delta = rowsum(dO ∘ O), one invocation per query row.`,
        `@compute @workgroup_size(${PREPROCESS_WORKGROUP})`,
        `fn fa_bwd_preprocess(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {`,
        `  let i = i32(wg.x) * ${PREPROCESS_WORKGROUP} + i32(lid);`,
        `  let hq = i32(wg.y);`,
        `  let b = i32(wg.z);`,
        `  if (i < P.q_len) {`,
        `    let ob = b * P.stride_out_b + hq * P.stride_out_h + i * P.stride_out_s;`,
        `    let gb = b * P.stride_dout_b + hq * P.stride_dout_h + i * P.stride_dout_s;`,
        `    var acc = 0.0f;`,
        `    for (var d4 = 0; d4 < ${g.DV4}; d4++) {`,
        `      acc += dot(fa_ld4_out(ob + d4 * 4, ${g.DV} - d4 * 4), fa_ld4_dout(gb + d4 * 4, ${g.DV} - d4 * 4));`,
        `    }`,
        `    fa_scratch[P.scratch_delta + (b * P.q_heads + hq) * P.q_len + i] = acc;`,
        `  }`,
        `}`,
      ],
    };
  }

  kvProgram(): WgslBackwardCode {
    const { g } = this;
    const G = this.grads.words;
    return {
      lines: [
        `// dK, dV: one workgroup per (kv tile, kv head, batch).`,
        `@compute @workgroup_size(${g.T})`,
        `fn fa_bwd_dkdv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {`,
        `  let tid = i32(lid);`,
        `  let NEG_INF = P.neg_inf;`,
        `  let nt = i32(wg.x);`,
        `  let hkv = i32(wg.y);`,
        `  let b = i32(wg.z);`,
        `  let group_size = P.q_heads / P.kv_heads;`,
        `  let col0 = nt * ${g.BN};`,
        `  let kv_block = col0 / ${g.SKV};`,
        `  let kb = b * P.stride_k_b + hkv * P.stride_k_h;`,
        `  let vb = b * P.stride_v_b + hkv * P.stride_v_h;`,
        ...indentLines([
          ...this.loadRows("fa_ks", "k", "kb", "col0", "P.kv_len", g.BN, g.D4, g.D),
          ...this.loadRows("fa_vs", "v", "vb", "col0", "P.kv_len", g.BN, g.DV4, g.DV),
        ]),
        ...(G
          ? [
            `  // This workgroup's row of buffer-gradient partials, zeroed (its entries' owners add into it).`,
            `  let part = P.scratch_partials + ((b * P.kv_heads + hkv) * P.num_kv_tiles + nt) * ${G};`,
            `  for (var t = tid; t < ${G}; t += ${g.T}) { fa_scratch[part + t] = 0.0f; }`,
            `  storageBarrier();`,
          ]
          : []),
        ...[...this.dk.declare, ...this.dv.declare].map((l) => `  ${l}`),
        `  for (var hq = hkv * group_size; hq < (hkv + 1) * group_size; hq++) {`,
        `    let tcol = ((b % P.sparse_b) * P.sparse_h + hq % P.sparse_h) * P.sparse_kv_blocks + kv_block;`,
        `    let qb = b * P.stride_q_b + hq * P.stride_q_h;`,
        `    let dob = b * P.stride_dout_b + hq * P.stride_dout_h;`,
        `    let rowbase = (b * P.q_heads + hq) * P.q_len;`,
      ],
    };
  }

  qBlockLoop(blocks: BlockKind, body: WgslBackwardCode[]): WgslBackwardCode {
    return { lines: indentLines(this.tableLoop("dkdv", blocks, body), "    ") };
  }

  /**
   * A pass's walk over the BlockMask blocks of its tile (the q blocks of the kv column, from the
   * q-direction tables, or the kv blocks of the q row), each block cut into tiles, each tile in
   * three phases between barriers.
   */
  private tableLoop(pass: BackwardPass, blocks: BlockKind, body: WgslBackwardCode[]): string[] {
    const { g } = this;
    const dkdv = pass === "dkdv";
    const [num, idx] = dkdv
      ? blocks === "partial" ? ["P.tab_q_num", "P.tab_q_idx"] : ["P.tab_full_q_num", "P.tab_full_q_idx"]
      : blocks === "partial" ? ["P.tab_kv_num", "P.tab_kv_idx"] : ["P.tab_full_kv_num", "P.tab_full_kv_idx"];
    const [row, width, sparse, tile, first, len] = dkdv
      ? ["tcol", "P.sparse_q_blocks", g.SQ, g.BM, "row0", "P.q_len"]
      : ["trow", "P.sparse_kv_blocks", g.SKV, g.BN, "col0", "P.kv_len"];
    const cat = (k: keyof WgslBackwardCode) => body.flatMap((c) => c[k] ?? []);
    const E = g.BM * g.BN;
    const perInvocation = Math.ceil(E / g.T);
    const element = [
      `let i = e / ${g.BN};`,
      `let j = e - i * ${g.BN};`,
      `let qi = row0 + i + P.q_offset;`,
      `let kj = col0 + j + P.kv_offset;`,
      ...cat("element"),
    ];
    const elements = [
      `for (var n = 0; n < ${perInvocation}; n++) {`,
      `  let e = tid + n * ${g.T};`,
      ...(perInvocation * g.T > E ? [`  if (e < ${E}) {`, ...element.map((l) => `    ${l}`), `  }`] : element.map((l) => `  ${l}`)),
      `}`,
    ];
    const tileCode = [...cat("tile"), `workgroupBarrier();`, ...elements, `workgroupBarrier();`, ...cat("walk"), ...cat("after"), `workgroupBarrier();`];
    return [
      `{ // ${blocks} blocks of the ${dkdv ? "kv column" : "q row"}${blocks === "partial" ? " (mask applied)" : ""}`,
      `  let nb = fa_tab[${num} + ${row}];`,
      `  for (var bi = 0; bi < nb; bi++) {`,
      `    let blk = fa_tab[${idx} + ${row} * ${width} + bi];`,
      `    for (var sub = 0; sub < ${sparse / tile}; sub++) {`,
      `      let ${first} = blk * ${sparse} + sub * ${tile};`,
      `      if (${first} >= ${len}) { break; }`,
      ...indentLines(tileCode, "      "),
      `    }`,
      `  }`,
      `}`,
    ];
  }

  storeKV(): WgslBackwardCode {
    const { g } = this;
    const store = (acc: ReturnType<WgslBackwardEmitter["accumulators"]>, width4: number, at: string) => acc.each((reg, o) => [
      `let j = ${o} / ${width4};`,
      `let d4 = ${o} - j * ${width4};`,
      `if (col0 + j < P.kv_len) {`,
      `  let w = ${at} + ((b * P.kv_heads + hkv) * P.kv_len + col0 + j) * ${width4 * 4} + d4 * 4;`,
      `  fa_dkv[w] = ${reg}.x; fa_dkv[w + 1] = ${reg}.y; fa_dkv[w + 2] = ${reg}.z; fa_dkv[w + 3] = ${reg}.w;`,
      `}`,
    ]);
    return {
      lines: [
        `  }`,
        ...indentLines([...store(this.dk, g.D4, "0"), ...store(this.dv, g.DV4, "P.dv_offset")]),
        `}`,
      ],
    };
  }

  qProgram(): WgslBackwardCode {
    const { g } = this;
    return {
      lines: [
        `// dQ: one workgroup per (q tile, q head, batch).`,
        `@compute @workgroup_size(${g.T})`,
        `fn fa_bwd_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {`,
        `  let tid = i32(lid);`,
        `  let NEG_INF = P.neg_inf;`,
        `  let mt = i32(wg.x);`,
        `  let hq = i32(wg.y);`,
        `  let b = i32(wg.z);`,
        `  let hkv = hq / (P.q_heads / P.kv_heads);`,
        `  let row0 = mt * ${g.BM};`,
        `  let trow = ((b % P.sparse_b) * P.sparse_h + hq % P.sparse_h) * P.sparse_q_blocks + row0 / ${g.SQ};`,
        `  let qb = b * P.stride_q_b + hq * P.stride_q_h;`,
        `  let dob = b * P.stride_dout_b + hq * P.stride_dout_h;`,
        `  let kb = b * P.stride_k_b + hkv * P.stride_k_h;`,
        `  let vb = b * P.stride_v_b + hkv * P.stride_v_h;`,
        `  let rowbase = (b * P.q_heads + hq) * P.q_len;`,
        ...indentLines(this.loadQSide()),
        ...this.dq.declare.map((l) => `  ${l}`),
      ],
    };
  }

  kvBlockLoop(blocks: BlockKind, body: WgslBackwardCode[]): WgslBackwardCode {
    return { lines: indentLines(this.tableLoop("dq", blocks, body)) };
  }

  storeQ(): WgslBackwardCode {
    const { g } = this;
    const store = this.dq.each((reg, o) => [
      `let i = ${o} / ${g.D4};`,
      `let d4 = ${o} - i * ${g.D4};`,
      `if (row0 + i < P.q_len) {`,
      `  let w = ((b * P.q_heads + hq) * P.q_len + row0 + i) * ${g.D4 * 4} + d4 * 4;`,
      `  fa_dq[w] = ${reg}.x; fa_dq[w + 1] = ${reg}.y; fa_dq[w + 2] = ${reg}.z; fa_dq[w + 3] = ${reg}.w;`,
      `}`,
    ]);
    return { lines: [...indentLines(store), `}`] };
  }

  reduceBufferGrads(): WgslBackwardCode {
    const G = this.grads.words;
    // A fixed order (program 0, 1, 2, …) makes the sums bitwise reproducible.
    return {
      lines: [
        `// Buffer gradients: the dK/dV workgroups' partial rows, summed in program order.`,
        `@compute @workgroup_size(${REDUCE_WORKGROUP})`,
        `fn fa_bwd_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {`,
        `  let e = i32(gid.x);`,
        `  if (e < ${G}) {`,
        `    var acc = 0.0f;`,
        `    for (var prog = 0; prog < P.num_programs; prog++) { acc += fa_scratch[P.scratch_partials + prog * ${G} + e]; }`,
        `    fa_scratch[P.scratch_grads + e] = acc;`,
        `  }`,
        `}`,
      ],
    };
  }

  // ---- block-loop body steps ----

  loadTiles(pass: BackwardPass): WgslBackwardCode {
    const { g } = this;
    if (pass === "dkdv") return { tile: this.loadQSide() };
    return {
      tile: [
        ...this.loadRows("fa_ks", "k", "kb", "col0", "P.kv_len", g.BN, g.D4, g.D),
        ...this.loadRows("fa_vs", "v", "vb", "col0", "P.kv_len", g.BN, g.DV4, g.DV),
      ],
    };
  }

  /** Σ_d a[row ra]·b[row rb] over `width4` vec4 of two workgroup arrays. */
  private dotRows(a: string, ra: string, b: string, rb: string, width4: number): string {
    return `for (var d4 = 0; d4 < ${width4}; d4++) { acc += dot(${a}[${ra} * ${width4} + d4], ${b}[${rb} * ${width4} + d4]); }`;
  }

  qk(): WgslBackwardCode {
    return {
      element: [
        `var x = 0.0f;`,
        `{`,
        `  var acc = 0.0f;`,
        `  ${this.dotRows("fa_qs", "i", "fa_ks", "j", this.g.D4)}`,
        `  x = acc * P.scale;`,
        `}`,
        `var s = x;`,
        `var live = true;`,
      ],
    };
  }

  scoreMod(pass: BackwardPass, blocks: BlockKind): WgslBackwardCode {
    const m = this.render(this.spec.score!, "score", `sm${pass[1]}${blocks[0]}_`);
    return { element: [...m.statements, `s = ${m.result};`] };
  }

  maskMod(pass: BackwardPass, blocks: BlockKind): WgslBackwardCode {
    const m = this.render(this.spec.mask!, "mask", `mm${pass[1]}${blocks[0]}_`);
    return { element: [...m.statements, `live = live && ${m.result};`] };
  }

  bounds(): WgslBackwardCode {
    return { element: [`live = live && row0 + i < P.q_len && col0 + j < P.kv_len;`] };
  }

  recomputeP(): WgslBackwardCode {
    return {
      element: [
        `let lse_i = fa_lse_s[i];`,
        // s = -inf or a fully masked row (LSE -inf): P = 0, not exp(NaN).
        `let p = select(0.0f, exp(s - lse_i), live && s != NEG_INF && lse_i != NEG_INF);`,
      ],
    };
  }

  accumulateDV(): WgslBackwardCode {
    const { g } = this;
    return {
      element: [`fa_p[e] = p;`],
      after: this.dv.each((reg, o) => [
        `let j = ${o} / ${g.DV4};`,
        `let d4 = ${o} - j * ${g.DV4};`,
        `var a = ${reg};`,
        `for (var i = 0; i < ${g.BM}; i++) {`,
        `  let w = fa_p[i * ${g.BN} + j];`,
        // A zero weight contributes nothing (select, not 0·dO).
        `  a = select(fma(vec4<f32>(w), fa_dos[i * ${g.DV4} + d4], a), a, w == 0.0f);`,
        `}`,
        `${reg} = a;`,
      ]),
    };
  }

  dP(): WgslBackwardCode {
    return { element: [`var dp = 0.0f;`, `{`, `  var acc = 0.0f;`, `  ${this.dotRows("fa_dos", "i", "fa_vs", "j", this.g.DV4)}`, `  dp = acc;`, `}`] };
  }

  dS(): WgslBackwardCode {
    return { element: [`var ds = select(0.0f, p * (dp - fa_delta_s[i]), p != 0.0f);`] };
  }

  bufferGrad(pass: BackwardPass, blocks: BlockKind): WgslBackwardCode {
    const { g } = this;
    const E = g.BM * g.BN;
    const O = gradOwners(g.T);
    const W = gradMaskWords(this.g.walkedSites, E);
    const element = this.siteList.flatMap((site, n) => {
      const w = this.render(site.weight, "score", `gw${n}${pass[1]}${blocks[0]}_`);
      // A tile-wide entry: every element's value, 0 where it contributes nothing, for the tree below
      // (which checks the entry's offset, the same for the whole tile, once).
      if (!site.walked) {
        return [`{`, ...indentLines(w.statements).filter(Boolean), `  fa_gval[${n * E} + e] = select(0.0f, ds * ${w.result}, p != 0.0f);`, `}`];
      }
      const off = this.render(site.offset, "score", `go${n}${pass[1]}${blocks[0]}_`);
      return [
        `{`,
        ...indentLines([...off.statements, ...w.statements]),
        `  let off = ${off.result};`,
        `  if (p != 0.0f && off >= 0) {`,
        `    let k = ${n * E} + e;`,
        `    let at = ${site.at} + off;`,
        `    fa_goff[k] = at;`,
        `    fa_gval[k] = ds * ${w.result};`,
        `    atomicOr(&fa_gmask[(k / 32) * ${O} + at % ${O}], 1u << u32(k % 32));`,
        `  }`,
        `}`,
      ];
    });
    // A site whose entry depends on b and h only (a per-head slope or scalar) sends the whole tile to
    // one entry: summed by a fixed tree over the tile (log2 E barriers), not by one owner in sequence.
    const trees = this.siteList.flatMap((site, n) => {
      if (site.walked) return [];
      const off = this.render(site.offset, "score", `gt${n}${pass[1]}${blocks[0]}_`);
      return [
        `for (var half = ${E >> 1}; half > 0; half >>= 1u) {`,
        `  for (var x = tid; x < half; x += ${g.T}) { fa_gval[${n * E} + x] += fa_gval[${n * E} + x + half]; }`,
        `  workgroupBarrier();`,
        `}`,
        `if (tid == 0) {`,
        ...indentLines([...off.statements, `let off = ${off.result};`, `if (off >= 0) { fa_scratch[part + ${site.at} + off] += fa_gval[${n * E}]; }`], "  "),
        `}`,
      ];
    });
    const walk = [
      `var cur = -1;`,
      `var sum = 0.0f;`,
      `for (var w = 0; w < ${W}; w++) {`,
      `  var bits = atomicLoad(&fa_gmask[w * ${O} + tid]);`,
      `  while (bits != 0u) {`,
      `    let k = w * 32 + i32(countTrailingZeros(bits));`,
      `    bits &= bits - 1u;`,
      // A run of contributions to one entry adds up in a register: one read-modify-write of the
      // partial row per run, not per contribution.
      `    if (fa_goff[k] != cur) {`,
      `      if (cur >= 0) { fa_scratch[part + cur] += sum; }`,
      `      cur = fa_goff[k];`,
      `      sum = 0.0f;`,
      `    }`,
      `    sum += fa_gval[k];`,
      `  }`,
      `}`,
      `if (cur >= 0) { fa_scratch[part + cur] += sum; }`,
    ];
    if (!this.g.walkedSites) return { element, walk: trees };
    return {
      // Masks cleared before the element phase (the previous tile's walk ended at its last barrier).
      tile: [`for (var t = tid; t < ${O * W}; t += ${g.T}) { atomicStore(&fa_gmask[t], 0u); }`],
      element,
      // Each entry of the partial row has one owner (entry mod O), which walks the set bits of its
      // mask in increasing k = site·E + element: every entry's sum runs in the same order on every
      // run whatever the scheduling, while owners of different entries proceed in parallel, each
      // reading its O-strided mask words and its own contributions only.
      walk: [...trees, O < g.T ? `if (tid < ${O}) {` : `{`, ...walk.map((l) => `  ${l}`), `}`],
    };
  }

  scoreGrad(pass: BackwardPass, blocks: BlockKind): WgslBackwardCode {
    const d = this.render(this.mods.gradient!.dScore, "score", `gs${pass[1]}${blocks[0]}_`);
    return { element: [...d.statements, `ds = select(0.0f, ds * ${d.result}, p != 0.0f);`] };
  }

  accumulateDK(): WgslBackwardCode {
    // dK[j] += Σ_i dS[i, j]·scale · Q[i]: over the tile's query rows.
    return this.accumulateFromDs(this.dk, { fixed: "j", loop: "i", count: this.g.BM, tile: "fa_qs" });
  }

  accumulateDQ(): WgslBackwardCode {
    // dQ[i] += Σ_j dS[i, j]·scale · K[j]: over the tile's keys.
    return this.accumulateFromDs(this.dq, { fixed: "i", loop: "j", count: this.g.BN, tile: "fa_ks" });
  }

  /** Publish dS, then each register of `acc` adds dS-weighted rows of `tile`; zero weights (masked) add nothing. */
  private accumulateFromDs(acc: ReturnType<WgslBackwardEmitter["accumulators"]>, o: { fixed: "i" | "j"; loop: "i" | "j"; count: number; tile: string }): WgslBackwardCode {
    const { g } = this;
    return {
      element: [`fa_ds[e] = ds;`],
      after: acc.each((reg, off) => [
        `let ${o.fixed} = ${off} / ${g.D4};`,
        `let d4 = ${off} - ${o.fixed} * ${g.D4};`,
        `var a = ${reg};`,
        `for (var ${o.loop} = 0; ${o.loop} < ${o.count}; ${o.loop}++) {`,
        `  let w = fa_ds[i * ${g.BN} + j] * P.scale;`,
        `  a = select(fma(vec4<f32>(w), ${o.tile}[${o.loop} * ${g.D4} + d4], a), a, w == 0.0f);`,
        `}`,
        `${reg} = a;`,
      ]),
    };
  }
}
