// Ordering probe: do subgroup-matrix loads and stores on workgroup memory respect workgroupBarrier()
// inside a loop, with Dawn's robustness on and off? Small kernels whose correct result is an exact
// integer sum, so any access that sees another iteration's data shows as a mismatch.
//
//   phase "load":  all invocations stage tile t (scalar f16 stores) → barrier → every subgroup loads it
//                  as a left matrix and accumulates A·I (like K/V in the attention kernel)
//   phase "pp":    each subgroup writes tile t into its own region (scalar stores) → barrier → loads it
//                  (like P)
//   phase "store": each subgroup stores tile t (from storage, through a product with I) as a result
//                  matrix into its region → barrier → its lanes read it back as scalars (like S)
//
// Access forms ("dep"): none (barrier, then the access at its plain offset); data (the offset adds a
// value read by workgroupUniformLoad after the barrier, as the library does); ctrl (the access in
// `if (that value == 0)`); tint (ctrl with the condition Tint's robustness writes: the tile's end
// within the array, computed from the dependent offset).
//
//   node order-probe.mjs [--null]      (EXTRA_TOGGLES as in probe.mjs; ROBUSTNESS=both|on|off, default both)
import { create, globals } from "webgpu";
import { matrixPrelude } from "./attn-mma.mjs";
Object.assign(globalThis, globals);
const log = (...a) => console.log(...a);
const backend = process.argv.includes("--null") ? "null" : "vulkan";
const TOGGLES = "allow_unsafe_apis,vulkan_enable_f16_on_nvidia,use_vulkan_memory_model";

const TILES = 64, GROUPS = 4096, T = 128, NSG = T / 32;
/** kv's output (nine accumulators per subgroup) fits the default 128 MiB binding with half the workgroups. */
const groupsOf = (phase) => (phase === "kv" ? GROUPS / 2 : phase.startsWith("attn") ? GROUPS / 4 : GROUPS);
/** attn: 8 subgroups (the library's 128 rows × 16 keys at d=128); per subgroup 8 O fragments and 32 lanes × 8 S sums. */
const ATTN_T = 256, ATTN_OUT = 8 * 256 + 256;
/** attn's exp variants exponentiate S·ATTN_SCALE (exact in f32): with 0.5, 41 of the 64 tiles raise some row's max by more than 8, so +rescale takes its rescale path there. */
const ATTN_SCALE = 0.5;
/** "attn+exp+rescale+2loops-pv" → which pieces the attn kernel keeps. */
function attnOptions(phase) {
  const has = (t) => phase.split(/(?=[+-])/).includes(t);
  const opt = {
    exp: ["+exp", "+rescale", "+flag", "+trip", "+div", "+divplain", "+atomic", "+divpriv"].some(has), rescale: has("+rescale"), flag: has("+flag"), trip: has("+trip"),
    twoLoops: has("+2loops"), s: !has("-s"), pv: !has("-pv"), noBranch: has("+nobranch"), div: has("+div"),
    divPlain: has("+divplain"), atomic: has("+atomic"), divPrivate: has("+divpriv"), atomicFirst: has("+atomicfirst"),
    noDep: has("+nodep"),
  };
  opt.lazy = opt.rescale || opt.flag; // the running reference max and the workgroup flag
  const known = new Set(["attn", "+exp", "+rescale", "+flag", "+trip", "+2loops", "+nobranch", "+div", "+divplain", "+atomic", "+divpriv", "+atomicfirst", "+nodep", "-s", "-pv"]);
  for (const t of phase.split(/(?=[+-])/)) if (!known.has(t)) throw new Error(`unknown attn option ${t} in ${phase}`);
  return opt;
}

function header() {
  return `${matrixPrelude(true)}
struct Params { zero: u32, tiles: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<f16>;
@group(0) @binding(2) var<storage, read> ident: array<f16>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
var<workgroup> wg_dep: u32;`;
}

/** One access `call(offsetExpr)` in the given dependency form, after a barrier. `len` = array length in elements. */
function guarded(dep, decl, call, base, stride, len) {
  const end = (off) => `${off} + ${15 * stride + 16}u <= ${len}u`;
  switch (dep) {
    case "none": return `workgroupBarrier();\n    ${decl(call(base))}`;
    case "data": return `let d = workgroupUniformLoad(&wg_dep);\n    ${decl(call(`${base} + d`))}`;
    case "ctrl": return `let d = workgroupUniformLoad(&wg_dep);\n    ${decl(null)}\n    if (d == 0u) { ${decl(call(base), true)} }`;
    case "tint": return `let d = workgroupUniformLoad(&wg_dep);\n    ${decl(null)}\n    if (${end(`${base} + d`)}) { ${decl(call(`${base} + d`), true)} }`;
  }
  throw new Error(dep);
}

/**
 * The library kernel's K/V staging at d=128 with 16 keys: sm holds K hi, K lo, V hi, V lo (stride
 * 136). `split` is codegen-wgsl's fa_split, written out here on purpose: the probe runs on the
 * device without the workspace packages and has to reproduce the kernel's code exactly.
 */
const KV_STAGING = `var<workgroup> sm: array<f16, 8704>;
fn split(i: i32, x: vec4<f32>, lo: i32) {
  let h = bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) & vec4<u32>(0xffffe000u));
  let l = x - h;
  sm[i] = f16(h.x); sm[i + 1] = f16(h.y); sm[i + 2] = f16(h.z); sm[i + 3] = f16(h.w);
  sm[i + lo] = f16(l.x); sm[i + lo + 1] = f16(l.y); sm[i + lo + 2] = f16(l.z); sm[i + lo + 3] = f16(l.w);
}`;
/** Tile `tile` of kv (K rows then V rows, 512 vec4 each) split into sm by `threads` invocations. */
const stageKV = (threads) => `for (var j = 0; j < ${512 / threads}; j++) {
      let i = i32(lid) + j * ${threads};
      let r = i / 32;
      let d4 = i - r * 32;
      split(r * 136 + d4 * 4, kv[(tile * 2u) * 512u + u32(i)], 2176);
      split(4352 + r * 136 + d4 * 4, kv[(tile * 2u + 1u) * 512u + u32(i)], 2176);
    }`;

function shader(phase, dep, S) {
  const L = [header()];
  if (phase === "load" || phase === "pp") {
    const region = phase === "pp" ? 16 * S : 0;
    const len = phase === "pp" ? NSG * 16 * S : 16 * S;
    const base = phase === "pp" ? `sg * ${region}u` : "0u";
    const decl = (call, assign) => (call === null ? "var a: ML;" : assign ? `a = ${call};` : `let a = ${call};`);
    L.push(`var<workgroup> sm: array<f16, ${len}>;
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  if (lid == 0u) { wg_dep = P.zero; }
  let eye = subgroupMatrixLoad<MR, row_major>(&ident, 0u, 16u);
  var acc = MA();
  for (var t = 0u; t < P.tiles; t++) {
    let tile = (t + wg.x) % P.tiles;
    ${phase === "pp"
      ? `for (var k = 0u; k < 8u; k++) { let i = lane * 8u + k; sm[sg * ${region}u + (i / 16u) * ${S}u + i % 16u] = src[tile * 256u + i]; }`
      : `for (var i = lid; i < 256u; i += ${T}u) { sm[(i / 16u) * ${S}u + i % 16u] = src[tile * 256u + i]; }`}
    ${guarded(dep, decl, (off) => `subgroupMatrixLoad<ML, row_major>(&sm, ${off}, ${S}u)`, base, S, len)}
    acc = subgroupMatrixMultiplyAccumulate(a, eye, acc);
    workgroupBarrier();
  }
  subgroupMatrixStore<row_major>(&out, (wg.x * ${NSG}u + sg) * 256u, acc, 16u);
}`);
  } else if (phase.startsWith("attn")) {
    // The library kernel's loop at d=128 with 16 keys and 8 subgroups of 16 rows, its layouts and
    // barriers, with the softmax taken out so that the result is exact: Q staged in 16-column chunks
    // and held (8 hi/lo pairs), K/V split into hi/lo, S = Q·Kᵀ in three products → sc → each lane
    // sums its two columns' S over the tiles; P written as 1 (hi) and 0 (lo) → O += P·V.
    // Options (attnOptions): +exp, +rescale, +2loops put the library's softmax pieces back (+flag
    // and +trip each half of +rescale); -s / -pv take S or P·V out; +nobranch makes the lazy
    // rescale's update branch-free; +div adds a divergent `if` (row-dependent) inside the loop that
    // stores to a workgroup atomic, +divplain one that stores to a plain workgroup u32, +divpriv one
    // that counts in a private variable; +atomic adds an unconditional atomicAdd; +atomicfirst
    // declares the workgroup flags before the matrix arrays instead of after; +nodep drops the
    // post-barrier value from every matrix offset (constant offsets where the base is constant).
    const opt = attnOptions(phase);
    const unroll = (n, f) => Array.from({ length: n }, (_, i) => f(i)).join("\n    ");
    const pWrites = opt.exp
      ? `var mx = -3.0e38f;
    for (var j = 0u; j < 8u; j++) { mx = max(mx, x[j]); }
    mx = max(mx, subgroupShuffleXor(mx, 1u));
    var al = 1.0f;
    ${opt.lazy && opt.noBranch
      ? `let up = mx > m + 8.0f;
    al = select(1.0f, exp2(m - mx), up);
    m = select(m, mx, up);
    atomicOr(&rescale_flag, select(0u, 1u, up && t > 0u));
    let mu = m;`
      : opt.lazy
      ? `if (mx > m + 8.0f) { al = exp2(m - mx); m = mx; if (t > 0u) { atomicStore(&rescale_flag, 1u); } }
    let mu = m;`
      : "let mu = mx;"}
    ${opt.div ? "if (mx > 12.0f) { atomicStore(&dummy_flag, 1u); }" : ""}
    ${opt.divPlain ? "if (mx > 12.0f) { dummy_plain = 1u; }" : ""}
    ${opt.atomic ? "atomicAdd(&dummy_flag, 1u);" : ""}
    ${opt.divPrivate ? "if (mx > 12.0f) { count += 1u; }" : ""}
    for (var j = 0u; j < 8u; j++) {
      let p = exp2(x[j] - mu);
      let h = bitcast<f32>(bitcast<u32>(p) & 0xffffe000u);
      pp[sg * 768u + (lane / 2u) * 24u + 2u * j + c] = f16(h);
      pp[sg * 768u + 384u + (lane / 2u) * 24u + 2u * j + c] = f16(p - h);
    }`
      : `for (var j = 0u; j < 8u; j++) {
      pp[sg * 768u + (lane / 2u) * 24u + 2u * j + c] = 1.0h;
      pp[sg * 768u + 384u + (lane / 2u) * 24u + 2u * j + c] = 0.0h;
    }`;
    // The library's rescale: every O fragment goes through sc, each lane scales its row by al, and
    // the fragment is loaded back. +rescale does it when the workgroup flag is set, +trip on every
    // tile (al = 1), +flag keeps the flag and the branch but leaves the round trip out.
    const roundTrip = unroll(8, (df) => `subgroupMatrixStore<row_major>(&sc, sg * 256u, o${df}, 16u);
      workgroupBarrier();
      for (var j = 0u; j < 8u; j++) { sc[sg * 256u + row + 2u * j + c] *= al; }
      let dr${df} = workgroupUniformLoad(&wg_dep);
      o${df} = subgroupMatrixLoad<MA, row_major>(&sc, sg * 256u + dr${df}, 16u);
      workgroupBarrier();`);
    const rescale = opt.lazy
      ? `let flag = workgroupUniformLoad(&rescale_flag);
    let dp = min(flag, dk);
    if (flag != 0u) {
      ${opt.rescale ? roundTrip : ""}
      ${opt.noBranch ? "atomicAnd(&rescale_flag, select(0xffffffffu, 0u, lid == 0u));" : "if (lid == 0u) { atomicStore(&rescale_flag, 0u); }"}
    }`
      : opt.trip ? `${roundTrip}\n    let dp = workgroupUniformLoad(&wg_dep);` : "let dp = workgroupUniformLoad(&wg_dep);";
    const body = (t0, t1) => `for (var t = ${t0}; t < ${t1}; t++) {
    let tile = ${opt.lazy ? "t" : "(t + wg.x) % P.tiles"};
    ${stageKV(ATTN_T)}
    let dk = workgroupUniformLoad(&wg_dep);
    var s = MA();
    ${opt.s ? unroll(8, (kd) => `{ let kh = subgroupMatrixLoad<MR, col_major>(&sm, ${kd * 16}u + dk, 136u);
      let kl = subgroupMatrixLoad<MR, col_major>(&sm, ${2176 + kd * 16}u + dk, 136u);
      s = subgroupMatrixMultiplyAccumulate(qh${kd}, kh, s);
      s = subgroupMatrixMultiplyAccumulate(qh${kd}, kl, s);
      s = subgroupMatrixMultiplyAccumulate(ql${kd}, kh, s); }`) : ""}
    subgroupMatrixStore<row_major>(&sc, sg * 256u, s, 16u);
    workgroupBarrier();
    var x = array<f32, 8>();
    for (var j = 0u; j < 8u; j++) {
      x[j] = sc[sg * 256u + row + 2u * j + c];
      ssum[j] += x[j];
      x[j] *= ${ATTN_SCALE};
    }
    ${pWrites}
    ${rescale}
    let ph = subgroupMatrixLoad<ML, row_major>(&pp, sg * 768u + dp, 24u);
    let pl = subgroupMatrixLoad<ML, row_major>(&pp, sg * 768u + 384u + dp, 24u);
    ${opt.pv ? unroll(8, (df) => `{ let vh = subgroupMatrixLoad<MR, row_major>(&sm, ${4352 + df * 16}u + dp, 136u);
      let vl = subgroupMatrixLoad<MR, row_major>(&sm, ${6528 + df * 16}u + dp, 136u);
      o${df} = subgroupMatrixMultiplyAccumulate(ph, vh, o${df});
      o${df} = subgroupMatrixMultiplyAccumulate(ph, vl, o${df});
      o${df} = subgroupMatrixMultiplyAccumulate(pl, vh, o${df}); }`) : "_ = ph; _ = pl;"}
    workgroupBarrier();
  }`;
    const FLAGS = `var<workgroup> rescale_flag: atomic<u32>;
var<workgroup> dummy_flag: atomic<u32>;
var<workgroup> dummy_plain: u32;`;
    L.push(`@group(0) @binding(4) var<storage, read> kv: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> qd: array<vec4<f32>>;
${opt.atomicFirst ? FLAGS : ""}
var<workgroup> sc: array<f32, 2048>;
var<workgroup> pp: array<f16, 6144>;
${opt.atomicFirst ? "" : FLAGS}
${KV_STAGING}
@compute @workgroup_size(${ATTN_T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  if (lid == 0u) { wg_dep = P.zero; }
  _ = src[0];
  _ = ident[0];
  ${unroll(8, (c0) => `for (var j = 0; j < 2; j++) {
      let i = i32(lid) + j * ${ATTN_T};
      let r = i / 4;
      let d4 = i - r * 4;
      split(r * 24 + d4 * 4, qd[u32(r * 32 + ${c0 * 4} + d4)], 3072);
    }
    let dq${c0} = workgroupUniformLoad(&wg_dep);
    let qh${c0} = subgroupMatrixLoad<ML, row_major>(&sm, sg * 384u + dq${c0}, 24u);
    let ql${c0} = subgroupMatrixLoad<ML, row_major>(&sm, sg * 384u + 3072u + dq${c0}, 24u);
    workgroupBarrier();`)}
  ${unroll(8, (df) => `var o${df} = MA();`)}
  var ssum = array<f32, 8>();
  var m = -3.0e38f;
  var count = 0u;
  let row = (lane / 2u) * 16u;
  let c = lane % 2u;
  ${opt.twoLoops ? `${body("0u", "P.tiles / 2u")}\n  ${body("P.tiles / 2u", "P.tiles")}` : body("0u", "P.tiles")}
  let o = (wg.x * ${ATTN_T / 32}u + sg) * ${ATTN_OUT}u;
  ${unroll(8, (df) => `subgroupMatrixStore<row_major>(&out, o + ${df * 256}u, o${df}, 16u);`)}
  for (var j = 0u; j < 8u; j++) { out[o + 2048u + lane * 8u + j] = ssum[j]; }
  ${opt.divPrivate ? `out[${(GROUPS / 4) * 8 * ATTN_OUT}u + wg.x * ${ATTN_T}u + lid] = f32(count); // past the checked values` : ""}
}`);
    if (opt.noDep) L.push(L.pop().replace(/ \+ d(k|p|q\d+|r\d+)(?=, \d+u\))/g, ""));
  } else if (phase === "kv") {
    // The library kernel's K/V geometry at d=128, 16 keys: f32 rows split into f16 hi/lo by scalar
    // stores, K loaded column-major and V row-major with a row stride of 136 halves. Each subgroup
    // sums the fragments through products with a left identity: accK = Σ K fragments (hi + lo),
    // accV_df = Σ V fragments.
    L.push(`@group(0) @binding(4) var<storage, read> kv: array<vec4<f32>>;
${KV_STAGING}
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  if (lid == 0u) { wg_dep = P.zero; }
  _ = src[0];
  let eye = subgroupMatrixLoad<ML, row_major>(&ident, 0u, 16u);
  var accK = MA();
  ${Array.from({ length: 8 }, (_, df) => `var accV${df} = MA();`).join(" ")}
  for (var t = 0u; t < P.tiles; t++) {
    let tile = (t + wg.x) % P.tiles;
    ${stageKV(T)}
    let dk = workgroupUniformLoad(&wg_dep);
    for (var kd = 0u; kd < 8u; kd++) {
      let kh = subgroupMatrixLoad<MR, col_major>(&sm, kd * 16u + dk, 136u);
      let kl = subgroupMatrixLoad<MR, col_major>(&sm, 2176u + kd * 16u + dk, 136u);
      accK = subgroupMatrixMultiplyAccumulate(eye, kh, accK);
      accK = subgroupMatrixMultiplyAccumulate(eye, kl, accK);
    }
    ${Array.from({ length: 8 }, (_, df) => `{ let vh = subgroupMatrixLoad<MR, row_major>(&sm, ${4352 + df * 16}u + dk, 136u);
      let vl = subgroupMatrixLoad<MR, row_major>(&sm, ${6528 + df * 16}u + dk, 136u);
      accV${df} = subgroupMatrixMultiplyAccumulate(eye, vh, accV${df});
      accV${df} = subgroupMatrixMultiplyAccumulate(eye, vl, accV${df}); }`).join("\n    ")}
    workgroupBarrier();
  }
  let o = (wg.x * ${NSG}u + sg) * ${9 * 256}u;
  subgroupMatrixStore<row_major>(&out, o, accK, 16u);
  ${Array.from({ length: 8 }, (_, df) => `subgroupMatrixStore<row_major>(&out, o + ${(df + 1) * 256}u, accV${df}, 16u);`).join("\n  ")}
}`);
  } else if (phase.startsWith("hold")) {
    // hold-NQ-NO[-reload]: NQ pairs of left fragments (hi, lo) loaded once before the loop and kept
    // live (like Q), NO accumulators (like O); every iteration stages NQ right fragments (like K) and
    // multiplies. With "reload" the left fragments are loaded again from workgroup memory every tile.
    const [, nq, no, reload] = phase.split("-");
    const NQ = Number(nq), NO = Number(no), qLen = 2 * NQ * 256, kLen = NQ * 256;
    const qLoads = (decl) => Array.from({ length: NQ }, (_, q) => [
      `${decl}qh${q} = subgroupMatrixLoad<ML, row_major>(&qs, ${q * 256}u + dq, 16u);`,
      `${decl}ql${q} = subgroupMatrixLoad<ML, row_major>(&qs, ${(NQ + q) * 256}u + dq, 16u);`]).flat().join("\n    ");
    L.push(`var<workgroup> qs: array<f16, ${qLen}>;
var<workgroup> ks: array<f16, ${kLen}>;
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  if (lid == 0u) { wg_dep = P.zero; }
  _ = ident[0];
  for (var i = lid; i < ${qLen}u; i += ${T}u) { qs[i] = src[i % ${TILES * 256}u]; }
  let dq = workgroupUniformLoad(&wg_dep);
  ${reload ? "" : qLoads("let ")}
  ${Array.from({ length: NO }, (_, j) => `var acc${j} = MA();`).join("\n  ")}
  for (var t = 0u; t < P.tiles; t++) {
    let tile = (t + wg.x) % P.tiles;
    for (var i = lid; i < ${kLen}u; i += ${T}u) { ks[i] = src[(tile * 256u + i) % ${TILES * 256}u]; }
    let dk = workgroupUniformLoad(&wg_dep);
    ${reload ? `let dq = dk;\n    ${qLoads("let ")}` : ""}
    ${Array.from({ length: NQ }, (_, q) => `{ let kh = subgroupMatrixLoad<MR, col_major>(&ks, ${q * 256}u + dk, 16u);
      acc${q % NO} = subgroupMatrixMultiplyAccumulate(qh${q}, kh, acc${q % NO});
      acc${q % NO} = subgroupMatrixMultiplyAccumulate(ql${q}, kh, acc${q % NO}); }`).join("\n    ")}
    workgroupBarrier();
  }
  ${Array.from({ length: NO }, (_, j) => `subgroupMatrixStore<row_major>(&out, ((wg.x * ${NSG}u + sg) * ${NO}u + ${j}u) * 256u, acc${j}, 16u);`).join("\n  ")}
}`);
  } else {
    const len = NSG * 256;
    L.push(`var<workgroup> sc: array<f32, ${len}>;
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  if (lid == 0u) { wg_dep = P.zero; }
  let eye = subgroupMatrixLoad<MR, row_major>(&ident, 0u, 16u);
  var sum = array<f32, 8>();
  for (var t = 0u; t < P.tiles; t++) {
    let tile = (t + wg.x) % P.tiles;
    let a = subgroupMatrixLoad<ML, row_major>(&src, tile * 256u, 16u);
    let c = subgroupMatrixMultiply<f32>(a, eye);
    ${guarded(dep, (call, assign) => (call === null ? "" : `${call};`), (off) => `subgroupMatrixStore<row_major>(&sc, ${off}, c, 16u)`, "sg * 256u", 16, len)}
    workgroupBarrier();
    for (var k = 0u; k < 8u; k++) { sum[k] += sc[sg * 256u + lane * 8u + k]; }
    workgroupBarrier();
  }
  for (var k = 0u; k < 8u; k++) { out[(wg.x * ${T}u + lid) * 8u + k] = sum[k]; }
}`);
  }
  return L.join("\n");
}

// Exact expected values: tiles of small integers, every workgroup sums all of them.
let seed = 7;
const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
const tiles = Float32Array.from({ length: TILES * 256 }, () => (rnd() % 9) - 4);
const total = new Float32Array(256);
for (let t = 0; t < TILES; t++) for (let i = 0; i < 256; i++) total[i] += tiles[t * 256 + i];
const half = (x) => { if (x === 0) return 0; const s = x < 0 ? 0x8000 : 0; const a = Math.abs(x); const e = Math.floor(Math.log2(a)); return s | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024); };

const PHASES = (process.env.PHASES ?? "load,pp,store,hold-1-1,hold-8-8,hold-8-8-reload,hold-8-1,kv,attn").split(",");

/**
 * Expected accumulators of a hold phase (every workgroup the same): acc_j = Σ_t Σ_{q ≡ j mod NO} (Qh_q + Ql_q)·K_{t,q},
 * Q and K read from the tiles as the shader does (Q row-major, K fragments column-major).
 */
const holdCache = new Map();
function holdExpected(phase) {
  const [, nq, no] = phase.split("-");
  const NQ = Number(nq), NO = Number(no), perGroup = NO * 256, N = TILES * 256;
  const at = (i) => tiles[((i % N) + N) % N];
  const value = (w, idx) => {
    const key = phase; // the same for every workgroup: Q is fixed and every workgroup sums all K tiles
    let accs = holdCache.get(key);
    if (!accs) {
      accs = new Float64Array(perGroup);
      for (let t = 0; t < TILES; t++) {
        const tile = (t + w) % TILES;
        for (let q = 0; q < NQ; q++) {
          const j = q % NO;
          for (let r = 0; r < 16; r++) for (let c = 0; c < 16; c++) {
            let s = 0;
            for (let k = 0; k < 16; k++) {
              const qv = at(q * 256 + r * 16 + k) + at((NQ + q) * 256 + r * 16 + k);
              s += qv * at(tile * 256 + q * 256 + c * 16 + k); // right matrix, column-major: element (k, c) at c*16 + k
            }
            accs[j * 256 + r * 16 + c] += s;
          }
        }
      }
      holdCache.set(key, accs);
    }
    return accs[idx];
  };
  return { perGroup, value };
}

// kv phase data: per tile 16 rows × 128 of K then of V, values k/64 (exact in f16 hi, lo = 0) except
// every 7th, which gets a low part (x + 2^-14·k) so the lo fragments carry data too.
const kvData = Float32Array.from({ length: TILES * 2 * 2048 }, (_, i) => ((rnd() % 257) - 128) / 64 + (i % 7 === 0 ? ((rnd() % 15) - 7) * 2 ** -14 : 0));
let kvExpected = null;
function kvExpect(idx) {
  if (!kvExpected) {
    kvExpected = new Float64Array(9 * 256);
    for (let t = 0; t < TILES; t++) {
      const K = (r, d) => kvData[(t * 2) * 2048 + r * 128 + d], V = (r, d) => kvData[(t * 2 + 1) * 2048 + r * 128 + d];
      for (let r = 0; r < 16; r++) for (let c = 0; c < 16; c++) {
        for (let kd = 0; kd < 8; kd++) kvExpected[r * 16 + c] += K(c, kd * 16 + r);
        for (let df = 0; df < 8; df++) kvExpected[(df + 1) * 256 + r * 16 + c] += V(r, df * 16 + c);
      }
    }
  }
  return kvExpected[idx];
}

// attn: Q is 128 rows × 128 of k/64 values. Per subgroup: O_df[r][c] = Σ_t Σ_k P_t[r][k]·V_t[k][16·df + c]
// (P = 1 unless +exp; with +rescale the running reference max of the library's lazy rescaling), and
// each lane's sums Σ_t S_t[row][col] for its row and columns, S = Q·Kᵀ. Also returns each value's
// magnitude (Σ |P·V| terms), the scale of its rounding.
const qData = Float32Array.from({ length: 128 * 128 }, () => ((rnd() % 257) - 128) / 64);
const attnCache = new Map();
function attnExpected(phase) {
  if (attnCache.has(phase)) return attnCache.get(phase);
  const opt = attnOptions(phase);
  const value = new Float64Array(8 * ATTN_OUT), mag = new Float64Array(8 * ATTN_OUT);
  const m = new Float64Array(128).fill(-3.0e38);
  for (let t = 0; t < TILES; t++) {
    const K = (r, d) => kvData[(t * 2) * 2048 + r * 128 + d], V = (r, d) => kvData[(t * 2 + 1) * 2048 + r * 128 + d];
    for (let row = 0; row < 128; row++) {
      const sg = row >> 4, r = row & 15, base = sg * ATTN_OUT;
      const S = Array.from({ length: 16 }, (_, col) => {
        if (!opt.s) return 0;
        let dot = 0;
        for (let d = 0; d < 128; d++) dot += qData[row * 128 + d] * K(col, d);
        return dot;
      });
      for (let col = 0; col < 16; col++) value[base + 2048 + (r * 2 + (col & 1)) * 8 + (col >> 1)] += S[col];
      if (!opt.pv) continue;
      let p = S.map(() => 1);
      if (opt.exp) {
        const x = S.map((v) => v * ATTN_SCALE), mx = Math.max(...x);
        let mu = mx;
        if (opt.lazy) {
          if (mx > m[row] + 8) {
            const al = opt.rescale ? 2 ** (m[row] - mx) : 1;
            for (let df = 0; df < 8; df++) for (let c = 0; c < 16; c++) { value[base + df * 256 + r * 16 + c] *= al; mag[base + df * 256 + r * 16 + c] *= al; }
            m[row] = mx;
          }
          mu = m[row];
        }
        p = x.map((v) => 2 ** (v - mu));
      }
      for (let df = 0; df < 8; df++) for (let c = 0; c < 16; c++) {
        let o = 0, a = 0;
        for (let k = 0; k < 16; k++) { o += p[k] * V(k, df * 16 + c); a += Math.abs(p[k] * V(k, df * 16 + c)); }
        value[base + df * 256 + r * 16 + c] += o;
        mag[base + df * 256 + r * 16 + c] += a;
      }
    }
  }
  const e = { value, mag };
  attnCache.set(phase, e);
  return e;
}

const keep = [];
async function run(robust) {
  const toggles = [TOGGLES, robust ? "" : "disable_robustness", process.env.EXTRA_TOGGLES].filter(Boolean).join(",");
  const gpu = create([`backend=${backend}`, `enable-dawn-features=${toggles}`]);
  keep.push(gpu); // Dawn's instance must outlive the device (probe.mjs keeps it the same way)
  const adapter = await gpu.requestAdapter();
  const requiredLimits = Object.fromEntries(["maxComputeWorkgroupStorageSize", "maxStorageBufferBindingSize", "maxBufferSize"].map((k) => [k, adapter.limits[k]]));
  const device = await adapter.requestDevice({ requiredFeatures: ["shader-f16", "subgroups", "chromium-experimental-subgroup-matrix"].filter((f) => adapter.features.has(f)), requiredLimits });
  if (!device.features.has("chromium-experimental-subgroup-matrix")) { log("no subgroup matrices"); return; }
  const mk = (data, usage) => { const b = device.createBuffer({ size: Math.ceil(data.byteLength / 16) * 16, usage: usage | GPUBufferUsage.COPY_DST }); device.queue.writeBuffer(b, 0, data); return b; };
  const params = mk(new Uint32Array([0, TILES, 0, 0]), GPUBufferUsage.UNIFORM);
  const src = mk(Uint16Array.from(tiles, half), GPUBufferUsage.STORAGE);
  const ident = mk(Uint16Array.from({ length: 256 }, (_, i) => (i % 17 === 0 ? half(1) : 0)), GPUBufferUsage.STORAGE);
  const kvBuf = mk(kvData, GPUBufferUsage.STORAGE);
  const qBuf = mk(qData, GPUBufferUsage.STORAGE);
  const outBytes = GROUPS * NSG * 8 * 256 * 4; // the largest output: hold's eight accumulators (kv runs half the workgroups)
  const out = device.createBuffer({ size: outBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const readBack = device.createBuffer({ size: outBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  for (const phase of PHASES) {
    for (const S of phase === "load" || phase === "pp" ? [16, 24] : [16]) {
      for (const dep of phase.startsWith("hold") || phase === "kv" || phase.startsWith("attn") ? ["data"] : ["none", "data", "ctrl", "tint"]) {
        const label = `robustness ${robust ? "on " : "off"} ${phase.padEnd(5)} stride ${S} ${dep.padEnd(4)}`;
        try {
          device.pushErrorScope("validation");
          const module = device.createShaderModule({ code: shader(phase, dep, S) });
          const errs = (await module.getCompilationInfo()).messages.filter((m) => m.type === "error");
          if (errs.length) throw new Error(`${errs[0].lineNum}: ${errs[0].message}`);
          const pipeline = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
          const bg = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [params, src, ident, out, ...(phase === "kv" ? [kvBuf] : phase.startsWith("attn") ? [kvBuf, qBuf] : [])].map((buffer, binding) => ({ binding, resource: { buffer } })) });
          const e = device.createCommandEncoder();
          e.clearBuffer(out);
          const pass = e.beginComputePass(); pass.setPipeline(pipeline); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(groupsOf(phase)); pass.end();
          e.copyBufferToBuffer(out, 0, readBack, 0, outBytes);
          device.queue.submit([e.finish()]);
          const err = await device.popErrorScope();
          if (err) throw new Error(err.message);
          if (backend === "null") { log(label, "compiled"); continue; }
          await readBack.mapAsync(GPUMapMode.READ);
          const o = new Float32Array(readBack.getMappedRange().slice(0));
          readBack.unmap();
          // load/pp: per (workgroup, subgroup) a 16×16 row-major sum; store: per invocation 8 values;
          // hold: per (workgroup, subgroup, accumulator) a 16×16 row-major product sum
          const hold = phase.startsWith("hold") ? holdExpected(phase) : phase === "kv" ? { perGroup: 9 * 256, value: (_w, i) => kvExpect(i) }
            : phase.startsWith("attn") ? { perGroup: ATTN_OUT, value: (_w, i) => attnExpected(phase).value[i] } : null;
          const groups = groupsOf(phase);
          const nsg = phase.startsWith("attn") ? ATTN_T / 32 : NSG;
          const n = phase === "store" ? groups * T * 8 : hold ? groups * nsg * hold.perGroup : groups * NSG * 256;
          const expect = (i) => (phase === "store" ? total[((i >> 3) % T % 32) * 8 + (i & 7)]
            : phase.startsWith("attn") ? hold.value(0, i % (nsg * ATTN_OUT))
            : hold ? hold.value(Math.floor(i / (nsg * hold.perGroup)), i % hold.perGroup) : total[i % 256]);
          let bad = 0, nan = 0, badGroups = new Set();
          // kv's sums need up to 24 significant bits: allow rounding there, nothing else.
          const tol = phase === "kv" ? 1e-3 : 0;
          // attn's S sums reach ~1e4 and leave out the ql·kl product, and its exp variants round P to
          // f16 hi + lo and use the GPU's exp2: tolerance relative to each value's magnitude.
          const attn = phase.startsWith("attn") ? attnExpected(phase) : null;
          const within = (x, e, i) => (attn ? Math.abs(x - e) <= 1e-4 * (Math.abs(e) + attn.mag[i % (nsg * ATTN_OUT)] + 1) : Math.abs(x - e) <= tol);
          let worst = 0;
          const firstBad = [], firstBadS = []; // attn: the first wrong O values and the first wrong S sums
          for (let i = 0; i < n; i++) {
            const e = expect(i);
            if (!within(o[i], e, i)) { bad++; const into = attn && i % ATTN_OUT >= 2048 ? firstBadS : firstBad;
              if (into.length < 4) into.push(`[${i}] ${o[i]} (expected ${e})`); if (Number.isNaN(o[i])) nan++; badGroups.add(Math.floor(i / (n / groups))); }
            if (attn) worst = Math.max(worst, Math.abs(o[i] - e) / (Math.abs(e) + attn.mag[i % (nsg * ATTN_OUT)] + 1));
          }
          const worstText = attn ? `, worst relative error ${worst.toExponential(1)}` : "";
          log(label, bad ? `WRONG ${bad}/${n} (NaN ${nan}) in ${badGroups.size}/${groups} workgroups${worstText}` : `${attn ? "within 1e-4" : "exact"} (${n} values${worstText})`);
          if (bad) log("  first:", [...firstBad, ...firstBadS].join("; "));
        } catch (e) {
          log(label, "failed:", String(e.message ?? e).slice(0, 300));
        }
      }
    }
  }
  device.destroy();
}

const which = process.env.ROBUSTNESS ?? "both";
if (which !== "off") await run(true);
if (which !== "on") await run(false);
process.exit(0);
