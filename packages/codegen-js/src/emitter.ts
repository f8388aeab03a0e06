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

/** A piece of generated JS, by the loop level it belongs to. */
export interface JsCode {
  /** Statements at the step's own level (top-level steps), or once per program before a block loop. */
  lines?: string[];
  /** Closes what `lines` opened (the program step). */
  close?: string[];
  /** Once per kv tile. */
  tile?: string[];
  /** Once per query row of a kv tile, before the column loop. */
  row?: string[];
  /** A row-level guard expression: false skips the row for this tile. */
  rowGuard?: string;
  /** Per element, before the dot product: statements ending in `continue` for masked elements. */
  guard?: string[];
  /** Per element: computes `s`. */
  element?: string[];
  /** Once per query row, after the column loop. */
  rowEnd?: string[];
  /** A program-level guard: false skips the whole block loop. */
  loopGuard?: string;
}

export interface JsEmitterOptions {
  /** How the q·k dot product is written: "unroll" (independent partial sums), or "loop". */
  dot: "unroll" | "loop";
  /** How acc += p·v is written. */
  acc: "unroll" | "loop";
}

export const DEFAULT_JS_OPTIONS: JsEmitterOptions = { dot: "unroll", acc: "unroll" };

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

/** Sum of products a[ao + d] * b[bo + d] for d < n, as `chains` independent partial sums. */
function unrolledDot(n: number, a: (d: number) => string, b: (d: number) => string, chains: number): string {
  const parts: string[][] = Array.from({ length: Math.min(chains, n) }, () => []);
  for (let d = 0; d < n; d++) parts[d % parts.length].push(`${a(d)} * ${b(d)}`);
  const sums = parts.map((p) => `(${p.join(" + ")})`);
  // Pairwise sum of the chains.
  let level = sums;
  while (level.length > 1) {
    const next: string[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? `(${level[i]} + ${level[i + 1]})` : level[i]);
    level = next;
  }
  return level[0];
}

const off = (base: string, d: number) => (d === 0 ? base : `${base} + ${d}`);

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
        `const S = new Float64Array(${this.BN});`,
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
    const rowGuards = body.map((c) => c.rowGuard).filter((g): g is string => !!g);
    const loopGuards = body.map((c) => c.loopGuard).filter((g): g is string => !!g);
    const sub = SKV / BN;
    const loop = [
      `const nb = ${numTable}[trow], ib = trow * sparse_kv_blocks;`,
      `for (let t = 0; t < nb; t++) {`,
      `  const blk = ${idxTable}[ib + t];`,
      `  for (let sub = 0; sub < ${sub}; sub++) {`,
      `    const col0 = blk * ${SKV} + sub * ${BN};`,
      `    if (col0 >= kv_len) break;`,
      ...I(4, cat("tile")),
      `    for (let i = 0; i < rows; i++) {`,
      `      const qi = (row0 + i + q_offset) | 0;`,
      `      const qo = i * ${this.D};`,
      ...I(6, cat("row")),
      ...(rowGuards.length ? [`      if (!(${rowGuards.join(" && ")})) continue;`] : []),
      `      let mx = -Infinity;`,
      `      for (let j = 0, ko = kT; j < cols; j++, ko += stride_k_s) {`,
      `        const kj = (col0 + j + kv_offset) | 0;`,
      ...I(8, cat("guard")),
      ...I(8, cat("element")),
      `        S[j] = s;`,
      `        if (s > mx) mx = s;`,
      `      }`,
      ...I(6, cat("rowEnd")),
      `    }`,
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

  qk(_blocks: BlockKind): JsCode {
    const { D } = this;
    const dot =
      this.options.dot === "unroll"
        ? unrolledDot(D, (d) => `Qt[${off("qo", d)}]`, (d) => `K[${off("ko", d)}]`, 8)
        : null;
    const lines = dot
      ? [`let s = ${dot};`]
      : [`let s = 0;`, `for (let d = 0; d < ${D}; d++) s += Qt[qo + d] * K[ko + d];`];
    // With a score mod, the mod sees score = (q·k)·scale as f32; without, Q was prescaled.
    if (!this.prescale) lines.push(`s = Math.fround(s * scale);`);
    return { element: lines };
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
    const code: JsCode = { lines: m.levels[0], row: m.levels[1] };
    if (m.resultLevel === 0) code.loopGuard = m.result;
    else if (m.resultLevel === 1) code.rowGuard = m.result;
    else code.guard = [...m.levels[2], `if (!${m.result}) { S[j] = -Infinity; continue; }`];
    return code;
  }

  bounds(_blocks: BlockKind): JsCode {
    // Tiles that end before kvLen run all columns; only the last one is cut short.
    return { tile: [`const cols = col0 + ${this.BN} <= kv_len ? ${this.BN} : kv_len - col0;`] };
  }

  onlineSoftmax(_blocks: BlockKind): JsCode {
    const { DV } = this;
    return {
      rowEnd: [
        `const mOld = Mr[i];`,
        `if (mx === -Infinity) {`,
        `  // Nothing but -inf here, unless a score is NaN: that poisons the row (IEEE).`,
        `  for (let j = 0; j < cols; j++) if (S[j] !== -Infinity) { Lr[i] = NaN; break; }`,
        `  continue;`,
        `}`,
        `const mNew = mx > mOld ? mx : mOld;`,
        `if (mNew !== mOld) {`,
        `  Mr[i] = mNew;`,
        `  if (mOld !== -Infinity) {`,
        `    const alpha = Math.pow(2, mOld - mNew);`,
        `    Lr[i] *= alpha;`,
        `    for (let d = i * ${DV}, e = d + ${DV}; d < e; d++) ACC[d] *= alpha;`,
        `  }`,
        `}`,
        `let lsum = 0;`,
        `for (let j = 0; j < cols; j++) { const p = Math.pow(2, S[j] - mNew); S[j] = p; lsum += p; }`,
        `Lr[i] += lsum;`,
      ],
    };
  }

  loadV(_blocks: BlockKind): JsCode {
    return { tile: [`const vT = vBase + col0 * stride_v_s;`] };
  }

  accumulate(_blocks: BlockKind): JsCode {
    const { DV } = this;
    const body =
      this.options.acc === "unroll"
        ? Array.from({ length: DV }, (_, d) => `  ACC[${off("ao", d)}] += p * V[${off("vo", d)}];`)
        : [`  for (let d = 0; d < ${DV}; d++) ACC[ao + d] += p * V[vo + d];`];
    return {
      rowEnd: [
        `const ao = i * ${DV};`,
        `for (let j = 0, vo = vT; j < cols; j++, vo += stride_v_s) {`,
        `  const p = S[j];`,
        `  if (p === 0) continue;`,
        ...I(2, body),
        `}`,
      ],
    };
  }
}
