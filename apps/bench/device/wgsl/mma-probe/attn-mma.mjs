// Prototype generator: WGSL flash attention on subgroup matrices (f16 hi/lo split, 3 products).
// Noop mask only; Q/K/V pre-split by a separate pass into [bh][Lpad][D] f16 arrays (hi, then lo).
const range = (n) => Array.from({ length: n }, (_, i) => i);

// Module header of the subgroup-matrix shaders: the extensions and the f16 16×16 matrix types
// (with the f32 result type unless `withResult` is false).
// acc += a·b in `prod` f16 products (hi·hi, then hi·lo, then lo·hi), one statement each.
const products = (pad, acc, ah, al, bh, bl, prod) =>
  [[ah, bh], [ah, bl], [al, bh]].slice(0, prod).map(([a, b]) => `${pad}${acc} = subgroupMatrixMultiplyAccumulate(${a}, ${b}, ${acc});`);

// After S is stored to sc: the barrier, this lane's CPL scores x_j of row `row` (S row stride
// `stride`), the row max over its LPR lanes, and the lazy-rescale decision (alpha, m_ref).
const rowMaxLines = (stride, CPL, LPR, tau) => [
  "    workgroupBarrier();",
  `    let rb = sbase + row * ${stride}u;`,
  ...range(CPL).map((j) => `    let x${j} = sc[rb + ${j * LPR}u + part];`),
  `    var mx = ${range(CPL).map((j) => `x${j}`).reduce((a, b) => `max(${a}, ${b})`)};`,
  ...(LPR === 2 ? ["    mx = max(mx, subgroupShuffleXor(mx, 1u));"] : []),
  `    var alpha = 1.0f;
    if (first) { m_ref = mx; }
    else if (mx > m_ref + ${tau.toFixed(1)}f) { alpha = exp2(m_ref - mx); m_ref = mx; atomicStore(&rescale_flag, 1u); }`,
  "    var ls = 0.0f;",
];

/** The WGSL header of every matrix shader here (order-probe.mjs too): extensions and the f16 16×16 matrix aliases. */
export const matrixPrelude = (withResult) => `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);
alias ML = subgroup_matrix_left<f16, 16, 16>;
alias MR = subgroup_matrix_right<f16, 16, 16>;${withResult ? "\nalias MA = subgroup_matrix_result<f32, 16, 16>;" : ""}`;

export function splitShader() {
  return `
enable f16;
struct SP { n: u32, l: u32, lpad: u32, d: u32, mult: f32, total: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f16>;
@group(0) @binding(2) var<uniform> sp: SP;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = gid.x + gid.y * nw.x * 256u;
  if (i >= sp.total) { return; }
  let d = i % sp.d;
  let s = (i / sp.d) % sp.lpad;
  let bh = i / (sp.d * sp.lpad);
  var x = 0.0f;
  if (s < sp.l) { x = src[(bh * sp.l + s) * sp.d + d] * sp.mult; }
  let hb = bitcast<f32>(bitcast<u32>(x) & 0xffffe000u);  // top 11 significant bits: exact in f16
  dst[i] = f16(hb);
  dst[i + sp.total] = f16(x - hb);
}`;
}

// o: { D, BN, RF, NSG, qRegs, tau, products }
export function attnShader(o) {
  const { D, BN, RF, NSG } = o;
  const R = 16 * RF, BM = R * NSG, T = 32 * NSG, DF = D / 16, NF = BN / 16;
  const LPR = 32 / R; // lanes per row in the element phase
  const CPL = BN / LPR; // columns per lane
  const prod = o.products ?? 3;
  const L = [];
  L.push(`${matrixPrelude(true)}
struct Params { q_len: u32, kv_len: u32, lpad_q: u32, lpad_kv: u32, nq: u32, nkv: u32, heads: u32, _p: u32 }
@group(0) @binding(0) var<storage, read> qs: array<f16>;
@group(0) @binding(1) var<storage, read> ks: array<f16>;
@group(0) @binding(2) var<storage, read> vs: array<f16>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;
var<workgroup> sc: array<f32, ${NSG * R * BN}>;
var<workgroup> pp: array<f16, ${NSG * 2 * R * BN}>;
var<workgroup> rescale_flag: atomic<u32>;
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(local_invocation_index) tid: u32) {
  let bh = wg.y;
  let q0 = wg.x * ${BM}u + sg * ${R}u;
  let qoff = (bh * P.lpad_q + q0) * ${D}u;
  let kvbase = bh * P.lpad_kv * ${D}u;
  let sbase = sg * ${R * BN}u;
  let pbase = sg * ${2 * R * BN}u;
  let row = lane / ${LPR}u;
  let part = lane % ${LPR}u;
  var m_ref = -3.0e38f;  // finite "minus infinity": noop probe has no masked rows
  var l = 0.0f;
  var first = true;`);
  const qLoad = (rf, kd, lo) => `subgroupMatrixLoad<ML, row_major>(&qs, qoff + ${rf * 16 * D + kd * 16}u${lo ? " + P.nq" : ""}, ${D}u)`;
  if (o.qRegs) {
    for (const rf of range(RF)) for (const kd of range(DF)) {
      L.push(`  let qh_${rf}_${kd} = ${qLoad(rf, kd, false)};`);
      L.push(`  let ql_${rf}_${kd} = ${qLoad(rf, kd, true)};`);
    }
  }
  for (const rf of range(RF)) for (const df of range(DF)) L.push(`  var o_${rf}_${df} = MA();`);
  L.push(`  for (var n0 = 0u; n0 < P.kv_len; n0 += ${BN}u) {`);
  for (const rf of range(RF)) for (const nf of range(NF)) L.push(`    var s_${rf}_${nf} = MA();`);
  for (const kd of range(DF)) {
    L.push(`    {`);
    if (!o.qRegs) for (const rf of range(RF)) {
      L.push(`      let qh_${rf}_${kd} = ${qLoad(rf, kd, false)};`);
      L.push(`      let ql_${rf}_${kd} = ${qLoad(rf, kd, true)};`);
    }
    for (const nf of range(NF)) {
      L.push(`      let kh${nf} = subgroupMatrixLoad<MR, col_major>(&ks, kvbase + (n0 + ${nf * 16}u) * ${D}u + ${kd * 16}u, ${D}u);`);
      L.push(`      let kl${nf} = subgroupMatrixLoad<MR, col_major>(&ks, kvbase + (n0 + ${nf * 16}u) * ${D}u + ${kd * 16}u + P.nkv, ${D}u);`);
    }
    for (const nf of range(NF)) for (const rf of range(RF)) L.push(...products("      ", `s_${rf}_${nf}`, `qh_${rf}_${kd}`, `ql_${rf}_${kd}`, `kh${nf}`, `kl${nf}`, prod));
    L.push(`    }`);
  }
  for (const rf of range(RF)) for (const nf of range(NF)) L.push(`    subgroupMatrixStore<row_major>(&sc, sbase + ${rf * 16 * BN + nf * 16}u, s_${rf}_${nf}, ${BN}u);`);
  // element phase: lane owns row `row`, columns j*LPR + part
  L.push(...rowMaxLines(BN, CPL, LPR, o.tau));
  const pb = `pbase + row * ${BN}u`;
  for (const j of range(CPL)) {
    L.push(`    { let p = exp2(x${j} - m_ref); ls += p; let hb = bitcast<f32>(bitcast<u32>(p) & 0xffffe000u); pp[${pb} + ${j * LPR}u + part] = f16(hb); pp[${pb} + ${R * BN + j * LPR}u + part] = f16(p - hb); }`);
  }
  L.push(`    l = l * alpha + ls;
    first = false;
    if (workgroupUniformLoad(&rescale_flag) != 0u) {`);
  // rescale O through sc in chunks of NF frags per rf
  for (let c = 0; c < DF; c += NF) {
    for (const rf of range(RF)) for (let df = c; df < Math.min(DF, c + NF); df++) {
      L.push(`      subgroupMatrixStore<row_major>(&sc, sbase + ${rf * 16 * BN + (df - c) * 16}u, o_${rf}_${df}, ${BN}u);`);
    }
    L.push(`      workgroupBarrier();`);
    for (const j of range(CPL)) L.push(`      sc[rb + ${j * LPR}u + part] *= alpha;`);
    L.push(`      workgroupBarrier();`);
    for (const rf of range(RF)) for (let df = c; df < Math.min(DF, c + NF); df++) {
      L.push(`      o_${rf}_${df} = subgroupMatrixLoad<MA, row_major>(&sc, sbase + ${rf * 16 * BN + (df - c) * 16}u, ${BN}u);`);
    }
    L.push(`      workgroupBarrier();`);
  }
  L.push(`      if (tid == 0u) { atomicStore(&rescale_flag, 0u); }
    }`);
  // P·V
  for (const nf of range(NF)) {
    L.push(`    {`);
    for (const rf of range(RF)) {
      L.push(`      let ph${rf} = subgroupMatrixLoad<ML, row_major>(&pp, pbase + ${rf * 16 * BN + nf * 16}u, ${BN}u);`);
      L.push(`      let pl${rf} = subgroupMatrixLoad<ML, row_major>(&pp, pbase + ${R * BN + rf * 16 * BN + nf * 16}u, ${BN}u);`);
    }
    for (const df of range(DF)) {
      L.push(`      { let vh = subgroupMatrixLoad<MR, row_major>(&vs, kvbase + (n0 + ${nf * 16}u) * ${D}u + ${df * 16}u, ${D}u);`);
      L.push(`        let vl = subgroupMatrixLoad<MR, row_major>(&vs, kvbase + (n0 + ${nf * 16}u) * ${D}u + ${df * 16}u + P.nkv, ${D}u);`);
      for (const rf of range(RF)) L.push(...products("        ", `o_${rf}_${df}`, `ph${rf}`, `pl${rf}`, "vh", "vl", prod));
      L.push(`      }`);
    }
    L.push(`    }`);
  }
  L.push(`  }`);
  // epilogue
  if (LPR === 2) L.push(`  l += subgroupShuffleXor(l, 1u);`);
  L.push(`  let inv = 1.0f / l;
  let orow = (bh * P.q_len + q0 + row) * ${D}u;`);
  for (let c = 0; c < DF; c += NF) {
    L.push(`  workgroupBarrier();`);
    for (const rf of range(RF)) for (let df = c; df < Math.min(DF, c + NF); df++) {
      L.push(`  subgroupMatrixStore<row_major>(&sc, sbase + ${rf * 16 * BN + (df - c) * 16}u, o_${rf}_${df}, ${BN}u);`);
    }
    L.push(`  workgroupBarrier();`);
    L.push(`  if (q0 + row < P.q_len) {`);
    for (const j of range(CPL)) {
      const col = `${c * 16}u + ${j * LPR}u + part`;
      L.push(`    if (${c * 16 + j * LPR} < ${D}) { out[orow + ${col}] = sc[rb0 + ${j * LPR}u + part] * inv; }`);
    }
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join("\n").replace(/rb0/g, `(sbase + row * ${BN}u)`);
}

export function gemmShader(o) {
  // C[M×N] = A[M×K]·B[K×N], f16 in, f32 out; each subgroup owns (16·FM)×(16·FN), workgroup 4 subgroups in 2×2.
  const { FM, FN } = o;
  const L = [`${matrixPrelude(true)}
struct G { m: u32, n: u32, k: u32, _p: u32 }
@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> b: array<f16>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> g: G;
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg: u32) {
  let m0 = wg.y * ${32 * FM}u + (sg / 2u) * ${16 * FM}u;
  let n0 = wg.x * ${32 * FN}u + (sg % 2u) * ${16 * FN}u;`];
  for (const i of range(FM)) for (const j of range(FN)) L.push(`  var c_${i}_${j} = MA();`);
  L.push(`  for (var k0 = 0u; k0 < g.k; k0 += 16u) {`);
  for (const i of range(FM)) L.push(`    let a${i} = subgroupMatrixLoad<ML, row_major>(&a, (m0 + ${i * 16}u) * g.k + k0, g.k);`);
  for (const j of range(FN)) L.push(`    let b${j} = subgroupMatrixLoad<MR, row_major>(&b, k0 * g.n + n0 + ${j * 16}u, g.n);`);
  for (const i of range(FM)) for (const j of range(FN)) L.push(`    c_${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c_${i}_${j});`);
  L.push(`  }`);
  for (const i of range(FM)) for (const j of range(FN)) L.push(`  subgroupMatrixStore<row_major>(&c, (m0 + ${i * 16}u) * g.n + n0 + ${j * 16}u, c_${i}_${j}, g.n);`);
  L.push(`}`);
  return L.join("\n");
}

// Staged variant: K/V tiles (f32 in global) are split into f16 hi/lo while being staged into
// workgroup memory; Q is split the same way once and kept in registers. No prepass.
// o: { D, BN, RF, NSG, pad, tau, products }
export function attnStagedShader(o) {
  const { D, BN, RF, NSG } = o;
  const pad = o.pad ?? 8;
  const R = 16 * RF, BM = R * NSG, T = 32 * NSG, DF = D / 16, NF = BN / 16, D4 = D / 4;
  const KS = D + pad; // row stride (halves) of staged K/V/Q rows
  const LPR = 32 / R, CPL = BN / LPR;
  const SS = BN + (o.scPad ?? 0); // row stride of the S (f32) tile
  // P (f16) tiles: hi and lo one below the other (row stride BN + ppPad) or side by side (`ppSide`, stride 2·BN)
  const PS = (o.ppSide ? 2 * BN : BN) + (o.ppPad ?? 0), PLO = o.ppSide ? BN : R * PS, PSG = o.ppSide ? R * PS : 2 * R * PS;
  const allStorage = o.qFrom === "storage" && o.kvFrom === "storage"; // nothing staged: sm unused, fewer barriers
  const prod = o.products ?? 3;
  const KV = BN * KS; // halves per V hi (or lo) tile
  const KT = BN + (o.padT ?? 8); // row stride of the transposed K tile
  const KSZ = o.ktrans ? D * KT : KV; // halves per K hi (or lo) tile
  const UNION = 2 * KSZ + 2 * KV; // K hi, K lo, V hi, V lo
  const QROWS = Math.floor(UNION / (2 * KS) / R) * R; // Q rows staged per pass (hi + lo)
  if (QROWS < R) throw new Error("union too small for one subgroup's Q rows");
  const passes = Math.ceil(BM / QROWS);
  const SGPP = QROWS / R; // subgroups per pass
  const L = [];
  L.push(`${matrixPrelude(true)}
struct Params { q_len: u32, kv_len: u32, nq: u32, nkv: u32, scale_log2: f32, zero: u32, _q1: f32, _q2: f32 }
@group(0) @binding(0) var<storage, read> q: array<${o.qFrom === "storage" ? "f16" : "vec4<f32>"}>;
@group(0) @binding(1) var<storage, read> k: array<${o.kvFrom === "storage" ? "f16" : "vec4<f32>"}>;
@group(0) @binding(2) var<storage, read> v: array<${o.kvFrom === "storage" ? "f16" : "vec4<f32>"}>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;
var<workgroup> sm: array<f16, ${allStorage ? 8 : UNION}>;
var<workgroup> sc: array<f32, ${NSG * R * SS}>;
var<workgroup> pp: array<f16, ${NSG * PSG}>;
var<workgroup> rescale_flag: atomic<u32>;
var<workgroup> wg_dep: u32;  // always 0 at run time; loads after a barrier add it to their offsets
// Split x into f16 hi + lo with x - hi exact: hi keeps the top 11 significant bits.
fn split_store(i: u32, x: vec4<f32>, lo_off: u32) {
  let hb = bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) & vec4<u32>(0xffffe000u));
  let lb = x - hb;
  sm[i] = f16(hb.x); sm[i + 1u] = f16(hb.y); sm[i + 2u] = f16(hb.z); sm[i + 3u] = f16(hb.w);
  sm[i + lo_off] = f16(lb.x); sm[i + lo_off + 1u] = f16(lb.y); sm[i + lo_off + 2u] = f16(lb.z); sm[i + lo_off + 3u] = f16(lb.w);
}
fn split_store_t(i: u32, x: vec4<f32>, lo_off: u32, st: u32) {
  let hb = bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) & vec4<u32>(0xffffe000u));
  let lb = x - hb;
  sm[i] = f16(hb.x); sm[i + st] = f16(hb.y); sm[i + 2u * st] = f16(hb.z); sm[i + 3u * st] = f16(hb.w);
  sm[i + lo_off] = f16(lb.x); sm[i + lo_off + st] = f16(lb.y); sm[i + lo_off + 2u * st] = f16(lb.z); sm[i + lo_off + 3u * st] = f16(lb.w);
}
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(local_invocation_index) tid: u32) {
  let bh = wg.y;
  let qt0 = wg.x * ${BM}u;
  let q0 = qt0 + sg * ${R}u;
  let base4 = bh * P.q_len * ${D4}u; // q, k, v contiguous [bh][L][D], same lengths in the probe
  let kvb4 = bh * P.kv_len * ${D4}u;
  let sbase = sg * ${R * SS}u;
  let pbase = sg * ${PSG}u;
  let row = lane / ${LPR}u;
  let part = lane % ${LPR}u;
  var m_ref = -3.0e38f;
  var l = 0.0f;
  var first = true;
  if (tid == 0u) { wg_dep = P.zero; }`);
  // Q fragments (registers), staged in passes through sm
  if (o.qCols && o.qFrom !== "storage") {
    // Q staged by column chunks, every row at once: each subgroup loads its fragments unconditionally.
    let CW = D;
    while (CW > 16 && 2 * BM * (CW + pad) > UNION) CW -= 16;
    if (2 * BM * (CW + pad) > UNION || D % CW !== 0) throw new Error("no column chunk fits");
    const QS = CW + pad;
    for (let c0 = 0; c0 < D; c0 += CW) {
      L.push(`  for (var i = tid; i < ${BM * (CW / 4)}u; i += ${T}u) {
    let r = i / ${CW / 4}u; let d4 = i % ${CW / 4}u;
    let x = q[base4 + (qt0 + r) * ${D4}u + ${c0 / 4}u + d4] * P.scale_log2;
    split_store(r * ${QS}u + d4 * 4u, x, ${BM * QS}u);
  }
  let dq${c0} = workgroupUniformLoad(&wg_dep);`);
      for (const rf of range(RF)) for (let kd = c0 / 16; kd < (c0 + CW) / 16; kd++) {
        const off = `sg * ${R * QS}u + ${rf * 16 * QS + (kd - c0 / 16) * 16}u + dq${c0}`;
        L.push(`  let qh_${rf}_${kd} = subgroupMatrixLoad<ML, row_major>(&sm, ${off}, ${QS}u);`);
        L.push(`  let ql_${rf}_${kd} = subgroupMatrixLoad<ML, row_major>(&sm, ${off} + ${BM * QS}u, ${QS}u);`);
      }
      L.push(`  workgroupBarrier();`);
    }
  } else if (o.qFrom === "storage") {
    for (const rf of range(RF)) for (const kd of range(DF)) {
      const off = `(bh * P.q_len + q0 + ${rf * 16}u) * ${D}u + ${kd * 16}u`;
      L.push(`  let qh_${rf}_${kd} = subgroupMatrixLoad<ML, row_major>(&q, ${off}, ${D}u);`);
      L.push(`  let ql_${rf}_${kd} = subgroupMatrixLoad<ML, row_major>(&q, ${off} + P.nq, ${D}u);`);
    }
  } else if (!(o.qLet && passes === 1) && !o.qCols) for (const rf of range(RF)) for (const kd of range(DF)) L.push(`  var qh_${rf}_${kd}: ML;\n  var ql_${rf}_${kd}: ML;`);
  for (let p = 0; p < (o.qFrom === "storage" || o.qCols ? 0 : passes); p++) {
    const rows = Math.min(QROWS, BM - p * QROWS);
    const n = rows * D4;
    L.push(`  for (var i = tid; i < ${n}u; i += ${T}u) {
    let r = i / ${D4}u; let d4 = i % ${D4}u;
    let x = q[base4 + (qt0 + ${p * QROWS}u + r) * ${D4}u + d4] * P.scale_log2;
    split_store(r * ${KS}u + d4 * 4u, x, ${QROWS * KS}u);
  }
  ${o.dep ? `let dq${p} = workgroupUniformLoad(&wg_dep);` : "workgroupBarrier();"}
  ${o.qLet && passes === 1 ? "{" : `if (sg / ${SGPP}u == ${p}u) {`}
    let qb = (sg % ${SGPP}u) * ${R * KS}u;`);
    const decl = o.qLet && passes === 1 ? "let " : "";
    if (decl) L.push("  }");
    for (const rf of range(RF)) for (const kd of range(DF)) {
      L.push(`    ${decl}qh_${rf}_${kd} = subgroupMatrixLoad<ML, row_major>(&sm, ${decl ? `sg * ${R * KS}u` : "qb"} + ${rf * 16 * KS + kd * 16}u${o.dep ? ` + dq${p}` : ""}, ${KS}u);`);
      L.push(`    ${decl}ql_${rf}_${kd} = subgroupMatrixLoad<ML, row_major>(&sm, ${decl ? `sg * ${R * KS}u` : "qb"} + ${QROWS * KS + rf * 16 * KS + kd * 16}u${o.dep ? ` + dq${p}` : ""}, ${KS}u);`);
    }
    L.push(`${decl ? "" : "  }\n"}  workgroupBarrier();`);
  }
  for (const rf of range(RF)) for (const df of range(DF)) L.push(`  var o_${rf}_${df} = MA();`);
  const KH = 0, KL = KSZ, VH = 2 * KSZ, VL = 2 * KSZ + KV;
  L.push(`  for (var n0 = 0u; n0 < P.kv_len; n0 += ${BN}u) {
    for (var i = tid; i < ${o.kvFrom === "storage" ? 0 : BN * D4}u; i += ${T}u) {
      let r = i / ${D4}u; let d4 = i % ${D4}u;
      ${o.kvFrom === "storage" ? "" : o.ktrans ? `split_store_t(${KH}u + d4 * ${4 * KT}u + r, k[kvb4 + (n0 + r) * ${D4}u + d4], ${KL - KH}u, ${KT}u);` : `split_store(${KH}u + r * ${KS}u + d4 * 4u, k[kvb4 + (n0 + r) * ${D4}u + d4], ${KL - KH}u);`}
      ${o.kvFrom === "storage" ? "" : `split_store(${VH}u + r * ${KS}u + d4 * 4u, v[kvb4 + (n0 + r) * ${D4}u + d4], ${VL - VH}u);`}
    }
    ${allStorage ? (o.dep ? "let dk = 0u;" : "") : o.dep ? "let dk = workgroupUniformLoad(&wg_dep);" : "workgroupBarrier();"}`);
  for (const rf of range(RF)) for (const nf of range(NF)) L.push(`    var s_${rf}_${nf} = MA();`);
  for (const kd of range(DF)) {
    L.push(`    {`);
    for (const nf of range(NF)) {
      const ko = (base) => o.kvFrom === "storage" ? `col_major>(&k, kvb4 * 4u + (n0 + ${nf * 16}u) * ${D}u + ${kd * 16}u${base === KL ? " + P.nkv" : ""}, ${D}u)` : o.ktrans ? `row_major>(&sm, ${base + kd * 16 * KT + nf * 16}u${o.dep ? " + dk" : ""}, ${KT}u)` : `col_major>(&sm, ${base + nf * 16 * KS + kd * 16}u${o.dep ? " + dk" : ""}, ${KS}u)`;
      L.push(`      let kh${nf} = subgroupMatrixLoad<MR, ${ko(KH)};`);
      if (prod >= 2) L.push(`      let kl${nf} = subgroupMatrixLoad<MR, ${ko(KL)};`);
    }
    for (const nf of range(NF)) for (const rf of range(RF)) L.push(...products("      ", `s_${rf}_${nf}`, `qh_${rf}_${kd}`, `ql_${rf}_${kd}`, `kh${nf}`, `kl${nf}`, prod));
    L.push(`    }`);
  }
  for (const rf of range(RF)) for (const nf of range(NF)) L.push(`    subgroupMatrixStore<row_major>(&sc, sbase + ${rf * 16 * SS + nf * 16}u, s_${rf}_${nf}, ${SS}u);`);
  L.push(...rowMaxLines(SS, CPL, LPR, o.tau));
  const pb = `pbase + row * ${PS}u`;
  for (const j of range(CPL)) {
    L.push(`    { let p = exp2(x${j} - m_ref); ls += p; let pb = bitcast<f32>(bitcast<u32>(p) & 0xffffe000u); pp[${pb} + ${j * LPR}u + part] = f16(pb); pp[${pb} + ${PLO + j * LPR}u + part] = f16(p - pb); }`);
  }
  L.push(`    l = l * alpha + ls;
    first = false;
    let rflag = workgroupUniformLoad(&rescale_flag);
    ${o.dep ? "let dp = min(rflag, dk);" : ""}
    if (rflag != 0u) {`);
  for (let c = 0; c < DF; c += NF) {
    for (const rf of range(RF)) for (let df = c; df < Math.min(DF, c + NF); df++) L.push(`      subgroupMatrixStore<row_major>(&sc, sbase + ${rf * 16 * SS + (df - c) * 16}u, o_${rf}_${df}, ${SS}u);`);
    L.push(`      workgroupBarrier();`);
    for (const j of range(CPL)) L.push(`      sc[rb + ${j * LPR}u + part] *= alpha;`);
    L.push(o.dep ? `      let dr${c} = workgroupUniformLoad(&wg_dep);` : `      workgroupBarrier();`);
    for (const rf of range(RF)) for (let df = c; df < Math.min(DF, c + NF); df++) L.push(`      o_${rf}_${df} = subgroupMatrixLoad<MA, row_major>(&sc, sbase + ${rf * 16 * SS + (df - c) * 16}u${o.dep ? ` + dr${c}` : ""}, ${SS}u);`);
    L.push(`      workgroupBarrier();`);
  }
  L.push(`      if (tid == 0u) { atomicStore(&rescale_flag, 0u); }
    }`);
  for (const nf of range(NF)) {
    L.push(`    {`);
    for (const rf of range(RF)) {
      L.push(`      let ph${rf} = subgroupMatrixLoad<ML, row_major>(&pp, pbase + ${rf * 16 * PS + nf * 16}u${o.dep ? " + dp" : ""}, ${PS}u);`);
      if (prod >= 3) L.push(`      let pl${rf} = subgroupMatrixLoad<ML, row_major>(&pp, pbase + ${PLO + rf * 16 * PS + nf * 16}u${o.dep ? " + dp" : ""}, ${PS}u);`);
    }
    for (const df of range(DF)) {
      const vo = (base) => o.kvFrom === "storage" ? `(&v, kvb4 * 4u + (n0 + ${nf * 16}u) * ${D}u + ${df * 16}u${base === VL ? " + P.nkv" : ""}, ${D}u)` : `(&sm, ${base + nf * 16 * KS + df * 16}u${o.dep ? " + dp" : ""}, ${KS}u)`;
      L.push(`      { let vh = subgroupMatrixLoad<MR, row_major>${vo(VH)};`);
      if (prod >= 2) L.push(`        let vl = subgroupMatrixLoad<MR, row_major>${vo(VL)};`);
      for (const rf of range(RF)) L.push(...products("        ", `o_${rf}_${df}`, `ph${rf}`, `pl${rf}`, "vh", "vl", prod));
      L.push(`      }`);
    }
    L.push(`    }`);
  }
  L.push(allStorage ? "  }" : `    workgroupBarrier();\n  }`); // the barriers on S and on the rescale flag already order sc and pp across tiles
  if (LPR === 2) L.push(`  l += subgroupShuffleXor(l, 1u);`);
  L.push(`  let inv = 1.0f / l;
  let orow = (bh * P.q_len + q0 + row) * ${D}u;
  let rb = sbase + row * ${SS}u;`);
  for (let c = 0; c < DF; c += NF) {
    L.push(`  workgroupBarrier();`);
    for (const rf of range(RF)) for (let df = c; df < Math.min(DF, c + NF); df++) L.push(`  subgroupMatrixStore<row_major>(&sc, sbase + ${rf * 16 * SS + (df - c) * 16}u, o_${rf}_${df}, ${SS}u);`);
    L.push(`  workgroupBarrier();`);
    for (const j of range(CPL)) {
      const col = c * 16 + j * LPR;
      if (col < D) L.push(`  out[orow + ${col}u + part] = sc[rb + ${j * LPR}u + part] * inv;`);
    }
  }
  L.push(`}`);
  return L.join("\n");
}

export function stagedSharedBytes(o) {
  const pad = o.pad ?? 8; const R = 16 * o.RF;
  const ksz = o.ktrans ? o.D * (o.BN + (o.padT ?? 8)) : o.BN * (o.D + pad);
  const pp = o.NSG * R * ((o.ppSide ? 2 * o.BN : 2 * o.BN + 2 * (o.ppPad ?? 0)) + (o.ppSide ? o.ppPad ?? 0 : 0));
  const sm = o.qFrom === "storage" && o.kvFrom === "storage" ? 8 : 2 * ksz + 2 * o.BN * (o.D + pad);
  return sm * 2 + o.NSG * R * (o.BN + (o.scPad ?? 0)) * 4 + pp * 2 + 4;
}

// Diagnostic: stage known f16 values into workgroup memory, load them as left / right matrices
// with each majorness (from workgroup and from storage) and store them back, so the host can
// compare element by element. out16 layout: 6 matrices of 16×16, row-major.
export function diagShader(KS) {
  return `${matrixPrelude(true)}
@group(0) @binding(0) var<storage, read> src: array<f16>;
@group(0) @binding(1) var<storage, read_write> o16: array<f16>;
@group(0) @binding(2) var<storage, read_write> o32: array<f32>;
var<workgroup> sm: array<f16, ${32 * KS}>;
@compute @workgroup_size(128)
fn main(@builtin(local_invocation_index) tid: u32, @builtin(subgroup_id) sg: u32) {
  for (var i = tid; i < ${32 * KS}u; i += 128u) { sm[i] = src[i]; }
  workgroupBarrier();
  if (sg == 0u) {
    let a = subgroupMatrixLoad<ML, row_major>(&sm, ${KS}u + 16u, ${KS}u);
    let b = subgroupMatrixLoad<MR, col_major>(&sm, ${KS}u + 16u, ${KS}u);
    let c = subgroupMatrixLoad<MR, row_major>(&sm, ${KS}u + 16u, ${KS}u);
    let d = subgroupMatrixLoad<ML, row_major>(&src, ${KS}u + 16u, ${KS}u);
    let e = subgroupMatrixLoad<MR, col_major>(&src, ${KS}u + 16u, ${KS}u);
    let f = subgroupMatrixLoad<MR, row_major>(&src, ${KS}u + 16u, ${KS}u);
    subgroupMatrixStore<row_major>(&o16, 0u, a, 16u);
    subgroupMatrixStore<row_major>(&o16, 256u, b, 16u);
    subgroupMatrixStore<row_major>(&o16, 512u, c, 16u);
    subgroupMatrixStore<row_major>(&o16, 768u, d, 16u);
    subgroupMatrixStore<row_major>(&o16, 1024u, e, 16u);
    subgroupMatrixStore<row_major>(&o16, 1280u, f, 16u);
    subgroupMatrixStore<row_major>(&o32, 0u, subgroupMatrixMultiply<f32>(a, b), 16u);
    subgroupMatrixStore<row_major>(&o32, 256u, subgroupMatrixMultiply<f32>(a, c), 16u);
  }
}`;
}

// Diagnostic 2: stage a 32×64 f32 tile into workgroup f16 hi/lo (like the staged kernel), then read it
// back with plain loads and with subgroup-matrix loads. mode 0: split_store function; 1: inline; 2: plain f16(x).
export function diag2Shader(mode, extras) {
  const KS = 72;
  const body = mode === 0 ? "split_store(r * 72u + d4 * 4u, x, 2304u);"
    : mode === 1 ? `let hb = bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) & vec4<u32>(0xffffe000u)); let lb = x - hb; let b0 = r * 72u + d4 * 4u;
      sm[b0] = f16(hb.x); sm[b0 + 1u] = f16(hb.y); sm[b0 + 2u] = f16(hb.z); sm[b0 + 3u] = f16(hb.w);
      sm[b0 + 2304u] = f16(lb.x); sm[b0 + 2305u] = f16(lb.y); sm[b0 + 2306u] = f16(lb.z); sm[b0 + 2307u] = f16(lb.w);`
    : `let b0 = r * 72u + d4 * 4u; sm[b0] = f16(x.x); sm[b0 + 1u] = f16(x.y); sm[b0 + 2u] = f16(x.z); sm[b0 + 3u] = f16(x.w);`;
  return `${matrixPrelude(false)}
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> o16: array<f16>;
var<workgroup> sm: array<f16, ${2 * 32 * KS}>;
${extras ? "var<workgroup> sc: array<f32, 1024>;\nvar<workgroup> pp: array<f16, 2048>;" : ""}
fn split_store(i: u32, x: vec4<f32>, lo_off: u32) {
  let hb = bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) & vec4<u32>(0xffffe000u));
  let lb = x - hb;
  sm[i] = f16(hb.x); sm[i + 1u] = f16(hb.y); sm[i + 2u] = f16(hb.z); sm[i + 3u] = f16(hb.w);
  sm[i + lo_off] = f16(lb.x); sm[i + lo_off + 1u] = f16(lb.y); sm[i + lo_off + 2u] = f16(lb.z); sm[i + lo_off + 3u] = f16(lb.w);
}
@compute @workgroup_size(128)
fn main(@builtin(local_invocation_index) tid: u32, @builtin(subgroup_id) sg: u32) {
  for (var i = tid; i < 512u; i += 128u) {
    let r = i / 16u; let d4 = i % 16u;
    let x = src[r * 16u + d4];
    ${body}
  }
  ${extras ? "sc[tid] = 1.0f; pp[tid] = 1.0h;" : ""}
  workgroupBarrier();
  for (var j = tid; j < ${2 * 32 * KS}u; j += 128u) { o16[j] = sm[j]; }
  if (sg == 0u) {
    let b = subgroupMatrixLoad<MR, col_major>(&sm, ${16 * KS + 16}u, ${KS}u);
    let a = subgroupMatrixLoad<ML, row_major>(&sm, ${16 * KS + 16}u, ${KS}u);
    let c = subgroupMatrixLoad<ML, row_major>(&sm, ${2304 + 16 * KS + 16}u, ${KS}u);
    subgroupMatrixStore<row_major>(&o16, 5000u, b, 16u);
    subgroupMatrixStore<row_major>(&o16, 5256u, a, 16u);
    subgroupMatrixStore<row_major>(&o16, 5512u, c, 16u);
  }
}`;
}
