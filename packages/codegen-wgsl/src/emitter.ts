/**
 * The WGSL emitter: one method per template step, producing one compute shader.
 *
 * Per kv tile (BN keys), with four workgroup barriers:
 *   loadK    K tile → workgroup memory                                   barrier
 *   qk       S (RM × RN per invocation) = Q·Kᵀ from workgroup memory, vec4 steps
 *   mods     score mod, mask (partial blocks), kv bounds — inlined per element
 *   softmax  row max exchanged across the TC invocations of a row group (barrier, or
 *            subgroup shuffles); P = exp2(S − m) → Pᵀ in workgroup memory; rescale O, l
 *   loadV    V tile → the same workgroup buffer as K                     barrier
 *   acc      O (RM × CV vec4 per invocation) += P·V                      barrier
 * Q stays in workgroup memory for the whole program. All arithmetic is f32.
 */
import { type ModGraph, renderGraph } from "@flexattn/ir";
import { type BlockKind, type KernelSpec, NUMERICS, type TemplateEmitter } from "@flexattn/template";
import { BINDING, capturedOffsets, paramsStruct } from "./abi.js";
import type { WgslGeometry } from "./geometry.js";
import { WGSL_LOAD_PRELUDE, WGSL_MOD_PRELUDE, wgslFloat, wgslRenderer } from "./renderer.js";
import { elementType, loadFunction, storageFormat, storeFunction } from "./storage.js";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const indent = (code: string, by = "  ") => code.split("\n").map((l) => (l ? by + l : l)).join("\n");
const COMP = ["x", "y", "z", "w"];

/** Largest u ≤ want that divides n (source-level unroll factors must divide the trip count). */
function unrollFor(n: number, want: number): number {
  for (let u = Math.min(want, n); u > 1; u--) if (n % u === 0) return u;
  return 1;
}

export class WgslEmitter implements TemplateEmitter<string> {
  private readonly unitType: string;
  private readonly prescaled: boolean;
  private readonly offsets: ReturnType<typeof capturedOffsets>;

  constructor(
    private readonly spec: KernelSpec,
    private readonly g: WgslGeometry,
  ) {
    this.unitType = g.W === 1 ? "f32" : `vec${g.W}<f32>`;
    this.prescaled = spec.config.prescaleQk && spec.score === null;
    this.offsets = capturedOffsets(spec);
  }

  // ---- helpers -------------------------------------------------------------------------

  /** The RM rows of unit u as a vecW (or f32) built from per-row names. */
  private unitOf(u: number, name: (i: number) => string): string {
    const rows = range(this.g.W).map((k) => name(u * this.g.W + k));
    return this.g.W === 1 ? rows[0] : `${this.unitType}(${rows.join(", ")})`;
  }

  /** Component of row i inside its unit value. */
  private comp(unit: string, i: number): string {
    return this.g.W === 1 ? unit : `${unit}.${COMP[i % this.g.W]}`;
  }

  /** Statements applying a graph at S element (i, j), ending in `assign(result)`. */
  private modAt(graph: ModGraph, owner: "mask" | "score", i: number, j: number, assign: (r: string) => string): string {
    const offsets = owner === "mask" ? this.offsets.mask : this.offsets.score;
    const r = wgslRenderer({
      inputs: { score: `s_${i}_${j}`, b: "b", h: "hq", q: `qi_${i}`, kv: `kj_${j}` },
      bufferBase: (slot) => `${offsets[slot]}u`,
      specials: { posInf: "P.pos_inf", negInf: "NEG_INF", nan: "P.nan" },
    });
    const { statements, result } = renderGraph(graph, r, "t");
    return `{\n${indent([...statements, assign(result)].join("\n"))}\n}`;
  }

  /** For each S element of the register tile. */
  private eachS(f: (i: number, j: number) => string): string {
    return range(this.g.RM).flatMap((i) => range(this.g.RN).map((j) => f(i, j))).join("\n");
  }

  /** Cooperative copy of `rows` rows × `width4` vec4 from a tensor into workgroup memory. */
  private loadTile(tensor: "q" | "k" | "v", rows: number, width4: number, dim: number, dst: (r: string, d4: string) => string, scale?: string): string {
    const { T } = this.g;
    const [first, len, base] = tensor === "q" ? ["q0", "P.q_len", "qb"] : ["kv0", "P.kv_len", tensor === "k" ? "kb" : "vb"];
    const x = scale ? `x * ${scale}` : "x";
    return `for (var i = tid; i < ${rows * width4}; i += ${T}) {
  let r = i / ${width4};
  let d4 = i - r * ${width4};
  var x = vec4<f32>(0.0f);
  if (${first} + r < ${len}) { x = fa_ld4_${tensor}(${base} + (${first} + r) * P.stride_${tensor}_s + d4 * 4, ${dim} - d4 * 4); }
  ${dst("r", "d4")} = ${x};
}`;
  }

  // ---- template steps ------------------------------------------------------------------

  program(): string {
    const { spec, g } = this;
    const fmt = storageFormat(spec.dtype, g.opts.vec4);
    const el = elementType(fmt);
    const hasCaptured = this.offsets.words > 0;
    const bind = (n: number, decl: string) => `@group(0) @binding(${n}) ${decl};`;
    const lines = [
      `// flexattn WGSL kernel: ${spec.qkHeadDim}/${spec.vHeadDim} ${spec.dtype}, tile ${g.BM}×${g.BN}, ` +
        `${g.T} invocations (${g.G} row groups × ${g.TC}), ${g.RM}×${g.RN} S and ${g.RM}×${g.CV * 4} O per invocation`,
      ...(g.opts.subgroups ? ["enable subgroups;"] : []),
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
      `var<workgroup> fa_qs: array<vec4<f32>, ${g.qWords}>;`,
      `var<workgroup> fa_kv: array<vec4<f32>, ${g.kvWords}>;`,
      `var<workgroup> fa_pt: array<${this.unitType}, ${g.pUnits}>;`,
      ...(g.mxUnits ? [`var<workgroup> fa_mx: array<${this.unitType}, ${g.mxUnits}>;`] : []),
      "",
      `@compute @workgroup_size(${g.T})`,
      "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
    ];
    const body = `let tid = i32(lid);
let g = tid / ${g.TC};
let c = tid - g * ${g.TC};
let NEG_INF = P.neg_inf;
// The last query tiles (the longest rows under causal masks) are scheduled first.
let m = (P.q_len + ${g.BM - 1}) / ${g.BM} - 1 - i32(wg.x);
let hq = i32(wg.y);
let b = i32(wg.z);
let hkv = hq / (P.q_heads / P.kv_heads);
let q0 = m * ${g.BM};
let tab = ((b % P.sparse_b) * P.sparse_h + hq % P.sparse_h) * P.sparse_q_blocks + q0 / ${g.sparseBlock[0]};
let qb = b * P.stride_q_b + hq * P.stride_q_h;
let kb = b * P.stride_k_b + hkv * P.stride_k_h;
let vb = b * P.stride_v_b + hkv * P.stride_v_h;
let ob = b * P.stride_out_b + hq * P.stride_out_h;
${range(g.RM).map((i) => `let qi_${i} = q0 + g * ${g.RM} + ${i} + P.q_offset;`).join("\n")}`;
    return `${lines.join("\n")}\n${indent(body)}`;
  }

  loadQ(): string {
    const { g } = this;
    // Q rows are grouped by row group, each group padded to an odd vec4 stride.
    const dst = (r: string, d4: string) => `fa_qs[(${r} / ${g.RM}) * ${g.QGS} + (${r} % ${g.RM}) * ${g.D4} + ${d4}]`;
    return indent(`// Q tile → workgroup memory (made visible by the first K tile's barrier)
${this.loadTile("q", g.BM, g.D4, g.D, dst, this.prescaled ? "P.scale_log2" : undefined)}`);
  }

  initState(): string {
    const { g } = this;
    return indent(range(g.RM).map((i) =>
      [`var m_${i} = NEG_INF;`, `var l_${i} = 0.0f;`, ...range(g.CV).map((v) => `var o_${i}_${v} = vec4<f32>(0.0f);`)].join(" "),
    ).join("\n"));
  }

  blockLoop(blocks: BlockKind, body: string[]): string {
    const { g } = this;
    const [num, idx] = blocks === "partial" ? ["P.tab_kv_num", "P.tab_kv_idx"] : ["P.tab_full_num", "P.tab_full_idx"];
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
for (var bi = 0; bi < fa_tab[${num} + tab]; bi++) {
  let kblk = fa_tab[${idx} + tab * P.sparse_kv_blocks + bi];
${indent(tile)}
}`);
  }

  loadK(): string {
    const { g } = this;
    return `${this.loadTile("k", g.BN, g.D4, g.D, (r, d4) => `fa_kv[${r} * ${g.KS} + ${d4}]`)}\nworkgroupBarrier();`;
  }

  qk(): string {
    const { g } = this;
    const ud = unrollFor(g.D4, g.opts.unrollD);
    const step = (k: number) => {
      const d = k ? `d4 + ${k}` : "d4";
      return [
        ...range(g.RM).map((i) => `let aq${i} = fa_qs[g * ${g.QGS} + ${i * g.D4} + ${d}];`),
        ...range(g.RN).map((j) => `let bk${j} = fa_kv[(c + ${j * g.TC}) * ${g.KS} + ${d}];`),
        this.eachS((i, j) => `s_${i}_${j} = fma(aq${i}.w, bk${j}.w, fma(aq${i}.z, bk${j}.z, fma(aq${i}.y, bk${j}.y, fma(aq${i}.x, bk${j}.x, s_${i}_${j}))));`),
      ].join("\n");
    };
    const scale = this.prescaled ? null : this.spec.score ? "P.scale" : "P.scale_log2";
    return [
      range(g.RN).map((j) => `let kj_${j} = kv0 + c + ${j * g.TC} + P.kv_offset;`).join("\n"),
      this.eachS((i, j) => `var s_${i}_${j} = 0.0f;`),
      `for (var d4 = 0; d4 < ${g.D4}; d4 += ${ud}) {`,
      ...range(ud).map((k) => indent(`{\n${indent(step(k))}\n}`)),
      "}",
      // Without a score mod the scores go straight to the exp2 domain.
      ...(scale ? [this.eachS((i, j) => `s_${i}_${j} *= ${scale};`)] : []),
    ].join("\n");
  }

  scoreMod(): string {
    return this.eachS((i, j) => this.modAt(this.spec.score!, "score", i, j, (r) => `s_${i}_${j} = ${r};`));
  }

  maskMod(): string {
    return this.eachS((i, j) => this.modAt(this.spec.mask!, "mask", i, j, (r) => `s_${i}_${j} = select(NEG_INF, s_${i}_${j}, ${r});`));
  }

  bounds(): string {
    const { g } = this;
    return `if (kv0 + ${g.BN} > P.kv_len) {
${indent(this.eachS((i, j) => `s_${i}_${j} = select(NEG_INF, s_${i}_${j}, kv0 + c + ${j * g.TC} < P.kv_len);`))}
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
      for (const u of range(g.U)) {
        lines.push(`fa_pt[(c + ${j * g.TC}) * ${g.PS} + g * ${g.U} + ${u}] = ${this.unitOf(u, (i) => `p_${i}_${j}`)};`);
      }
    }
    return lines.join("\n");
  }

  /** Reduce per-row values `${v}_i` across the TC invocations of each row group, in place. */
  private exchange(v: string, op: "max" | "+"): string {
    const { g } = this;
    const combine = (a: string, b: string) => (op === "max" ? `max(${a}, ${b})` : `${a} + ${b}`);
    if (g.TC === 1) return "";
    if (g.opts.subgroups) {
      // Row groups are TC consecutive invocations, inside one subgroup (runner checks the size).
      const steps: string[] = [];
      for (let off = g.TC / 2; off >= 1; off /= 2) {
        steps.push(...range(g.RM).map((i) => `${v}_${i} = ${combine(`${v}_${i}`, `subgroupShuffleXor(${v}_${i}, ${off}u)`)};`));
      }
      return steps.join("\n");
    }
    // Every invocation of the group sums the TC partials in the same order, so all agree bitwise.
    return [
      ...range(g.U).map((u) => `fa_mx[c * ${g.PS} + g * ${g.U} + ${u}] = ${this.unitOf(u, (i) => `${v}_${i}`)};`),
      "workgroupBarrier();",
      ...range(g.RM).map((i) => `${v}_${i} = ${op === "max" ? "NEG_INF" : "0.0f"};`),
      `for (var cc = 0; cc < ${g.TC}; cc++) {`,
      ...range(g.U).map((u) => `  let e${u} = fa_mx[cc * ${g.PS} + g * ${g.U} + ${u}];`),
      ...range(g.RM).map((i) => `  ${v}_${i} = ${combine(`${v}_${i}`, this.comp(`e${Math.floor(i / g.W)}`, i))};`),
      "}",
    ].join("\n");
  }

  loadV(): string {
    const { g } = this;
    // With subgroup exchange nothing has synchronized since Q·Kᵀ read the K tile.
    const wait = g.opts.subgroups || g.TC === 1 ? "workgroupBarrier();\n" : "";
    return `${wait}${this.loadTile("v", g.BN, g.DV4, g.DV, (r, d4) => `fa_kv[${r} * ${g.VW} + ${d4}]`)}\nworkgroupBarrier();`;
  }

  accumulate(): string {
    const { g } = this;
    const un = unrollFor(g.BN, g.opts.unrollN);
    const step = (k: number) => {
      const n = k ? `n + ${k}` : "n";
      return [
        ...range(g.U).map((u) => `let pu${u} = fa_pt[(${n}) * ${g.PS} + g * ${g.U} + ${u}];`),
        ...range(g.CV).map((v) => `let v${v} = fa_kv[(${n}) * ${g.VW} + c + ${v * g.TC}];`),
        ...range(g.RM).flatMap((i) => range(g.CV).map((v) =>
          `o_${i}_${v} = fma(vec4<f32>(${this.comp(`pu${Math.floor(i / g.W)}`, i)}), v${v}, o_${i}_${v});`)),
      ].join("\n");
    };
    return [
      `for (var n = 0; n < ${g.BN}; n += ${un}) {`,
      ...range(un).map((k) => indent(`{\n${indent(step(k))}\n}`)),
      "}",
      "workgroupBarrier();",
    ].join("\n");
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
    // Fully masked rows (l = 0) write O = 0 and LSE = -inf.
    let inv = select(1.0f / lt_${i}, 0.0f, lt_${i} == 0.0f);
${indent(indent([...store, ...lse].join("\n")))}
  }
}`);
    }
    return `${indent(lines.join("\n"))}\n}\n`;
  }
}
