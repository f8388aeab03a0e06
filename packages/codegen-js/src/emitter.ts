/**
 * The JS TemplateEmitter: one method per template step. The top-level steps write the program
 * loops (batch → query head → query tile); each block-loop step contributes one phase of the
 * work on a BLOCK_M × BLOCK_N tile, as a small top-level helper function plus its call:
 *
 *   maskMod       mask pass: MK[i·BN + j] = mask(b, h, q, kv)   (partial blocks; 0 live → skip tile)
 *   qk            S = Q·Kᵀ, 2 rows × 2 columns per step (2×2 groups fully masked are skipped)
 *   scoreMod      s = scoreMod((q·k)·scale as f32, …), masked elements → -inf
 *   bounds        the tile's column count: only a tile crossing kvLen is cut short
 *   onlineSoftmax m_new, rescale l and acc, S becomes P (exp2 domain)
 *   loadV         VF flags the V rows that hold NaN or ±inf, computed at a tile's first zero weight
 *   accumulate    ACC += P·V, 2 × 2, zero weights skipped unless VF[j] (NUMERICS.zeroWeights)
 *
 * Small helpers called once per tile are optimized by V8 within the first call's first tiles,
 * where one large function would wait for on-stack replacement. Mods are inlined in the
 * helpers with ir's renderGraph + jsRenderer, each statement hoisted to the outermost loop
 * whose indices it reads (see mods.ts).
 */
import { FlexAttnError, type ModGraph } from "@flexattn/ir";
import { type BlockKind, type KernelSpec, NUMERICS, type TemplateEmitter, capturedBuffers } from "@flexattn/template";
import { type LeveledMod, renderLeveled } from "./mods.js";

/** A piece of generated JS. */
export interface JsCode {
  /** Statements at the step's own level (top-level steps), or once per program before a block loop. */
  lines?: string[];
  /** Closes what `lines` opened (the program step). */
  close?: string[];
  /** Top-level helper functions, by name (shared helpers are emitted once). */
  functions?: Record<string, string[]>;
  /** A program-level guard: false skips the whole block loop. */
  loopGuard?: string;
  /** Once per kv tile, in phase order: offsets and column count. */
  tile?: string[];
  /** Per kv tile: the calls of the phases, keyed by phase. */
  phase?: Partial<Record<Phase, string[]>>;
  /** Phase "score", per query row: statements before the column loop. */
  row?: string[];
  /** Phase "score", per element: statements ending in `continue` for masked elements. */
  guard?: string[];
  /** Phase "score", per element: reads and updates `s`. */
  element?: string[];
}

export type Phase = "mask" | "qk" | "score" | "softmax" | "accumulate";
const PHASES: readonly Phase[] = ["mask", "qk", "score", "softmax", "accumulate"];

export interface JsEmitterOptions {
  /** Statements per iteration of the q·k d-loop (1 = a plain loop). */
  dotUnroll: number;
  /** Statements per iteration of the acc += p·v d-loop. */
  accUnroll: number;
  /** Key columns per step of acc += p·v (2 query rows × accCols keys). */
  accCols: number;
  /** Key columns per step of S = Q·Kᵀ (2 query rows × qkCols keys). */
  qkCols: number;
}

export const DEFAULT_JS_OPTIONS: JsEmitterOptions = { dotUnroll: 2, accUnroll: 4, accCols: 4, qkCols: 2 };

const I = (n: number, lines: string[]) => lines.map((l) => " ".repeat(n) + l);
const at = (base: string, d: string | number) => (d === 0 ? base : `${base} + ${d}`);

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

  private buffersOf(owner: "mask" | "score"): string[] {
    return capturedBuffers(this.spec).flatMap((b, i) => (b.owner === owner ? [this.bufferParams[i]] : []));
  }

  private mod(graph: ModGraph, owner: "mask" | "score", blocks: BlockKind): LeveledMod {
    const all = capturedBuffers(this.spec);
    return renderLeveled(graph, {
      inputs: { b: "b", h: "hq", q: "qi", kv: "kj", score: "s" },
      bufferName: (slot) => {
        const i = all.findIndex((b) => b.owner === owner && b.slot === slot);
        if (i < 0) throw new FlexAttnError(`codegen-js: no captured buffer ${owner}[${slot}]`);
        return this.bufferParams[i];
      },
      prefix: `${owner[0]}${blocks[0]}_`,
    });
  }

  /** A d-loop over `n` elements, its body repeated `unroll` times per iteration (remainder spelled out). */
  private dLoop(n: number, unroll: number, stmt: (d: string | number) => string[]): string[] {
    const main = n - (n % unroll);
    const lines: string[] = [];
    if (main > 0) {
      lines.push(`for (let d = 0; d < ${main}; d${unroll === 1 ? "++" : ` += ${unroll}`}) {`);
      for (let u = 0; u < unroll; u++) lines.push(...I(2, stmt(u === 0 ? "d" : `d + ${u}`)));
      lines.push(`}`);
    }
    for (let d = main; d < n; d++) lines.push(...stmt(d));
    return lines;
  }

  // ---- top-level steps ----

  program(): JsCode {
    const { BM, D, DV, BN } = this;
    const dec = this.spec.dtype !== "f32";
    return {
      lines: [
        `const Qt = new Float64Array(${BM * D});`,
        `const ACC = new Float64Array(${BM * DV});`,
        `const Mr = new Float64Array(${BM});`,
        `const Lr = new Float64Array(${BM});`,
        `const S = new Float64Array(${BM * BN});`,
        `const MK = new Uint8Array(${BM * BN});`,
        `const VF = new Uint8Array(${BN + 1}); // VF[${BN}]: whether VF[0..] is computed for this tile`,
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
        `      const q0 = (row0 + q_offset) | 0;`,
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
    const cat = (k: "lines" | "tile" | "row" | "guard" | "element") => body.flatMap((c) => c[k] ?? []);
    const functions: Record<string, string[]> = Object.assign({}, ...body.map((c) => c.functions ?? {}));
    const phases: Partial<Record<Phase, string[]>> = {};
    for (const c of body) for (const [k, v] of Object.entries(c.phase ?? {})) phases[k as Phase] = [...(phases[k as Phase] ?? []), ...v];
    // The per-element phase exists only when some step works per element (mask, f32 scale, score mod).
    const guard = cat("guard");
    const element = cat("element");
    if (guard.length || element.length) {
      const name = `scoreTile_${blocks}`;
      const masked = guard.length > 0;
      const params = ["S", ...(masked ? ["MK"] : []), "rows", "cols", "q0", "k0", "b", "hq", "scale", ...this.buffersOf("score")];
      functions[name] = [
        `function ${name}(${[...new Set(params)].join(", ")}) {`,
        `  for (let i = 0; i < rows; i++) {`,
        `    const qi = (q0 + i) | 0, o = i * ${BN};`,
        ...I(4, cat("row")),
        `    for (let j = 0; j < cols; j++) {`,
        `      const kj = (k0 + j) | 0;`,
        ...I(6, guard),
        `      let s = S[o + j];`,
        ...I(6, element),
        `      S[o + j] = s;`,
        `    }`,
        `  }`,
        `}`,
      ];
      phases.score = [`${name}(${[...new Set(params)].join(", ")});`];
    }
    const loop = [
      `const nb = ${numTable}[trow], ib = trow * sparse_kv_blocks;`,
      `for (let t = 0; t < nb; t++) {`,
      `  const blk = ${idxTable}[ib + t];`,
      `  for (let sub = 0; sub < ${SKV / BN}; sub++) {`,
      `    const col0 = blk * ${SKV} + sub * ${BN};`,
      `    if (col0 >= kv_len) break;`,
      `    const k0 = (col0 + kv_offset) | 0;`,
      ...I(4, cat("tile")),
      ...I(4, PHASES.flatMap((p) => phases[p] ?? [])),
      `  }`,
      `}`,
    ];
    const loopGuards = body.map((c) => c.loopGuard).filter((g): g is string => !!g);
    const wrapped = loopGuards.length ? [`if (${loopGuards.join(" && ")}) {`, ...I(2, loop), `}`] : loop;
    return { lines: [`{ // ${blocks} blocks`, ...I(2, cat("lines")), ...I(2, wrapped), `}`], functions };
  }

  epilogue(): JsCode {
    const { DV } = this;
    const store = this.spec.dtype === "f32" ? (x: string) => x : (x: string) => `encode(${x})`;
    return {
      lines: [
        `for (let i = 0; i < rows; i++) {`,
        `  const o = oBase + (row0 + i) * stride_out_s, ao = i * ${DV}, l = Lr[i];`,
        `  // A fully masked row (l = 0) writes ACC·0: 0, or NaN where a listed key's V is NaN/±inf.`,
        `  const inv = l === 0 ? 0 : 1 / l;`,
        `  for (let d = 0; d < ${DV}; d++) out[o + d] = ${store("ACC[ao + d] * inv")};`,
        ...(this.spec.returnLse ? [`  lse[lseBase + row0 + i] = l === 0 ? -Infinity : ${NUMERICS.LN2} * (Mr[i] + Math.log2(l));`] : []),
        `}`,
      ],
    };
  }

  // ---- block-loop body steps ----

  loadK(_blocks: BlockKind): JsCode {
    return { tile: [`const kT = kBase + col0 * stride_k_s;`] };
  }

  qk(blocks: BlockKind): JsCode {
    const { D, BN } = this;
    // MK is written only by a per-element mask pass; a mask of b/h alone is a loop guard (see maskMod).
    const masked = blocks === "partial" && this.spec.mask !== null && this.mod(this.spec.mask, "mask", blocks).resultLevel !== 0;
    const u = this.options.dotUnroll;
    const C = this.options.qkCols;
    const cs = Array.from({ length: C }, (_, c) => c);
    // 2 rows × C columns per step: each K element loaded once feeds two products, each Q element C.
    const block = this.dLoop(D, u, (d) => [
      `{ const ${cs.map((c) => `k${c} = K[${at(`ko${c}`, d)}]`).join(", ")}, x0 = Qt[${at("q0", d)}], x1 = Qt[${at("q1", d)}];`,
      `  ${cs.map((c) => `s0${c} += x0 * k${c}; s1${c} += x1 * k${c};`).join(" ")} }`,
    ]);
    const dot21 = this.dLoop(D, u, (d) => [`{ const k0 = K[${at("ko0", d)}]; s00 += Qt[${at("q0", d)}] * k0; s10 += Qt[${at("q1", d)}] * k0; }`]);
    const dot11 = this.dLoop(D, u, (d) => [`s00 += Qt[${at("q0", d)}] * K[${at("ko0", d)}];`]);
    const group = cs.flatMap((c) => [`MK[${at("o0 + j", c)}]`, `MK[${at("o1 + j", c)}]`]);
    const skip = masked ? [`if ((${group.join(" | ")}) === 0) continue; // all masked`] : [];
    const accs = cs.flatMap((c) => [`s0${c} = 0`, `s1${c} = 0`]);
    const name = masked ? "qkTile_masked" : "qkTile";
    const params = ["Qt", "K", "S", ...(masked ? ["MK"] : []), "kT", "sks", "rows", "cols"];
    return {
      functions: {
        [name]: [
          `function ${name}(${params.join(", ")}) { // S = Q·Kᵀ`,
          `  let i = 0;`,
          `  for (; i + 1 < rows; i += 2) {`,
          `    const q0 = i * ${D}, q1 = q0 + ${D}, o0 = i * ${BN}, o1 = o0 + ${BN};`,
          `    let j = 0, ko0 = kT;`,
          `    for (; j + ${C - 1} < cols; j += ${C}, ko0 += ${C} * sks) {`,
          ...I(6, skip),
          ...(C > 1 ? [`      const ${cs.slice(1).map((c) => `ko${c} = ko${c - 1} + sks`).join(", ")};`] : []),
          `      let ${accs.join(", ")};`,
          ...I(6, block),
          `      ${cs.map((c) => `S[${at("o0 + j", c)}] = s0${c}; S[${at("o1 + j", c)}] = s1${c};`).join(" ")}`,
          `    }`,
          `    for (; j < cols; j++, ko0 += sks) {`,
          `      let s00 = 0, s10 = 0;`,
          ...I(6, dot21),
          `      S[o0 + j] = s00; S[o1 + j] = s10;`,
          `    }`,
          `  }`,
          `  if (i < rows) {`,
          `    const q0 = i * ${D}, o0 = i * ${BN};`,
          `    for (let j = 0, ko0 = kT; j < cols; j++, ko0 += sks) {`,
          `      let s00 = 0;`,
          ...I(6, dot11),
          `      S[o0 + j] = s00;`,
          `    }`,
          `  }`,
          `}`,
        ],
      },
      phase: { qk: [`${name}(${params.join(", ").replace("sks", "stride_k_s")});`] },
      // With a score mod, the mod sees score = (q·k)·scale as f32; without, Q was prescaled.
      element: this.prescale ? [] : [`s = Math.fround(s * scale);`],
    };
  }

  scoreMod(blocks: BlockKind): JsCode {
    const m = this.mod(this.spec.score!, "score", blocks);
    // Level-0 statements (b, h only) are cheap: recomputed per row inside the tile helper.
    return { row: [...m.levels[0], ...m.levels[1]], element: [...m.levels[2], `s = ${m.result} * ${NUMERICS.LOG2E};`] };
  }

  maskMod(blocks: BlockKind): JsCode {
    const m = this.mod(this.spec.mask!, "mask", blocks);
    if (m.resultLevel === 0) return { lines: m.levels[0], loopGuard: m.result };
    const { BN } = this;
    const name = `maskTile_${blocks}`;
    const params = ["MK", "rows", "cols", "q0", "k0", "b", "hq", ...this.buffersOf("mask")];
    return {
      functions: {
        [name]: [
          `function ${name}(${params.join(", ")}) { // MK = mask, returns the number kept`,
          `  let live = 0;`,
          ...I(2, m.levels[0]),
          `  for (let i = 0; i < rows; i++) {`,
          `    const qi = (q0 + i) | 0, o = i * ${BN};`,
          ...I(4, m.levels[1]),
          `    for (let j = 0; j < cols; j++) {`,
          `      const kj = (k0 + j) | 0;`,
          ...I(6, m.levels[2]),
          `      const keep = ${m.result} ? 1 : 0;`,
          `      MK[o + j] = keep; live += keep;`,
          `    }`,
          `  }`,
          `  return live;`,
          `}`,
        ],
      },
      // A tile with every element masked still adds 0·V: skipped only when its V is finite (loadV).
      phase: { mask: [`if (${name}(${params.join(", ")}) === 0 && vFlagsTile(V, vT, stride_v_s, cols, VF) === 0) continue; // every element masked, V finite`] },
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
      functions: {
        softmaxTile: [
          `function softmaxTile(S, Mr, Lr, ACC, rows, cols) { // online softmax (exp2 domain); S becomes P`,
          `  for (let i = 0; i < rows; i++) {`,
          `    const o = i * ${BN}, e = o + cols;`,
          `    let mx = -Infinity;`,
          `    for (let x = o; x < e; x++) { const s = S[x]; if (s > mx) mx = s; }`,
          `    if (mx === -Infinity) {`,
          `      // Nothing but -inf in this row of the tile, unless a score is NaN: that poisons the row (IEEE).`,
          `      for (let x = o; x < e; x++) { if (S[x] !== -Infinity) Lr[i] = NaN; S[x] = 0; }`,
          `      continue;`,
          `    }`,
          `    const mOld = Mr[i];`,
          `    const mNew = mx > mOld ? mx : mOld;`,
          `    if (mNew !== mOld) {`,
          `      Mr[i] = mNew;`,
          `      if (mOld !== -Infinity) {`,
          `        const alpha = Math.exp((mOld - mNew) * ${NUMERICS.LN2});`,
          `        Lr[i] *= alpha;`,
          `        for (let d = i * ${DV}, de = d + ${DV}; d < de; d++) ACC[d] *= alpha;`,
          `      }`,
          `    }`,
          `    let lsum = 0;`,
          `    for (let x = o; x < e; x++) { const p = Math.exp((S[x] - mNew) * ${NUMERICS.LN2}); S[x] = p; lsum += p; }`,
          `    Lr[i] += lsum;`,
          `  }`,
          `}`,
        ],
      },
      phase: { softmax: [`softmaxTile(S, Mr, Lr, ACC, rows, cols);`] },
    };
  }

  loadV(_blocks: BlockKind): JsCode {
    const { DV, BN } = this;
    // Masked keys of a listed block add 0·V as on the matrix units (NUMERICS.zeroWeights): 0·NaN
    // and 0·inf are NaN. Flagging the non-finite V rows lets accTile keep skipping zero weights
    // for every other key; the flags are computed at the tile's first zero weight, so tiles
    // without one (full blocks, mostly) pay nothing.
    return {
      functions: {
        vFlagsTile: [
          `function vFlagsTile(V, vT, svs, cols, VF) { // VF[j] = V row j holds NaN or ±inf; returns how many do`,
          `  let bad = 0;`,
          `  for (let j = 0, vo = vT; j < cols; j++, vo += svs) {`,
          `    let z = 0;`,
          `    for (let d = 0; d < ${DV}; d++) z += 0 * V[vo + d]; // 0·x is NaN exactly for x = NaN or ±inf`,
          `    VF[j] = z === 0 ? 0 : 1;`,
          `    bad += VF[j];`,
          `  }`,
          `  VF[${BN}] = 1;`,
          `  return bad;`,
          `}`,
        ],
      },
      tile: [`const vT = vBase + col0 * stride_v_s;`, `VF[${BN}] = 0;`],
    };
  }

  accumulate(_blocks: BlockKind): JsCode {
    const { DV, BN } = this;
    const u = this.options.accUnroll;
    const C = this.options.accCols;
    const cs = Array.from({ length: C }, (_, c) => c);
    const one = (a: string, p: string, vo: string, vf: string) => [
      `if (${p} === 0 && VF[${BN}] === 0) vFlagsTile(V, vT, svs, cols, VF);`,
      `if (${p} !== 0 || ${vf} !== 0) {`,
      ...I(2, this.dLoop(DV, u, (d) => [`ACC[${at(a, d)}] += ${p} * V[${at(vo, d)}];`])),
      `}`,
    ];
    // 2 rows × C columns per step: each V element loaded once feeds both rows.
    const block = this.dLoop(DV, u, (d) => [
      `{ const ${cs.map((c) => `v${c} = V[${at(`vo${c}`, d)}]`).join(", ")};`,
      `  ACC[${at("a0", d)}] += ${cs.map((c) => `p0${c} * v${c}`).join(" + ")};`,
      `  ACC[${at("a1", d)}] += ${cs.map((c) => `p1${c} * v${c}`).join(" + ")}; }`,
    ]);
    const ps = cs.flatMap((c) => [`p0${c}`, `p1${c}`]);
    // Zero weights are skipped unless the key's V row is non-finite (VF, loadV): then 0·V makes
    // those columns NaN, as every backend's P·V does (NUMERICS.zeroWeights).
    return {
      functions: {
        accTile: [
          `function accTile(S, ACC, V, VF, vT, svs, rows, cols) { // ACC += P·V`,
          `  let i = 0;`,
          `  for (; i + 1 < rows; i += 2) {`,
          `    const o0 = i * ${BN}, o1 = o0 + ${BN}, a0 = i * ${DV}, a1 = a0 + ${DV};`,
          `    let j = 0, vo0 = vT;`,
          `    for (; j + ${C - 1} < cols; j += ${C}, vo0 += ${C} * svs) {`,
          `      const ${cs.map((c) => `p0${c} = S[${at("o0 + j", c)}], p1${c} = S[${at("o1 + j", c)}]`).join(", ")};`,
          ...(C > 1 ? [`      const ${cs.slice(1).map((c) => `vo${c} = vo${c - 1} + svs`).join(", ")};`] : []),
          `      if (${ps.map((p) => `${p} !== 0`).join(" && ")}) {`,
          ...I(8, block),
          `      } else {`,
          ...I(8, cs.flatMap((c) => [...one("a0", `p0${c}`, `vo${c}`, `VF[${at("j", c)}]`), ...one("a1", `p1${c}`, `vo${c}`, `VF[${at("j", c)}]`)])),
          `      }`,
          `    }`,
          `    for (; j < cols; j++, vo0 += svs) {`,
          `      const p00 = S[o0 + j], p10 = S[o1 + j];`,
          ...I(6, one("a0", "p00", "vo0", "VF[j]")),
          ...I(6, one("a1", "p10", "vo0", "VF[j]")),
          `    }`,
          `  }`,
          `  if (i < rows) {`,
          `    const o0 = i * ${BN}, a0 = i * ${DV};`,
          `    for (let j = 0, vo0 = vT; j < cols; j++, vo0 += svs) {`,
          `      const p00 = S[o0 + j];`,
          ...I(6, one("a0", "p00", "vo0", "VF[j]")),
          `    }`,
          `  }`,
          `}`,
        ],
      },
      phase: { accumulate: [`accTile(S, ACC, V, VF, vT, stride_v_s, rows, cols);`] },
    };
  }
}
