// Device probe: f16 + subgroup-matrix on Dawn/Vulkan, a GEMM ceiling, and prototype MMA attention kernels.
import { create, globals } from "webgpu";
import { attnShader, attnStagedShader, diagShader, diag2Shader, gemmShader, splitShader, stagedSharedBytes } from "./attn-mma.mjs";
Object.assign(globalThis, globals);
const t0 = performance.now();
const budgetMs = Number(process.env.PROBE_S ?? 200) * 1000;
const log = (...a) => console.log(...a);
const backend = process.argv.includes("--null") ? "null" : "vulkan";

async function adapterWith(toggles) {
  const gpu = create([`backend=${backend}`, "disable-dawn-features=timestamp_quantization", ...(toggles ? [`enable-dawn-features=${toggles}`] : [])]);
  return { gpu, adapter: await gpu.requestAdapter({ powerPreference: "high-performance" }) };
}

if (!process.env.SKIP_PLAIN) {
  const { gpu: g0, adapter } = await adapterWith(null); globalThis.keepGpu0 = g0;
  log("plain adapter:", adapter.info.vendor, adapter.info.device, adapter.info.description, "shader-f16:", adapter.features.has("shader-f16"), "sgm:", adapter.features.has("chromium-experimental-subgroup-matrix"));
}
// EXTRA_TOGGLES adds Dawn toggles (e.g. disable_robustness) to the matrix adapter.
const toggles = ["allow_unsafe_apis,vulkan_enable_f16_on_nvidia,use_vulkan_memory_model", process.env.EXTRA_TOGGLES].filter(Boolean).join(",");
const { gpu: keepGpu, adapter } = await adapterWith(toggles);
globalThis.keepGpu = keepGpu;
log("toggled adapter features:", [...adapter.features].sort().join(" "));
log("subgroup sizes:", adapter.info.subgroupMinSize, adapter.info.subgroupMaxSize);
log("subgroupMatrixConfigs:", JSON.stringify(adapter.info.subgroupMatrixConfigs));
const want = ["shader-f16", "subgroups", "chromium-experimental-subgroup-matrix", "timestamp-query"].filter((f) => adapter.features.has(f));
const lim = {};
for (const k of ["maxComputeWorkgroupStorageSize", "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX", "maxStorageBufferBindingSize", "maxBufferSize", "maxStorageBuffersPerShaderStage"]) lim[k] = adapter.limits[k];
const device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits: lim });
device.onuncapturederror = (e) => log("uncaptured:", e.error?.message);
log("device features:", [...device.features].sort().join(" "));
if (!device.features.has("chromium-experimental-subgroup-matrix") || !device.features.has("shader-f16")) {
  log("NO f16 subgroup matrices: stopping");
  process.exit(0);
}

async function pipeline(code, label) {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code, label });
  const info = await module.getCompilationInfo();
  const errs = info.messages.filter((m) => m.type === "error");
  if (errs.length) { await device.popErrorScope(); throw new Error(`${label}: ${errs[0].message} @${errs[0].lineNum}: ${code.split("\n")[errs[0].lineNum - 1]}`); }
  const p = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
  const e = await device.popErrorScope();
  if (e) throw new Error(`${label}: ${e.message}`);
  return p;
}
const buf = (bytes, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC) => device.createBuffer({ size: Math.ceil(bytes / 16) * 16, usage });
const upload = (data, usage) => { const b = buf(data.byteLength, usage); device.queue.writeBuffer(b, 0, data.buffer, data.byteOffset, data.byteLength); return b; };
const uniform = (u32s) => upload(new Uint32Array(u32s), GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
const bind = (p, bufs) => device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: bufs.map((b, i) => ({ binding: i, resource: { buffer: b } })) });
async function read(b, bytes) {
  const r = device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const e = device.createCommandEncoder(); e.copyBufferToBuffer(b, 0, r, 0, r.size); device.queue.submit([e.finish()]);
  await r.mapAsync(GPUMapMode.READ); const out = r.getMappedRange().slice(0); r.unmap(); r.destroy(); return out;
}
async function dispatch(p, bg, grid) {
  const e = device.createCommandEncoder(); const pass = e.beginComputePass(); pass.setPipeline(p); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(...grid); pass.end();
  device.queue.submit([e.finish()]); await device.queue.onSubmittedWorkDone();
}
async function timeBlock(p, bg, grid, iters) {
  const t = performance.now();
  while (performance.now() - t < 150) await dispatch(p, bg, grid);
  const qs = device.createQuerySet({ type: "timestamp", count: 2 * iters });
  const res = device.createBuffer({ size: 16 * iters, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const e = device.createCommandEncoder();
  for (let i = 0; i < iters; i++) {
    const pass = e.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
    pass.setPipeline(p); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(...grid); pass.end();
  }
  e.resolveQuerySet(qs, 0, 2 * iters, res, 0); device.queue.submit([e.finish()]);
  const ts = new BigUint64Array(await read(res, 16 * iters));
  const s = Array.from({ length: iters }, (_, i) => Number(ts[2 * i + 1] - ts[2 * i]) / 1e6).sort((a, b) => a - b);
  return s[s.length >> 1];
}
// The SM clock ramps up for a while after idle (../../../results/wgsl-h200.md, "Timing"): take the
// fastest median of three timed blocks.
async function time(p, bg, grid, iters = 10) {
  let best = Infinity;
  for (let r = 0; r < 3; r++) best = Math.min(best, await timeBlock(p, bg, grid, iters));
  return best;
}

// f32 → f16 bits (round to nearest even; values here are in normal range)
const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
function toHalf(x) {
  f32[0] = x; const b = u32[0]; const s = (b >>> 16) & 0x8000; const e = ((b >>> 23) & 0xff) - 127 + 15; let m = b & 0x7fffff;
  if (x === 0) return s;
  if (e <= 0) return s; // flush tiny (not used)
  let h = s | (e << 10) | (m >>> 13); const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return h;
}

let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
const gauss = () => { const u = rnd() || 1e-9, v = rnd(); return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v); };

// ---------- layout diagnostic ----------
if (process.env.DIAG) {
  const f16val = (i) => (i % 2048) / 64;
  for (const KS of [16, 64, 72]) {
    try {
      const n = 32 * KS;
      const src = new Uint16Array(n); for (let i = 0; i < n; i++) src[i] = toHalf(f16val(i)) ;
      const S = upload(src), O16 = buf(6 * 256 * 2), O32 = buf(2 * 256 * 4);
      const p = await pipeline(diagShader(KS), `diag${KS}`);
      await dispatch(p, bind(p, [S, O16, O32]), [1, 1, 1]);
      const o16 = new Uint16Array(await read(O16, 6 * 512));
      const o32 = new Float32Array(await read(O32, 2 * 1024));
      const off = KS + 16;
      const exp = [(r, c) => src[off + r * KS + c], (r, c) => src[off + c * KS + r], (r, c) => src[off + r * KS + c]];
      const names = ["wg left row", "wg right col", "wg right row", "st left row", "st right col", "st right row"];
      const bad = names.map((_, m) => { let b = 0; for (let r = 0; r < 16; r++) for (let c = 0; c < 16; c++) if (o16[m * 256 + r * 16 + c] !== exp[m % 3](r, c)) b++; return b; });
      const val = (m, r, c) => f16val(m === 0 ? off + r * KS + c : m === 1 ? off + c * KS + r : off + r * KS + c);
      const mm = [1, 2].map((bm, k) => { let b = 0; for (let r = 0; r < 16; r++) for (let c = 0; c < 16; c++) { let s = 0; for (let t = 0; t < 16; t++) s += val(0, r, t) * val(bm, t, c); if (Math.abs(s - o32[k * 256 + r * 16 + c]) > 1e-3 * Math.abs(s) + 1e-3) b++; } return b; });
      log(`diag KS=${KS}: mismatches ${names.map((nm, i) => `${nm}=${bad[i]}`).join(", ")}; a·b ${mm[0]}, a·c ${mm[1]} of 256`);
      if (bad.some((b) => b)) log("  wg right col first row got:", Array.from(o16.slice(256, 272)).join(","), "expected:", Array.from({ length: 16 }, (_, c) => exp[1](0, c)).join(","));
    } catch (e) { log(`diag ${KS} failed: ${e.message.slice(0, 300)}`); }
  }
}
if (process.env.DIAG2) {
  const src = new Float32Array(32 * 64); for (let i = 0; i < src.length; i++) src[i] = gauss();
  const S = upload(src), O16 = buf(6000 * 2);
  const hiOf = (x) => { f32[0] = x; u32[0] = u32[0] & 0xffffe000; return f32[0]; };
  const expect = new Uint16Array(2 * 32 * 72);
  for (let r = 0; r < 32; r++) for (let d = 0; d < 64; d++) { const x = src[r * 64 + d]; const h = hiOf(x); f32[0] = x - h; const lo = f32[0]; expect[r * 72 + d] = toHalf(h); expect[2304 + r * 72 + d] = toHalf(lo); }
  for (const [mode, extras] of [[0, false], [1, false], [2, false], [0, true], [1, true]]) {
    try {
      const p = await pipeline(diag2Shader(mode, extras), `diag2-${mode}`);
      device.queue.writeBuffer(O16, 0, new Uint16Array(6000).fill(0x7e00));
      await dispatch(p, bind(p, [S, O16]), [1, 1, 1]);
      const o = new Uint16Array(await read(O16, 12000));
      let plainBad = 0, plainTot = 0;
      for (let r = 0; r < 32; r++) for (let d = 0; d < 64; d++) for (const base of mode === 2 ? [0] : [0, 2304]) {
        plainTot++; const want = mode === 2 ? toHalf(src[r * 64 + d]) : expect[base + r * 72 + d];
        if (Math.abs(o[base + r * 72 + d] - want) > (mode === 2 ? 1 : 0)) plainBad++;
      }
      const at = (base, r, c) => (mode === 2 ? toHalf(src[(16 + r) * 64 + 16 + c]) : expect[base + (16 + r) * 72 + 16 + c]);
      let colBad = 0, rowBad = 0, loBad = 0;
      for (let r = 0; r < 16; r++) for (let c = 0; c < 16; c++) {
        if (Math.abs(o[5000 + r * 16 + c] - (mode === 2 ? toHalf(src[(16 + c) * 64 + 16 + r]) : expect[(16 + c) * 72 + 16 + r])) > 1) colBad++;
        if (Math.abs(o[5256 + r * 16 + c] - at(0, r, c)) > 1) rowBad++;
        if (mode !== 2 && o[5512 + r * 16 + c] !== at(2304, r, c)) loBad++;
      }
      log(`diag2 mode ${mode}${extras ? " +sc/pp" : ""}: plain readback bad ${plainBad}/${plainTot}; matrix col-major bad ${colBad}/256, row-major bad ${rowBad}/256, lo row-major bad ${loBad}/256`);
      if (plainBad) log("  sample got", Array.from(o.slice(0, 8)).map((x) => x.toString(16)).join(","), "want", Array.from(expect.slice(0, 8)).map((x) => x.toString(16)).join(","), "lo got", Array.from(o.slice(2304, 2312)).map((x) => x.toString(16)).join(","), "want", Array.from(expect.slice(2304, 2312)).map((x) => x.toString(16)).join(","));
    } catch (e) { log(`diag2 ${mode} failed: ${e.message.slice(0, 300)}`); }
  }
}
// ---------- GEMM ceiling ----------
if (!process.env.SKIP_GEMM)
{
  const M = 4096, N = 4096, K = 4096;
  const av = new Float64Array(M * K), bv = new Float64Array(K * N);
  const ah = new Uint16Array(M * K), bh = new Uint16Array(K * N);
  for (let i = 0; i < M * K; i++) { av[i] = Math.round((rnd() * 2 - 1) * 256) / 256; ah[i] = toHalf(av[i]); }
  for (let i = 0; i < K * N; i++) { bv[i] = Math.round((rnd() * 2 - 1) * 256) / 256; bh[i] = toHalf(bv[i]); }
  const A = upload(ah), B = upload(bh), C = buf(M * N * 4), G = uniform([M, N, K, 0]);
  for (const [FM, FN] of [[2, 2], [2, 4], [4, 2], [4, 4]]) {
    try {
      const p = await pipeline(gemmShader({ FM, FN }), `gemm${FM}x${FN}`);
      const bg = bind(p, [A, B, C, G]);
      const grid = [N / (32 * FN), M / (32 * FM), 1];
      const ms = await time(p, bg, grid);
      const c = new Float32Array(await read(C, M * N * 4));
      let err = 0;
      for (let t = 0; t < 64; t++) {
        const i = Math.floor(rnd() * M), j = Math.floor(rnd() * N);
        let s = 0; for (let k = 0; k < K; k++) s += av[i * K + k] * bv[k * N + j];
        err = Math.max(err, Math.abs(s - c[i * N + j]) / (Math.abs(s) + 1));
      }
      log(`GEMM f16→f32 4096³ sub-tile ${16 * FM}x${16 * FN}: ${ms.toFixed(3)} ms, ${(2 * M * N * K / ms / 1e9).toFixed(1)} TFLOP/s, max err ${err.toExponential(2)}`);
    } catch (e) { log(`GEMM ${FM}x${FN} failed: ${e.message.slice(0, 400)}`); }
  }
}

// ---------- attention prototypes ----------
const variants = process.env.VARIANTS ? JSON.parse(process.env.VARIANTS) : [
  { D: 64, BN: 64, RF: 1, NSG: 4, qRegs: true },
  { D: 64, BN: 32, RF: 2, NSG: 4, qRegs: true },
  { D: 64, BN: 32, RF: 1, NSG: 8, qRegs: true },
  { D: 64, BN: 64, RF: 2, NSG: 2, qRegs: true },
  { D: 64, BN: 64, RF: 1, NSG: 4, qRegs: true, products: 1 },
  { D: 128, BN: 64, RF: 1, NSG: 4, qRegs: true },
  { D: 128, BN: 32, RF: 1, NSG: 8, qRegs: true },
  { D: 128, BN: 32, RF: 2, NSG: 4, qRegs: false },
  { D: 128, BN: 64, RF: 1, NSG: 4, qRegs: false },
  { D: 128, BN: 32, RF: 1, NSG: 4, qRegs: true },
  { D: 128, BN: 64, RF: 1, NSG: 4, qRegs: true, products: 1 },
];
const Bsz = 4, H = 16, NQ = backend === "null" ? 64 : 4096;
const inputs = {};
function inputsFor(D) {
  if (inputs[D]) return inputs[D];
  const n = Bsz * H * NQ * D;
  const q = new Float32Array(n), k = new Float32Array(n), v = new Float32Array(n);
  for (let i = 0; i < n; i++) { q[i] = gauss(); k[i] = gauss(); v[i] = gauss(); }
  return (inputs[D] = { q, k, v, Q: upload(q), K: upload(k), V: upload(v) });
}
log("split pipeline...");
const split = await pipeline(splitShader(), "split");
log("split ok");
function splitInto(src, D, mult) {
  const lpad = NQ; const total = Bsz * H * lpad * D;
  const dst = buf(total * 4);
  const spb = upload(new Uint32Array([0, NQ, lpad, D, 0, total, 0, 0]), GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  device.queue.writeBuffer(spb, 16, new Float32Array([mult]));
  const wgs = Math.ceil(total / 256);
  return { dst, bg: device.createBindGroup({ layout: split.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }, { binding: 2, resource: { buffer: spb } }] }), grid: [Math.min(wgs, 65535), Math.ceil(wgs / 65535), 1], total };
}
function refRow(inp, D, bh, i) {
  const { q, k, v } = inp; const sc = 1 / Math.sqrt(D);
  const qo = (bh * NQ + i) * D; const s = new Float64Array(NQ); let mx = -Infinity;
  for (let j = 0; j < NQ; j++) { let d = 0; const ko = (bh * NQ + j) * D; for (let t = 0; t < D; t++) d += q[qo + t] * k[ko + t]; s[j] = d * sc; if (s[j] > mx) mx = s[j]; }
  const o = new Float64Array(D); let l = 0;
  for (let j = 0; j < NQ; j++) { const p = Math.exp(s[j] - mx); l += p; const vo = (bh * NQ + j) * D; for (let t = 0; t < D; t++) o[t] += p * v[vo + t]; }
  for (let t = 0; t < D; t++) o[t] /= l;
  return o;
}
const results = [];
for (const vt of variants) {
  if (performance.now() - t0 > budgetMs) { log("budget reached"); break; }
  const o = { tau: 8, ...vt };
  const name = `D${o.D} BN${o.BN} RF${o.RF} NSG${o.NSG} q${o.qRegs ? "R" : "G"} p${o.products ?? 3}${o.ktrans ? " kT" : ""}${o.scPad ? ` sc+${o.scPad}` : ""}${o.ppPad ? ` pp+${o.ppPad}` : ""}${o.ppSide ? " ppSide" : ""}${o.qCols ? " qCols" : ""}`;
  try {
    const inp = inputsFor(o.D);
    if (o.staged && backend === "null") {
      // No GPU: check that Dawn's WGSL front end accepts the shader (pipelines need real limits).
      const info = await device.createShaderModule({ code: attnStagedShader(o) }).getCompilationInfo();
      const errs = info.messages.filter((m) => m.type === "error");
      log(`${name} staged: ${errs.length ? `INVALID ${errs[0].message}` : "valid WGSL"}, ${stagedSharedBytes(o)} B workgroup memory`);
      continue;
    }
    if (o.staged) {
      const bytes = stagedSharedBytes(o);
      if (bytes > lim.maxComputeWorkgroupStorageSize) { log(`${name} staged: ${bytes} B workgroup memory, skipped`); continue; }
      const p = await pipeline(attnStagedShader(o), name);
      const OUTB = buf(Bsz * H * NQ * o.D * 4);
      const sq = o.qFrom === "storage" ? splitInto(inp.Q, o.D, Math.LOG2E / Math.sqrt(o.D)) : null;
      const sk = o.kvFrom === "storage" ? splitInto(inp.K, o.D, 1) : null, sv = o.kvFrom === "storage" ? splitInto(inp.V, o.D, 1) : null;
      for (const s of [sq, sk, sv]) if (s) await dispatch(split, s.bg, s.grid);
      let splitMs = 0; // the pre-split passes a real kernel would add
      for (const s of [sq, sk, sv]) if (s) splitMs += await time(split, s.bg, s.grid, 5);
      const prm = upload(new Uint32Array([NQ, NQ, sq?.total ?? 0, sk?.total ?? 0, 0, 0, 0, 0]), GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
      device.queue.writeBuffer(prm, 16, new Float32Array([Math.LOG2E / Math.sqrt(o.D)]));
      const bg = bind(p, [sq?.dst ?? inp.Q, sk?.dst ?? inp.K, sv?.dst ?? inp.V, OUTB, prm]);
      await check(`${name} staged pad${o.pad ?? 8} q:${o.qFrom ?? "stage"} kv:${o.kvFrom ?? "stage"}`, p, bg, [NQ / (16 * o.RF * o.NSG), Bsz * H, 1], OUTB, inp, o, splitMs);
      continue;
    }
    const sq = splitInto(inp.Q, o.D, Math.LOG2E / Math.sqrt(o.D)), sk = splitInto(inp.K, o.D, 1), sv = splitInto(inp.V, o.D, 1);
    for (const s of [sq, sk, sv]) await dispatch(split, s.bg, s.grid);
    const splitMs = await time(split, sq.bg, sq.grid, 5);
    const code = attnShader(o);
    const p = await pipeline(code, name);
    const OUTB = buf(Bsz * H * NQ * o.D * 4);
    const prm = uniform([NQ, NQ, NQ, NQ, sq.total, sk.total, H, 0]);
    const bg = bind(p, [sq.dst, sk.dst, sv.dst, OUTB, prm]);
    const grid = [NQ / (16 * o.RF * o.NSG), Bsz * H, 1];
    await check(name, p, bg, grid, OUTB, inp, o, splitMs);
  } catch (e) { log(`${name} FAILED: ${String(e.message).slice(0, 500)}`); }
}
async function check(name, p, bg, grid, OUTB, inp, o, splitMs) {
  {
    const poison = new Float32Array(Bsz * H * NQ * o.D).fill(NaN);
    device.queue.writeBuffer(OUTB, 0, poison);
    await dispatch(p, bg, grid);
    const out = new Float32Array(await read(OUTB, poison.byteLength));
    let nan = 0; for (let i = 0; i < out.length; i++) if (!Number.isFinite(out[i])) nan++;
    let num = 0, den = 0;
    for (const bh of [0, Bsz * H - 1]) for (let t = 0; t < 6; t++) {
      const i = Math.floor(rnd() * NQ); const r = refRow(inp, o.D, bh, i);
      for (let d = 0; d < o.D; d++) { const x = out[(bh * NQ + i) * o.D + d]; num += (x - r[d]) ** 2; den += r[d] ** 2; }
    }
    const rel = Math.sqrt(num / den);
    const ms = await time(p, bg, grid, 10);
    const tf = (4 * Bsz * H * NQ * NQ * o.D) / ms / 1e9;
    results.push({ name, ms, tflops: tf, rel, nonFinite: nan, splitMs });
    log(`${name}: ${ms.toFixed(3)} ms  ${tf.toFixed(1)} TFLOP/s  rel err ${rel.toExponential(2)}  unwritten/NaN ${nan}  split passes ${splitMs.toFixed(3)} ms`);
  }
}
if (process.env.OUT) (await import("node:fs")).writeFileSync(`${process.env.OUT}/probe.json`, JSON.stringify(results, null, 1));
log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
process.exit(0);
