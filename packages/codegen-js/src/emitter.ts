/**
 * The JS TemplateEmitter: one method per template step, each returning a fragment of JS
 * source tagged with the loop level it belongs to. `blockLoop` assembles the fragments of
 * one block kind into the loop nest
 *
 *   for kv block of the row's list → for kv tile (sparseBlockKv / blockN of them)
 *     → for query row i of the tile → for key column j of the tile
 *
 * Per-element steps (mask, qk, score mod) run inside the j loop; the mask and the bounds act
 * as guards — the mask skips the dot product of a masked element, the bounds limit the j loop
 * to kvLen — which is the same result as the template's "s → -inf", in less work.
 */
import { FlexAttnError, type ModGraph } from "@flexattn/ir";
import { type BlockKind, type KernelSpec, NUMERICS, type TemplateEmitter, capturedBuffers } from "@flexattn/template";
import { type LeveledMod, renderLeveled } from "./mods.js";

/** A piece of generated JS, by the loop level / tile phase it belongs to. */
export interface JsCode {
  /** Statements at the step's own level (top-level steps), or once per program before a block loop. */
  lines?: string[];
  /** Closes what `lines` opened (the program step). */
  close?: string[];
  /** A program-level guard: false skips the whole block loop. */
  loopGuard?: string;
  /** Once per kv tile, before the phases. */
  tile?: string[];
  /** Phase 1 (tile): the mask pass, writing MK[i·BN + j]. */
  maskPass?: string[];
  /** Phase 2 (tile): S[i·BN + j] = q·k. */
  scores?: string[];
  /** Phase 3, per query row: statements before the column loop. */
  row?: string[];
  /** Phase 3, per element: reads and updates `s` (the score of S[o + j]). */
  element?: string[];
  /** Phase 3, per element, first: statements ending in `continue` for masked elements. */
  guard?: string[];
  /** Phase 4 (tile): online softmax, S becomes P. */
  softmax?: string[];
  /** Phase 5 (tile): acc += P·V. */
  accumulate?: string[];
}

export interface JsEmitterOptions {
  /** Statements per iteration of the q·k d-loop (1 = a plain loop). */
  dotUnroll: number;
  /** Statements per iteration of the acc += p·v d-loop. */
  accUnroll: number;
}

export const DEFAULT_JS_OPTIONS: JsEmitterOptions = { dotUnroll: 2, accUnroll: 4 };

const I = (n: number, lines: string[]) => lines.map((l) => " ".repeat(n) + l);

/** Safe, unique JS parameter names for the captured buffers, in ABI order. */
export function capturedParamNames(spec: KernelSpec): string[] {
  const seen = new Set<string>();
  return capturedBuffers(spec).map((b, i) => {
    let name = b.name.replace(/[^A-Za-z0-9_]/g, "_");
    if (seen.has(name)) name = `${name}_${i}`;
    seen.add(name);
    return name;
  });
}

export class JsEmitter implements TemplateEmitter<JsCode> {
  readonly D: number;
  readonly DV: number;
  readonly BM: number;
  readonly BN: number;
  readonly SQ: number;
  readonly SKV: number;
  /** Whether Q is prescaled by scale·log2e (no score mod: s is already in the exp2 domain). */
  readonly prescale: boolean;
  private readonly bufferParams: string[];

  constructor(
    readonly spec: KernelSpec,
    readonly options: JsEmitterOptions = DEFAULT_JS_OPTIONS,
  ) {
    this.D = spec.qkHeadDim;
    this.DV = spec.vHeadDim;
    this.BM = spec.config.blockM;
    this.BN = spec.config.blockN;
    [this.SQ, this.SKV] = spec.sparseBlock;
    this.prescale = spec.score === null;
    this.bufferParams = capturedParamNames(spec);
  }

  private bufferParam(owner: "mask" | "score", slot: number): string {
    const all = capturedBuffers(this.spec);
    const i = all.findIndex((b) => b.owner === owner && b.slot === slot);
    if (i < 0) throw new FlexAttnError(`codegen-js: no captured buffer ${owner}[${slot}]`);
    return this.bufferParams[i];
  }

  private mod(graph: ModGraph, owner: "mask" | "score", blocks: BlockKind): LeveledMod {
    return renderLeveled(graph, {
      inputs: { b: "b", h: "hq", q: "qi", kv: "kj", score: "s" },
      bufferName: (slot) => this.bufferParam(owner, slot),
      prefix: `${owner[0]}${blocks[0]}_`,
    });
  }

  // ---- top-level steps ----

  program(): JsCode {
    const { BM, D, DV } = this;
    const dec = this.spec.dtype !== "f32";
    return {
      lines: [
        `const Qt = new Float64Array(${BM * D});`,
        `const ACC = new Float64Array(${BM * DV});`,
        `const Mr = new Float64Array(${BM});`,
        `const Lr = new Float64Array(${BM});`,
        `const S = new Float64Array(${BM * this.BN});`,
        `const MK = new Uint8Array(${BM * this.BN});`,
        dec ? `const K = decodeAll(k), V = decodeAll(v);` : `const K = k, V = v;`,
        `const group = (q_heads / kv_heads) | 0;`,
        `const qScale = ${this.prescale ? `scale * ${NUMERICS.LOG2E}` : "1"};`,
        `const numQTiles = Math.ceil(q_len / ${BM});`,
        `for (let b = 0; b < batch; b++) {`,
        `  const bm = b % sparse_b;`,
        `  for (let hq = 0; hq < q_heads; hq++) {`,
        `    const hkv = (hq / group) | 0;`,
        `    const tableHead = (bm * sparse_h + hq % sparse_h) * sparse_q_blocks;`,
        `    const qBase = b * stride_q_b + hq * stride_q_h;`,
        `    const kBase = b * stride_k_b + hkv * stride_k_h;`,
        `    const vBase = b * stride_v_b + hkv * stride_v_h;`,
        `    const oBase = b * stride_out_b + hq * stride_out_h;`,
        `    const lseBase = (b * q_heads + hq) * q_len;`,
        `    for (let mt = 0; mt < numQTiles; mt++) {`,
        `      const row0 = mt * ${BM};`,
        `      const rows = Math.min(${BM}, q_len - row0);`,
        `      const trow = tableHead + ((row0 / ${this.SQ}) | 0);`,
      ],
      close: [`    }`, `  }`, `}`],
    };
  }

  loadQ(): JsCode {
    const { D } = this;
    const load = this.spec.dtype === "f32" ? (x: string) => x : (x: string) => `decode(${x})`;
    return {
      lines: [
        `for (let i = 0; i < rows; i++) {`,
        `  const src = qBase + (row0 + i) * stride_q_s, dst = i * ${D};`,
        `  for (let d = 0; d < ${D}; d++) Qt[dst + d] = ${load("q[src + d]")} * qScale;`,
        `}`,
      ],
    };
  }

  initState(): JsCode {
    return {
      lines: [`for (let i = 0; i < rows; i++) { Mr[i] = -Infinity; Lr[i] = 0; }`, `ACC.fill(0, 0, rows * ${this.DV});`],
    };
  }

  blockLoop(blocks: BlockKind, body: JsCode[]): JsCode {
    const { BN, SKV } = this;
    const numTable = blocks === "partial" ? "kv_num_blocks" : "full_kv_num_blocks";
    const idxTable = blocks === "partial" ? "kv_indices" : "full_kv_indices";
    const cat = (k: keyof JsCode) => body.flatMap((c) => (c[k] as string[] | undefined) ?? []);
    const loopGuards = body.map((c) => c.loopGuard).filter((g): g is string => !!g);
    const guard = cat("guard");
    const element = cat("element");
    // Phase 3 runs only when some step works per element (mask, scale to f32, score mod).
    const phase3 = guard.length || element.length
      ? [
          `for (let i = 0; i < rows; i++) {`,
          `  const qi = (row0 + i + q_offset) | 0, o = i * ${BN};`,
          ...I(2, cat("row")),
          `  for (let j = 0; j < cols; j++) {`,
          `    const kj = (col0 + j + kv_offset) | 0;`,
          ...I(4, guard),
          `    let s = S[o + j];`,
          ...I(4, element),
          `    S[o + j] = s;`,
          `  }`,
          `}`,
        ]
      : [];
    const loop = [
      `const nb = ${numTable}[trow], ib = trow * sparse_kv_blocks;`,
      `for (let t = 0; t < nb; t++) {`,
      `  const blk = ${idxTable}[ib + t];`,
      `  for (let sub = 0; sub < ${SKV / BN}; sub++) {`,
      `    const col0 = blk * ${SKV} + sub * ${BN};`,
      `    if (col0 >= kv_len) break;`,
      ...I(4, cat("tile")),
      ...I(4, cat("maskPass")),
      ...I(4, cat("scores")),
      ...I(4, phase3),
      ...I(4, cat("softmax")),
      ...I(4, cat("accumulate")),
      `  }`,
      `}`,
    ];
    const wrapped = loopGuards.length ? [`if (${loopGuards.join(" && ")}) {`, ...I(2, loop), `}`] : loop;
    return { lines: [`{ // ${blocks} blocks`, ...I(2, cat("lines")), ...I(2, wrapped), `}`] };
  }

  epilogue(): JsCode {
    const { DV } = this;
    const store = this.spec.dtype === "f32" ? (x: string) => x : (x: string) => `encode(${x})`;
    return {
      lines: [
        `for (let i = 0; i < rows; i++) {`,
        `  const o = oBase + (row0 + i) * stride_out_s, ao = i * ${DV}, l = Lr[i];`,
        `  if (l === 0) {`,
        `    for (let d = 0; d < ${DV}; d++) out[o + d] = 0;`,
        ...(this.spec.returnLse ? [`    lse[lseBase + row0 + i] = -Infinity;`] : []),
        `  } else {`,
        `    const inv = 1 / l;`,
        `    for (let d = 0; d < ${DV}; d++) out[o + d] = ${store("ACC[ao + d] * inv")};`,
        ...(this.spec.returnLse ? [`    lse[lseBase + row0 + i] = ${NUMERICS.LN2} * (Mr[i] + Math.log2(l));`] : []),
        `  }`,
        `}`,
      ],
    };
  }

  // ---- block-loop body steps ----

  loadK(_blocks: BlockKind): JsCode {
    return { tile: [`const kT = kBase + col0 * stride_k_s;`] };
  }

  /** A d-loop over `n` elements, its body repeated `unroll` times per iteration (remainder spelled out). */
  private dLoop(n: number, unroll: number, stmt: (d: string | number) => string[]): string[] {
    const main = n - (n % unroll);
    const lines: string[] = [];
    if (main > 0) {
      if (unroll === 1) lines.push(`for (let d = 0; d < ${main}; d++) {`, ...I(2, stmt("d")), `}`);
      else {
        lines.push(`for (let d = 0; d < ${main}; d += ${unroll}) {`);
        for (let u = 0; u < unroll; u++) lines.push(...I(2, stmt(u === 0 ? "d" : `d + ${u}`)));
        lines.push(`}`);
      }
    }
    for (let d = main; d < n; d++) lines.push(...stmt(d));
    return lines;
  }

  qk(blocks: BlockKind): JsCode {
    const { D, BN } = this;
    const masked = blocks === "partial" && this.spec.mask !== null;
    const u = this.options.dotUnroll;
    const at = (base: string, d: string | number) => (d === 0 ? base : `${base} + ${d}`);
    // 2 rows × 2 columns per step: each K and Q element loaded once feeds two products.
    const dot22 = this.dLoop(D, u, (d) => [
      `{ const k0 = K[${at("ko", d)}], k1 = K[${at("ko1", d)}], x0 = Qt[${at("q0", d)}], x1 = Qt[${at("q1", d)}];`,
      `  s00 += x0 * k0; s01 += x0 * k1; s10 += x1 * k0; s11 += x1 * k1; }`,
    ]);
    const dot21 = this.dLoop(D, u, (d) => [`{ const k0 = K[${at("ko", d)}]; s00 += Qt[${at("q0", d)}] * k0; s10 += Qt[${at("q1", d)}] * k0; }`]);
    const dot11 = this.dLoop(D, u, (d) => [`s00 += Qt[${at("q0", d)}] * K[${at("ko", d)}];`]);
    const skip22 = masked ? [`if ((MK[o0 + j] | MK[o0 + j + 1] | MK[o1 + j] | MK[o1 + j + 1]) === 0) continue;`] : [];
    return {
      scores: [
        `{ // S = Q·Kᵀ`,
        `  let i = 0;`,
        `  for (; i + 1 < rows; i += 2) {`,
        `    const q0 = i * ${D}, q1 = q0 + ${D}, o0 = i * ${BN}, o1 = o0 + ${BN};`,
        `    let j = 0, ko = kT;`,
        `    for (; j + 1 < cols; j += 2, ko += 2 * stride_k_s) {`,
        ...I(6, skip22),
        `      const ko1 = ko + stride_k_s;`,
        `      let s00 = 0, s01 = 0, s10 = 0, s11 = 0;`,
        ...I(6, dot22),
        `      S[o0 + j] = s00; S[o0 + j + 1] = s01; S[o1 + j] = s10; S[o1 + j + 1] = s11;`,
        `    }`,
        `    if (j < cols) {`,
        `      let s00 = 0, s10 = 0;`,
        ...I(6, dot21),
        `      S[o0 + j] = s00; S[o1 + j] = s10;`,
        `    }`,
        `  }`,
        `  if (i < rows) {`,
        `    const q0 = i * ${D}, o0 = i * ${BN};`,
        `    for (let j = 0, ko = kT; j < cols; j++, ko += stride_k_s) {`,
        `      let s00 = 0;`,
        ...I(6, dot11),
        `      S[o0 + j] = s00;`,
        `    }`,
        `  }`,
        `}`,
      ],
      // With a score mod, the mod sees score = (q·k)·scale as f32; without, Q was prescaled.
      element: this.prescale ? [] : [`s = Math.fround(s * scale);`],
    };
  }

  scoreMod(blocks: BlockKind): JsCode {
    const m = this.mod(this.spec.score!, "score", blocks);
    return {
      lines: m.levels[0],
      row: m.levels[1],
      element: [...m.levels[2], `s = ${m.result} * ${NUMERICS.LOG2E};`],
    };
  }

  maskMod(blocks: BlockKind): JsCode {
    const m = this.mod(this.spec.mask!, "mask", blocks);
    if (m.resultLevel === 0) return { lines: m.levels[0], loopGuard: m.result };
    const { BN } = this;
    return {
      lines: m.levels[0],
      maskPass: [
        `let live = 0;`,
        `for (let i = 0; i < rows; i++) {`,
        `  const qi = (row0 + i + q_offset) | 0, o = i * ${BN};`,
        ...I(2, m.levels[1]),
        `  for (let j = 0; j < cols; j++) {`,
        `    const kj = (col0 + j + kv_offset) | 0;`,
        ...I(4, m.levels[2]),
        `    const keep = ${m.result} ? 1 : 0;`,
        `    MK[o + j] = keep; live += keep;`,
        `  }`,
        `}`,
        `if (live === 0) continue; // every element of the tile is masked`,
      ],
      guard: [`if (MK[o + j] === 0) { S[o + j] = -Infinity; continue; }`],
    };
  }

  bounds(_blocks: BlockKind): JsCode {
    // Tiles that end before kvLen run all columns; only the last one is cut short.
    return { tile: [`const cols = col0 + ${this.BN} <= kv_len ? ${this.BN} : kv_len - col0;`] };
  }

  onlineSoftmax(_blocks: BlockKind): JsCode {
    const { DV, BN } = this;
    return {
      softmax: [
        `for (let i = 0; i < rows; i++) { // online softmax (exp2 domain); S becomes P`,
        `  const o = i * ${BN}, e = o + cols;`,
        `  let mx = -Infinity;`,
        `  for (let x = o; x < e; x++) { const s = S[x]; if (s > mx) mx = s; }`,
        `  if (mx === -Infinity) {`,
        `    // Nothing but -inf in this row of the tile, unless a score is NaN: that poisons the row (IEEE).`,
        `    for (let x = o; x < e; x++) { if (S[x] !== -Infinity) Lr[i] = NaN; S[x] = 0; }`,
        `    continue;`,
        `  }`,
        `  const mOld = Mr[i];`,
        `  const mNew = mx > mOld ? mx : mOld;`,
        `  if (mNew !== mOld) {`,
        `    Mr[i] = mNew;`,
        `    if (mOld !== -Infinity) {`,
        `      const alpha = Math.exp((mOld - mNew) * ${NUMERICS.LN2});`,
        `      Lr[i] *= alpha;`,
        `      for (let d = i * ${DV}, de = d + ${DV}; d < de; d++) ACC[d] *= alpha;`,
        `    }`,
        `  }`,
        `  let lsum = 0;`,
        `  for (let x = o; x < e; x++) { const p = Math.exp((S[x] - mNew) * ${NUMERICS.LN2}); S[x] = p; lsum += p; }`,
        `  Lr[i] += lsum;`,
        `}`,
      ],
    };
  }

  loadV(_blocks: BlockKind): JsCode {
    return { tile: [`const vT = vBase + col0 * stride_v_s;`] };
  }

  accumulate(_blocks: BlockKind): JsCode {
    const { DV, BN } = this;
    const u = this.options.accUnroll;
    const at = (base: string, d: string | number) => (d === 0 ? base : `${base} + ${d}`);
    const one = (a: string, p: string, vo: string) => [
      `if (${p} !== 0) {`,
      ...I(2, this.dLoop(DV, u, (d) => [`ACC[${at(a, d)}] += ${p} * V[${at(vo, d)}];`])),
      `}`,
    ];
    const acc22 = this.dLoop(DV, u, (d) => [
      `{ const v0 = V[${at("vo", d)}], v1 = V[${at("vo1", d)}];`,
      `  ACC[${at("a0", d)}] += p00 * v0 + p01 * v1; ACC[${at("a1", d)}] += p10 * v0 + p11 * v1; }`,
    ]);
    // Zero weights are skipped (masked keys never touch the accumulator, whatever V holds).
    return {
      accumulate: [
        `{ // ACC += P·V`,
        `  let i = 0;`,
        `  for (; i + 1 < rows; i += 2) {`,
        `    const o0 = i * ${BN}, o1 = o0 + ${BN}, a0 = i * ${DV}, a1 = a0 + ${DV};`,
        `    let j = 0, vo = vT;`,
        `    for (; j + 1 < cols; j += 2, vo += 2 * stride_v_s) {`,
        `      const p00 = S[o0 + j], p01 = S[o0 + j + 1], p10 = S[o1 + j], p11 = S[o1 + j + 1];`,
        `      const vo1 = vo + stride_v_s;`,
        `      if (p00 !== 0 && p01 !== 0 && p10 !== 0 && p11 !== 0) {`,
        ...I(8, acc22),
        `      } else {`,
        ...I(8, one("a0", "p00", "vo")),
        ...I(8, one("a0", "p01", "vo1")),
        ...I(8, one("a1", "p10", "vo")),
        ...I(8, one("a1", "p11", "vo1")),
        `      }`,
        `    }`,
        `    if (j < cols) {`,
        `      const p00 = S[o0 + j], p10 = S[o1 + j];`,
        ...I(6, one("a0", "p00", "vo")),
        ...I(6, one("a1", "p10", "vo")),
        `    }`,
        `  }`,
        `  if (i < rows) {`,
        `    const o0 = i * ${BN}, a0 = i * ${DV};`,
        `    for (let j = 0, vo = vT; j < cols; j++, vo += stride_v_s) {`,
        `      const p00 = S[o0 + j];`,
        ...I(6, one("a0", "p00", "vo")),
        `    }`,
        `  }`,
        `}`,
      ],
    };
  }
}
