/**
 * The JS BackwardEmitter: one method per backward step (template's backward-steps.ts). Top-level
 * steps write the passes' program loops; block-loop steps contribute to one tile's work in five
 * slots: `tile` (loads, once per tile), `before` (the tile products S = Q·Kᵀ and dP = dO·Vᵀ),
 * `guard` and `element` (per (query, key) element, in step order) and `after` (the products
 * that need the element loop's P and dS); all but `tile` form one top-level helper per pass and
 * block kind, called once per tile.
 *
 * Mods and their derivatives (ir's differentiateScoreMod) are rendered inline per element with
 * ir's renderGraph + jsRenderer. All sums run in float64; buffer gradients go to one partial row
 * per dkdv program and are reduced in program order, so they are bitwise deterministic.
 */
import { FlexAttnError, type ModGraph, jsRenderer, renderGraph } from "@flexattn/ir";
import { type BackwardEmitter, type BackwardMods, type BackwardPass, type BlockKind, type KernelSpec, capturedBuffers } from "@flexattn/template";
import { capturedParamNames } from "./emitter.js";

export interface JsBackwardCode {
  lines?: string[];
  tile?: string[];
  guard?: string[];
  element?: string[];
  after?: string[];
  /** Tile-wide products the element loop reads (inside the tile helper, before the loop). */
  before?: string[];
  /** Top-level helper functions, by name. */
  functions?: Record<string, string[]>;
}

const I = (n: number, lines: string[]) => lines.map((l) => " ".repeat(n) + l);

/** Parameter names of the buffer gradients, in backwardMods order. */
export function gradBufferParamNames(mods: BackwardMods): string[] {
  return mods.gradBuffers.map((b, i) => `d_score_${b.name.replace(/[^A-Za-z0-9_]/g, "_")}_${i}`);
}

export class JsBackwardEmitter implements BackwardEmitter<JsBackwardCode> {
  readonly D: number;
  readonly DV: number;
  readonly BM: number;
  readonly BN: number;
  readonly SQ: number;
  readonly SKV: number;
  private readonly bufferParams: string[];
  private readonly gradParams: string[];
  private readonly decode: (x: string) => string;
  private readonly encode: (x: string) => string;

  constructor(
    readonly spec: KernelSpec,
    readonly mods: BackwardMods,
  ) {
    this.D = spec.qkHeadDim;
    this.DV = spec.vHeadDim;
    this.BM = spec.config.blockM;
    this.BN = spec.config.blockN;
    [this.SQ, this.SKV] = spec.sparseBlock;
    this.bufferParams = capturedParamNames(spec);
    this.gradParams = gradBufferParamNames(mods);
    const f32 = spec.dtype === "f32";
    this.decode = f32 ? (x) => x : (x) => `decode(${x})`;
    this.encode = f32 ? (x) => x : (x) => `encode(${x})`;
  }

  /** Statements computing `graph` per element, and its value's expression. */
  private render(graph: ModGraph, owner: "mask" | "score", prefix: string): { statements: string[]; result: string } {
    const all = capturedBuffers(this.spec);
    const r = jsRenderer({
      inputs: { b: "b", h: "hq", q: "qi", kv: "kj", score: "x" },
      bufferName: (slot) => {
        const i = all.findIndex((b) => b.owner === owner && b.slot === slot);
        if (i < 0) throw new FlexAttnError(`codegen-js backward: no captured buffer ${owner}[${slot}]`);
        return this.bufferParams[i];
      },
      runtime: "$rt",
    });
    const { statements, result } = renderGraph(graph, r, prefix);
    return { statements, result };
  }

  /** Load rows of a strided tensor into a float64 tile (rows × dim, row-major). */
  private loadRows(tile: string, src: string, base: string, stride: string, first: string, count: string, dim: number): string[] {
    return [
      `for (let i = 0; i < ${count}; i++) {`,
      `  const o = ${base} + (${first} + i) * ${stride}, t = i * ${dim};`,
      `  for (let d = 0; d < ${dim}; d++) ${tile}[t + d] = ${this.decode(`${src}[o + d]`)};`,
      `}`,
    ];
  }

  // ---- top-level steps ----

  preprocess(): JsBackwardCode {
    const { DV, BM, BN, D } = this;
    return {
      lines: [
        `// preprocess: delta = rowsum(dO ∘ O)`,
        `const DELTA = new Float64Array(batch * q_heads * q_len);`,
        `for (let b = 0; b < batch; b++) for (let hq = 0; hq < q_heads; hq++) for (let i = 0; i < q_len; i++) {`,
        `  const o = b * stride_out_b + hq * stride_out_h + i * stride_out_s, g = b * stride_dout_b + hq * stride_dout_h + i * stride_dout_s;`,
        `  let acc = 0;`,
        `  for (let d = 0; d < ${DV}; d++) acc += ${this.decode("out[o + d]")} * ${this.decode("dout[g + d]")};`,
        `  DELTA[(b * q_heads + hq) * q_len + i] = acc;`,
        `}`,
        `const group = (q_heads / kv_heads) | 0;`,
        `const Qt = new Float64Array(${BM * D}), DOt = new Float64Array(${BM * DV}), Lr = new Float64Array(${BM}), Dr = new Float64Array(${BM});`,
        `const Kt = new Float64Array(${BN * D}), Vt = new Float64Array(${BN * DV});`,
        `const P = new Float64Array(${BM * BN}), DS = new Float64Array(${BM * BN}), St = new Float64Array(${BM * BN}), DPt = new Float64Array(${BM * BN});`,
      ],
    };
  }

  kvProgram(): JsBackwardCode {
    const { BN, D, DV, SKV } = this;
    return {
      lines: [
        `// dkdv: one program per (kv tile, kv head, batch)`,
        `const numKvTiles = Math.ceil(kv_len / ${BN});`,
        `const DKa = new Float64Array(${BN * D}), DVa = new Float64Array(${BN * DV});`,
        ...this.mods.gradBuffers.map((g, k) => `const PART${k} = new Float64Array(batch * kv_heads * numKvTiles * ${g.size});`),
        `for (let b = 0; b < batch; b++) {`,
        `  const bm = b % sparse_b;`,
        `  for (let hkv = 0; hkv < kv_heads; hkv++) {`,
        `    const kBase = b * stride_k_b + hkv * stride_k_h, vBase = b * stride_v_b + hkv * stride_v_h;`,
        `    for (let nt = 0; nt < numKvTiles; nt++) {`,
        `      const prog = (b * kv_heads + hkv) * numKvTiles + nt;`,
        ...this.mods.gradBuffers.map((g, k) => `      const part${k} = prog * ${g.size};`),
        `      const col0 = nt * ${BN}, cols = Math.min(${BN}, kv_len - col0), k0 = (col0 + kv_offset) | 0;`,
        `      const kvBlock = (col0 / ${SKV}) | 0;`,
        ...I(6, this.loadRows("Kt", "k", "kBase", "stride_k_s", "col0", "cols", D)),
        ...I(6, this.loadRows("Vt", "v", "vBase", "stride_v_s", "col0", "cols", DV)),
        `      DKa.fill(0); DVa.fill(0);`,
        `      for (let hq = hkv * group; hq < (hkv + 1) * group; hq++) {`,
        `        const tableCol = (bm * sparse_h + hq % sparse_h) * sparse_kv_blocks + kvBlock;`,
        `        const qBase = b * stride_q_b + hq * stride_q_h, doBase = b * stride_dout_b + hq * stride_dout_h, lseBase = (b * q_heads + hq) * q_len;`,
      ],
    };
  }

  qBlockLoop(blocks: BlockKind, body: JsBackwardCode[]): JsBackwardCode {
    return this.tableLoop("dkdv", blocks, body, 8);
  }

  /**
   * A pass's walk over the BlockMask blocks of its tile: the q blocks of the kv column (dkdv, from
   * the q-direction tables) or the kv blocks of the q row (dq), each cut into tiles.
   */
  private tableLoop(pass: BackwardPass, blocks: BlockKind, body: JsBackwardCode[], indent: number): JsBackwardCode {
    const dkdv = pass === "dkdv";
    const [num, idx] = dkdv
      ? blocks === "partial" ? ["q_num_blocks", "q_indices"] : ["full_q_num_blocks", "full_q_indices"]
      : blocks === "partial" ? ["kv_num_blocks", "kv_indices"] : ["full_kv_num_blocks", "full_kv_indices"];
    const [row, width, sparse, tile, first, len, offset, start] = dkdv
      ? ["tableCol", "sparse_q_blocks", this.SQ, this.BM, "row0", "q_len", "q_offset", "q0"]
      : ["trow", "sparse_kv_blocks", this.SKV, this.BN, "col0", "kv_len", "kv_offset", "k0"];
    const helper = this.tileFunction(pass, blocks, body);
    const lines = [
      `{ // ${blocks} blocks of the ${dkdv ? "kv column" : "q row"}`,
      `  const nb = ${num}[${row}], ib = ${row} * ${width};`,
      `  for (let t = 0; t < nb; t++) {`,
      `    const blk = ${idx}[ib + t];`,
      `    for (let sub = 0; sub < ${Number(sparse) / Number(tile)}; sub++) {`,
      `      const ${first} = blk * ${sparse} + sub * ${tile};`,
      `      if (${first} >= ${len}) break;`,
      `      const ${start} = (${first} + ${offset}) | 0;`,
      ...I(6, body.flatMap((c) => c.tile ?? [])),
      `      ${helper.call}`,
      `    }`,
      `  }`,
      `}`,
    ];
    return { lines: I(indent, lines), functions: { ...helper.functions, [helper.name]: helper.source } };
  }

  /**
   * A tile's work as a top-level helper: the element loop, then the tile-wide products. Small
   * helpers are optimized by V8 within the first tiles; one large function would wait for
   * on-stack replacement (as in the forward, see emitter.ts).
   */
  private tileFunction(pass: BackwardPass, blocks: BlockKind, body: JsBackwardCode[]): { name: string; source: string[]; call: string; functions: Record<string, string[]> } {
    const cat = (k: "before" | "guard" | "element" | "after") => body.flatMap((c) => c[k] ?? []);
    const { BN, D, DV } = this;
    const name = `${pass}Tile_${blocks}`;
    const functions = Object.assign({}, ...body.map((c) => c.functions ?? {})) as Record<string, string[]>;
    const params = [
      "Qt", "DOt", "Lr", "Dr", "Kt", "Vt", "St", "DPt", "P", "DS", ...(pass === "dkdv" ? ["DKa", "DVa"] : ["DQa"]),
      "rows", "cols", "q0", "k0", "b", "hq", "scale", ...this.bufferParams,
      ...(pass === "dkdv" ? this.mods.gradBuffers.flatMap((_, k) => [`PART${k}`, `part${k}`]) : []),
    ];
    const source = [
      `function ${name}(${params.join(", ")}) {`,
      ...I(2, cat("before")),
      `  for (let i = 0; i < rows; i++) {`,
      `    const qi = (q0 + i) | 0, o = i * ${BN}, lse_i = Lr[i], del_i = Dr[i], qo = i * ${D}, go = i * ${DV};`,
      `    for (let j = 0; j < cols; j++) {`,
      `      const kj = (k0 + j) | 0, ko = j * ${D}, vo = j * ${DV};`,
      ...I(6, cat("guard")),
      ...I(6, cat("element")),
      `      DS[o + j] = ds;`,
      `    }`,
      `  }`,
      ...I(2, cat("after")),
      `}`,
    ];
    return { name, source, call: `${name}(${params.join(", ")});`, functions };
  }

  /**
   * A top-level helper C = A·Bᵀ over a tile (C[i·BN + j] = Σ_d A[i·dim + d]·B[j·dim + d]), 2 rows ×
   * 2 columns per step; each sum runs over d in order, as the reference's does.
   */
  private abtFunction(dim: number): Record<string, string[]> {
    const { BN } = this;
    const name = `abT_${dim}`;
    return {
      [name]: [
        `function ${name}(C, A, B, rows, cols) {`,
        `  let i = 0;`,
        `  for (; i + 1 < rows; i += 2) {`,
        `    const a0 = i * ${dim}, a1 = a0 + ${dim}, c0 = i * ${BN}, c1 = c0 + ${BN};`,
        `    let j = 0;`,
        `    for (; j + 1 < cols; j += 2) {`,
        `      const b0 = j * ${dim}, b1 = b0 + ${dim};`,
        `      let s00 = 0, s01 = 0, s10 = 0, s11 = 0;`,
        `      for (let d = 0; d < ${dim}; d++) {`,
        `        const x0 = A[a0 + d], x1 = A[a1 + d], y0 = B[b0 + d], y1 = B[b1 + d];`,
        `        s00 += x0 * y0; s01 += x0 * y1; s10 += x1 * y0; s11 += x1 * y1;`,
        `      }`,
        `      C[c0 + j] = s00; C[c0 + j + 1] = s01; C[c1 + j] = s10; C[c1 + j + 1] = s11;`,
        `    }`,
        `    if (j < cols) {`,
        `      const b0 = j * ${dim};`,
        `      let s00 = 0, s10 = 0;`,
        `      for (let d = 0; d < ${dim}; d++) { const y0 = B[b0 + d]; s00 += A[a0 + d] * y0; s10 += A[a1 + d] * y0; }`,
        `      C[c0 + j] = s00; C[c1 + j] = s10;`,
        `    }`,
        `  }`,
        `  if (i < rows) {`,
        `    const a0 = i * ${dim}, c0 = i * ${BN};`,
        `    for (let j = 0; j < cols; j++) {`,
        `      const b0 = j * ${dim};`,
        `      let s00 = 0;`,
        `      for (let d = 0; d < ${dim}; d++) s00 += A[a0 + d] * B[b0 + d];`,
        `      C[c0 + j] = s00;`,
        `    }`,
        `  }`,
        `}`,
      ],
    };
  }

  storeKV(): JsBackwardCode {
    const { D, DV } = this;
    const store = (dst: string, acc: string, dim: number, t: string) => [
      `for (let j = 0; j < cols; j++) {`,
      `  const o = b * stride_${t}_b + hkv * stride_${t}_h + (col0 + j) * stride_${t}_s, a = j * ${dim};`,
      `  for (let d = 0; d < ${dim}; d++) ${dst}[o + d] = ${this.encode(`${acc}[a + d]`)};`,
      `}`,
    ];
    return { lines: [`      }`, ...I(6, store("dk", "DKa", D, "dk")), ...I(6, store("dv", "DVa", DV, "dv")), `    }`, `  }`, `}`] };
  }

  qProgram(): JsBackwardCode {
    const { BM, D, SQ } = this;
    return {
      lines: [
        `// dq: one program per (q tile, q head, batch)`,
        `const DQa = new Float64Array(${BM * D});`,
        `for (let b = 0; b < batch; b++) {`,
        `  const bm = b % sparse_b;`,
        `  for (let hq = 0; hq < q_heads; hq++) {`,
        `    const hkv = (hq / group) | 0;`,
        `    const tableHead = (bm * sparse_h + hq % sparse_h) * sparse_q_blocks;`,
        `    const qBase = b * stride_q_b + hq * stride_q_h, doBase = b * stride_dout_b + hq * stride_dout_h, lseBase = (b * q_heads + hq) * q_len;`,
        `    const kBase = b * stride_k_b + hkv * stride_k_h, vBase = b * stride_v_b + hkv * stride_v_h;`,
        `    for (let mt = 0; mt < Math.ceil(q_len / ${BM}); mt++) {`,
        `      const row0 = mt * ${BM}, rows = Math.min(${BM}, q_len - row0), q0 = (row0 + q_offset) | 0;`,
        `      const trow = tableHead + ((row0 / ${SQ}) | 0);`,
        ...I(6, this.loadQSide()),
        `      DQa.fill(0);`,
      ],
    };
  }

  /** Q, dO, LSE and delta rows of a q tile. */
  private loadQSide(): string[] {
    return [
      ...this.loadRows("Qt", "q", "qBase", "stride_q_s", "row0", "rows", this.D),
      ...this.loadRows("DOt", "dout", "doBase", "stride_dout_s", "row0", "rows", this.DV),
      `for (let i = 0; i < rows; i++) { Lr[i] = lse[lseBase + row0 + i]; Dr[i] = DELTA[lseBase + row0 + i]; }`,
    ];
  }

  kvBlockLoop(blocks: BlockKind, body: JsBackwardCode[]): JsBackwardCode {
    return this.tableLoop("dq", blocks, body, 6);
  }

  storeQ(): JsBackwardCode {
    const { D } = this;
    return {
      lines: [
        `      for (let i = 0; i < rows; i++) {`,
        `        const o = b * stride_dq_b + hq * stride_dq_h + (row0 + i) * stride_dq_s, a = i * ${D};`,
        `        for (let d = 0; d < ${D}; d++) dq[o + d] = ${this.encode("DQa[a + d]")};`,
        `      }`,
        `    }`,
        `  }`,
        `}`,
      ],
    };
  }

  reduceBufferGrads(): JsBackwardCode {
    // A fixed order (program 0, 1, 2, …) makes the sums bitwise reproducible.
    return {
      lines: this.mods.gradBuffers.flatMap((g, k) => [
        `for (let e = 0; e < ${g.size}; e++) {`,
        `  let acc = 0;`,
        `  for (let prog = 0, n = batch * kv_heads * numKvTiles; prog < n; prog++) acc += PART${k}[prog * ${g.size} + e];`,
        `  ${this.gradParams[k]}[e] = acc;`,
        `}`,
      ]),
    };
  }

  // ---- block-loop body steps ----

  loadTiles(pass: BackwardPass): JsBackwardCode {
    if (pass === "dkdv") return { tile: [`const rows = Math.min(${this.BM}, q_len - row0);`, ...this.loadQSide()] };
    return {
      tile: [
        `const cols = Math.min(${this.BN}, kv_len - col0);`,
        ...this.loadRows("Kt", "k", "kBase", "stride_k_s", "col0", "cols", this.D),
        ...this.loadRows("Vt", "v", "vBase", "stride_v_s", "col0", "cols", this.DV),
      ],
    };
  }

  qk(): JsBackwardCode {
    // With a score mod, the mod sees (q·k)·scale rounded to f32, as in the forward.
    const x = this.spec.score ? "Math.fround(St[o + j] * scale)" : "St[o + j] * scale";
    return {
      functions: this.abtFunction(this.D),
      before: [`abT_${this.D}(St, Qt, Kt, rows, cols); // S = Q·Kᵀ`],
      element: [`const x = ${x};`, `let s = x;`],
    };
  }

  scoreMod(pass: BackwardPass, blocks: BlockKind): JsBackwardCode {
    const m = this.render(this.spec.score!, "score", `sm${pass[1]}${blocks[0]}_`);
    return { element: [...m.statements, `s = ${m.result};`] };
  }

  maskMod(pass: BackwardPass, blocks: BlockKind): JsBackwardCode {
    const m = this.render(this.spec.mask!, "mask", `mm${pass[1]}${blocks[0]}_`);
    return { guard: [...m.statements, `if (!(${m.result})) { P[o + j] = 0; DS[o + j] = 0; continue; }`] };
  }

  bounds(): JsBackwardCode {
    // rows and cols (set where each pass loads its tiles) stop the element loop at qLen and kvLen.
    return {};
  }

  recomputeP(): JsBackwardCode {
    return {
      element: [
        `const p = s === -Infinity || lse_i === -Infinity ? 0 : Math.exp(s - lse_i);`,
        `P[o + j] = p;`,
        `if (p === 0) { DS[o + j] = 0; continue; } // nothing flows through a zero weight`,
      ],
    };
  }

  accumulateDV(): JsBackwardCode {
    const { BN, DV } = this;
    return {
      after: [
        `for (let i = 0; i < rows; i++) { // dV += Pᵀ·dO`,
        `  const o = i * ${BN}, go = i * ${DV};`,
        `  for (let j = 0; j < cols; j++) {`,
        `    const p = P[o + j];`,
        `    if (p === 0) continue;`,
        `    const vo = j * ${DV};`,
        `    for (let d = 0; d < ${DV}; d++) DVa[vo + d] += p * DOt[go + d];`,
        `  }`,
        `}`,
      ],
    };
  }

  dP(): JsBackwardCode {
    return {
      functions: this.abtFunction(this.DV),
      before: [`abT_${this.DV}(DPt, DOt, Vt, rows, cols); // dP = dO·Vᵀ`],
      element: [`const dp = DPt[o + j];`],
    };
  }

  dS(): JsBackwardCode {
    return { element: [`let ds = p * (dp - del_i);`] };
  }

  bufferGrad(pass: BackwardPass, blocks: BlockKind): JsBackwardCode {
    const grad = this.mods.gradient!;
    const element: string[] = [];
    this.mods.gradBuffers.forEach((gb, k) => {
      const sites = grad.buffers.find((b) => b.slot === gb.slot)!.sites;
      sites.forEach((site, n) => {
        const off = this.render(site.offset, "score", `go${k}_${n}${pass[1]}${blocks[0]}_`);
        const w = this.render(site.weight, "score", `gw${k}_${n}${pass[1]}${blocks[0]}_`);
        element.push(`{`, ...I(2, off.statements), `  const off = ${off.result};`, `  if (off >= 0) {`, ...I(4, w.statements), `    PART${k}[part${k} + off] += ds * ${w.result};`, `  }`, `}`);
      });
    });
    return { element };
  }

  scoreGrad(pass: BackwardPass, blocks: BlockKind): JsBackwardCode {
    const g = this.render(this.mods.gradient!.dScore, "score", `gs${pass[1]}${blocks[0]}_`);
    return { element: [...g.statements, `ds *= ${g.result};`] };
  }

  accumulateDK(): JsBackwardCode {
    return { after: this.scaledDsProduct("DKa", "ko", "Qt", "qo", "dK += dSᵀ·Q·scale") };
  }

  accumulateDQ(): JsBackwardCode {
    return { after: this.scaledDsProduct("DQa", "qo", "Kt", "ko", "dQ += dS·K·scale") };
  }

  /** acc[row of one side] += dS·scale · src[row of the other] over the tile (rows qo = i·D, keys ko = j·D). */
  private scaledDsProduct(acc: string, accRow: "qo" | "ko", src: string, srcRow: "qo" | "ko", what: string): string[] {
    const { BN, D } = this;
    return [
      `for (let i = 0; i < rows; i++) { // ${what}`,
      `  const o = i * ${BN}, qo = i * ${D};`,
      `  for (let j = 0; j < cols; j++) {`,
      `    const ds = DS[o + j];`,
      `    if (ds === 0) continue;`,
      `    const g = ds * scale, ko = j * ${D};`,
      `    for (let d = 0; d < ${D}; d++) ${acc}[${accRow} + d] += g * ${src}[${srcRow} + d];`,
      `  }`,
      `}`,
    ];
  }
}
