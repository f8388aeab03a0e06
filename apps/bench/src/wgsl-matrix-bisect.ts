/**
 * Research harness (GPU machine): why does the library's subgroupMatrix kernel run noop d=128 at
 * ~26 TFLOP/s when the probe's kernel of the same shape runs ~32 (results/wgsl-h200.md, last
 * section)? Times the generated shader beside copies with one difference each removed by a text
 * edit (the staging bounds checks, the kv-bounds block, the tile-loop break, the reversed query
 * tile order), and with Dawn's robustness off. Each copy's output is compared with the unedited
 * kernel's (correct on the conformance suite); the plain default config runs as the reference.
 *
 *   node wgsl-matrix-bisect.mjs --out DIR   (bundled like wgsl-bench, see device/wgsl/README.md)
 * `--experiments robustness|control|down|remat` runs one of EXPERIMENT_SETS instead: source edits with Dawn's
 * robustness off (and on), each output described against the robust kernel's. `--check` compiles
 * every experiment's source on Dawn's null backend (no GPU) and stops.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { KernelArtifact, KernelConfig, KernelInvocation } from "@flexattn/template";
import { artifactFor, DAWN_SUBGROUP_MATRIX_OPTIONS, type FlexDevice, prepareWgsl, requestFlexDevice, timeWgsl } from "@flexattn/webgpu";
import { invocation } from "./wgsl-cases.js";

const { values: args } = parseArgs({
  options: {
    out: { type: "string", default: "bisect-out" },
    n: { type: "string", default: "4096" },
    /** Run one of EXPERIMENT_SETS by name, each output described against the robust kernel's. */
    experiments: { type: "string" },
    /** Compile every experiment's source on Dawn's null backend and stop (no GPU needed). */
    check: { type: "boolean", default: false },
  },
});
const log = (...x: unknown[]) => console.log(new Date().toISOString().slice(11, 23), ...x);

const N = Number(args.n);
const D = 128;
const [B, H] = [16384 / N, 16];

const MATRIX_CONFIG: KernelConfig = { blockM: 128, blockN: 16, numWarps: 8, numStages: 1, prescaleQk: false, options: { subgroupMatrix: true, workgroupSize: 256, vec4: true } };

/** Text edits of the generated kernel; each must change the source, or the variant is void. */
const EDITS: Record<string, (src: string) => string> = {
  "no staging bounds checks": (s) => s.replace(/if \((kv0|q0) \+ (\d+ \+ )?r < P\.(kv|q)_len\) \{ (x = fa_ld4_\w\([^;]*\);) \}/g, "$4"),
  "no kv-bounds block": (s) => s.replace(/\n(\s*)if \(kv0 \+ \d+ > P\.kv_len\) \{\n[\s\S]*?\n\1\}/g, ""),
  "no tile-loop break": (s) => s.replace(/\n\s*if \(kv0 >= P\.kv_len\) \{ break; \}/g, ""),
  "query tiles in order": (s) => s.replace(/let m = \(P\.q_len \+ \d+\) \/ \d+ - 1 - i32\(wg\.x\);/, "let m = i32(wg.x);"),
};

async function time(dev: FlexDevice, inv: KernelInvocation, artifact: KernelArtifact) {
  // The experiments want the raw outputs of wrong kernels, so no spot check refuses them.
  const prepared = await prepareWgsl(inv, { device: dev, artifact, verify: "never" });
  inv.out.fill(Number.NaN);
  await prepared.run();
  const out = Float32Array.from(inv.out as Float32Array);
  const t = await timeWgsl(prepared, { iterations: 10, warmup: 2, warmupMs: 300 });
  return { ms: t.medianMs, tflops: (4 * B * H * N * N * D) / (t.medianMs * 1e-3) / 1e12, rounds: t.rounds, out };
}

const maxDiff = (a: Float32Array, b: Float32Array) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Number.isNaN(a[i]) ? Infinity : Math.abs(a[i] - b[i]));
  return m;
};

/**
 * How an output differs from the reference: NaN count, exact zeros where the reference is not
 * zero (never written: each run gets a fresh device, whose buffers start zeroed), elements off by
 * more than 1e-3, and where the bad elements sit: by query row within its 128-row tile (in
 * 16-row subgroup slices), by 16-column block of the head dim, and the first (batch·head:row)s.
 */
function describeDiff(a: Float32Array, ref: Float32Array) {
  let nan = 0, zero = 0, off = 0;
  const bySlice = new Array(8).fill(0), byColumnBlock = new Array(D / 16).fill(0);
  const rows = new Set<string>();
  for (let i = 0; i < a.length; i++) {
    const missing = Number.isNaN(a[i]);
    const unwritten = a[i] === 0 && ref[i] !== 0;
    const wrong = missing || unwritten || Math.abs(a[i] - ref[i]) > 1e-3;
    if (!wrong) continue;
    if (missing) nan++;
    else if (unwritten) zero++;
    else off++;
    const row = Math.floor(i / D) % N;
    bySlice[Math.floor((row % 128) / 16)]++;
    byColumnBlock[Math.floor((i % D) / 16)]++;
    if (rows.size < 12) rows.add(`${Math.floor(i / (N * D))}:${row}`);
  }
  return { elements: a.length, nan, zero, off, bySlice, byColumnBlock, firstRows: [...rows] };
}

/**
 * Source edits that test why the robustness-off kernel is wrong, each run with Dawn's robustness
 * off (and some with it on): Tint's robustness wraps every matrix load/store whose offset is not
 * constant in `if (in bounds)`, which may be what keeps NVIDIA's compiler from moving them across
 * barriers.
 */
const EXPERIMENT_EDITS: Record<string, (src: string) => string> = {
  // Matrix stores and the scalar reads of what they stored take a value read after the barrier.
  "store deps": (s) => s
    .replace(/subgroupMatrixStore<row_major>\(&fa_sc, sbase \+ /g, "subgroupMatrixStore<row_major>(&fa_sc, sbase + workgroupUniformLoad(&fa_dep) + ")
    .replace(/fa_sc\[srow \+ /g, "fa_sc[srow + fa_dep + ")
    .replace(/let e = srow \+ /g, "let e = srow + fa_dep + "),
  // Every matrix load in `if (P.q_len >= 0)` (always true, not constant), as Tint's robustness predicates them.
  "predicated loads": (s) => s
    .replace(/let (\w+) = subgroupMatrixLoad<(FA_M\w)(, \w+>\([^;]*\));/g, "var $1: $2; if (P.q_len >= 0) { $1 = subgroupMatrixLoad<$2$3; }")
    .replace(/(fa_o_\d+_\d+) = (subgroupMatrixLoad<[^;]*;)/g, "if (P.q_len >= 0) { $1 = $2 }"),
  // Every matrix store in `if (P.q_len >= 0)` (always true, not constant).
  "predicated stores": (s) => s.replace(/(subgroupMatrixStore<[^;]*;)/g, "if (P.q_len >= 0) { $1 }"),
  // Every matrix load and store control-dependent on a value read after its barrier: blocks of
  // loads and products in `if (dep == 0u)`, stores of O after a fresh workgroupUniformLoad.
  "control deps": (s) => s
    .replace(/\{(\n\s*let kh0 = )/g, "if (fa_dk == 0u) {$1")
    .replace(/\{(\n\s*let ph0 = )/g, "if (fa_dp == 0u) {$1")
    .replace(/(fa_o_\d+_\d+) = (subgroupMatrixLoad<FA_MA, row_major>\(&fa_sc, sbase \+ (fa_dr\d+)[^;]*;)/g, "if ($3 == 0u) { $1 = $2 }")
    .replace(/let (fa_q[hl]_\d+_\d+) = (subgroupMatrixLoad<FA_ML, row_major>\(&fa_sm, [^;]*?(fa_dq\d+)[^;]*;)/g, "var $1: FA_ML; if ($3 == 0u) { $1 = $2 }")
    .replace(/(subgroupMatrixStore<row_major>\(&fa_sc, sbase \+ \d+u, fa_s_[^;]*;)/g, "if (fa_dk == 0u) { $1 }")
    .replace(/(subgroupMatrixStore<row_major>\(&fa_sc, sbase \+ \d+u, fa_o_[^;]*;)/g, "if (workgroupUniformLoad(&fa_dep) == 0u) { $1 }"),
  // Narrowing down (set "down", robustness off against on for the same edit):
  // S read back as zeros (Q·Kᵀ and the S store become dead code; P = 1 everywhere).
  "S = 0": (s) => s.replace(/var s_0_(\d+) = fa_sc\[srow \+ \d+u \+ cu\];/g, "var s_0_$1 = 0.0f;"),
  // P written as 1 (hi) and 0 (lo): S still feeds the row max and sum, P·V sums V.
  "P = 1": (s) => s.replace(/fa_pp\[prow \+ (\d+)u \+ cu\] = f16\(h\); fa_pp\[prow \+ (\d+)u \+ cu\] = f16\(p - h\);/g, "fa_pp[prow + $1u + cu] = 1.0h; fa_pp[prow + $2u + cu] = 0.0h;"),
  // The lazy rescale of O never runs (a flag value that never occurs).
  "no rescale": (s) => s.replace(/if \(fa_flag != 0u\) \{/g, "if (fa_flag == 7777u) {"),
  // Loaded fragments made computed values (× a runtime 1), so the compiler cannot re-load them
  // from workgroup memory at a later use ("remat" set): Q's, P's, or K's and V's.
  "Q computed": (s) => computed(s, /let (fa_q[hl]_\d+_\d+) = (subgroupMatrixLoad<FA_ML[^;]*);/g),
  "P computed": (s) => computed(s, /let (p[hl]\d+) = (subgroupMatrixLoad<FA_ML[^;]*);/g),
  "K/V computed": (s) => computed(s, /let ([kv][hl]\d*) = (subgroupMatrixLoad<FA_MR[^;]*);/g),
  // The lazy rescale's update without divergent control flow: selects, and the flag raised and
  // cleared by atomics every invocation executes ("branchfree" set: is the divergent `if` what
  // breaks the order probe's attn+flag kernel?).
  "branch-free rescale": (s) => s
    .replace(/if \(mx_0 > m_0 \+ ([\d.]+f)\) \{\n\s*al_0 = exp2\(m_0 - mx_0\);\n\s*m_0 = mx_0;\n\s*if \(l_0 > 0\.0f\) \{ atomicStore\(&fa_rescale, 1u\); \}\n\s*\}/g,
      "let fa_up = mx_0 > m_0 + $1; al_0 = select(1.0f, exp2(m_0 - mx_0), fa_up); m_0 = select(m_0, mx_0, fa_up); " +
      "atomicOr(&fa_rescale, select(0u, 1u, fa_up && l_0 > 0.0f));")
    .replace(/if \(tid == 0\) \{ atomicStore\(&fa_rescale, 0u\); \}/g, "atomicAnd(&fa_rescale, select(0xffffffffu, 0u, tid == 0));"),
  "no staging bounds checks": EDITS["no staging bounds checks"],
  // The rescale flag as a plain u32 (every writer stores the same value), no workgroup atomics.
  "plain flag": (s) => s
    .replace("var<workgroup> fa_rescale: atomic<u32>;", "var<workgroup> fa_rescale: u32;")
    .replace(/atomicStore\(&fa_rescale, (\du)\);/g, "fa_rescale = $1;"),
  // The flag declared before the matrix arrays.
  "flag declared first": (s) => s
    .replace("var<workgroup> fa_rescale: atomic<u32>;\n", "")
    .replace("var<workgroup> fa_sm:", "var<workgroup> fa_rescale: atomic<u32>;\nvar<workgroup> fa_sm:"),
  // Every scalar workgroup variable (the flag and the dependency value) declared before the arrays
  // (the order probe's attn kernels with a workgroup flag were right only so).
  "small variables first": (s) => {
    const small = s.match(/^var<workgroup> fa_\w+: (atomic<u32>|u32);$/gm) ?? [];
    const rest = small.reduce((t, line) => t.replace(`${line}\n`, ""), s);
    return rest.replace("var<workgroup> fa_sm:", `${small.join("\n")}\nvar<workgroup> fa_sm:`);
  },
  // The flag as the first of four atomics (16 bytes).
  "flag padded": (s) => s
    .replace("var<workgroup> fa_rescale: atomic<u32>;", "var<workgroup> fa_rescale: array<atomic<u32>, 4>;")
    .replace(/&fa_rescale\b/g, "&fa_rescale[0]"),
  // No barrier dependencies on the loads (the original reordering bug, for comparison).
  "no load deps": (s) => s.replace(/ \+ fa_d(q\d+|k|p|r\d+)(?= \+ \d+u, \d+u\))/g, ""),
};
/** Wrap the loads that `re` matches in subgroupMatrixScalarMultiply by a runtime 1 (fa_one). */
function computed(s: string, re: RegExp): string {
  const one = s.includes("let fa_one = ") ? s : s.replace(/(\n(\s*)let cu = u32\(c\);)/, "$1\n$2let fa_one = f16(select(1.0f, 2.0f, P.q_len < 0));");
  return one
    .replace(re, "let $1 = subgroupMatrixScalarMultiply($2, fa_one);");
}
const combine = (...names: string[]) => (s: string) => names.reduce((t, n) => EXPERIMENT_EDITS[n](t), s);
type Experiment = [name: string, robust: boolean, edit: (s: string) => string];
const same = (s: string) => s;
/** Sets whose robustness-off runs are compared with the same edit run with robustness on. */
const SELF_REFERENCED = new Set(["down", "remat"]);
/** The experiment sets: `robustness`, `control`, `down` and `remat` ran as calls 10, 11, 13 and 14 (results/wgsl-h200.md). */
const EXPERIMENT_SETS: Record<string, Experiment[]> = {
  robustness: [
    ["library kernel", false, same],
    ["store deps", false, EXPERIMENT_EDITS["store deps"]],
    ["predicated loads", false, EXPERIMENT_EDITS["predicated loads"]],
    ["predicated stores", false, EXPERIMENT_EDITS["predicated stores"]],
    ["predicated loads + stores", false, combine("predicated loads", "predicated stores")],
    ["predicated loads + stores + store deps", false, combine("predicated loads", "predicated stores", "store deps")],
    ["no load deps", true, EXPERIMENT_EDITS["no load deps"]],
    ["predicated loads + stores", true, combine("predicated loads", "predicated stores")],
  ],
  // Each run with robustness off and on; the off output is compared with the on output of the same edit.
  down: [
    ["library kernel", false, same],
    ["S = 0", false, EXPERIMENT_EDITS["S = 0"]],
    ["P = 1", false, EXPERIMENT_EDITS["P = 1"]],
    ["no rescale", false, EXPERIMENT_EDITS["no rescale"]],
    ["S = 0 + no rescale", false, combine("S = 0", "no rescale")],
    ["P = 1 + no rescale", false, combine("P = 1", "no rescale")],
  ],
  // Like "down": each edit with robustness off against the same edit with robustness on.
  remat: [
    ["Q computed", false, EXPERIMENT_EDITS["Q computed"]],
    ["P computed", false, EXPERIMENT_EDITS["P computed"]],
    ["K/V computed", false, EXPERIMENT_EDITS["K/V computed"]],
    ["Q, P, K/V computed", false, combine("Q computed", "P computed", "K/V computed")],
  ],
  // Divergent control flow inside the tile loop taken out, robustness off (and on) against the robust library kernel.
  branchfree: [
    ["library kernel", false, same],
    ["branch-free rescale", false, EXPERIMENT_EDITS["branch-free rescale"]],
    ["branch-free rescale + no staging bounds checks", false, combine("branch-free rescale", "no staging bounds checks")],
    ["branch-free rescale", true, EXPERIMENT_EDITS["branch-free rescale"]],
    ["branch-free rescale + no staging bounds checks", true, combine("branch-free rescale", "no staging bounds checks")],
  ],
  // The workgroup atomic (the order probe's attn kernels go wrong once any is used in the loop).
  atomics: [
    ["plain flag", false, EXPERIMENT_EDITS["plain flag"]],
    ["flag declared first", false, EXPERIMENT_EDITS["flag declared first"]],
    ["flag padded", false, EXPERIMENT_EDITS["flag padded"]],
    ["plain flag + no staging bounds checks", false, combine("plain flag", "no staging bounds checks")],
    ["plain flag", true, EXPERIMENT_EDITS["plain flag"]],
  ],
  layout: [
    ["small variables first", false, EXPERIMENT_EDITS["small variables first"]],
    ["small variables first", true, EXPERIMENT_EDITS["small variables first"]],
    ["small variables first + no load deps", false, combine("small variables first", "no load deps")],
    ["small variables first + no load deps", true, combine("small variables first", "no load deps")],
    ["small variables first + no staging bounds checks", false, combine("small variables first", "no staging bounds checks")],
  ],
  control: [
    ["control deps", false, EXPERIMENT_EDITS["control deps"]],
    ["control deps + no load deps", false, combine("control deps", "no load deps")],
    ["control deps", true, EXPERIMENT_EDITS["control deps"]],
    ["control deps + no load deps", true, combine("control deps", "no load deps")],
  ],
};

/** Every experiment's source compiles (Dawn's null backend with the matrix toggles) and differs from the kernel's. */
async function checkExperiments() {
  const dev = await requestFlexDevice({ backend: "null", dawnOptions: DAWN_SUBGROUP_MATRIX_OPTIONS });
  const { inv } = invocation({ variant: "noop", n: 256, batch: 1, heads: 1, d: D });
  const base = artifactFor(inv, { ...dev, limits: { ...dev.limits, maxComputeWorkgroupStorageSize: 49152, subgroupMatrix: true } }, { config: MATRIX_CONFIG });
  let failed = 0;
  for (const [name, , edit] of Object.values(EXPERIMENT_SETS).flat()) {
    const source = edit(base.source);
    const info = await dev.device.createShaderModule({ code: source }).getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error").map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
    const applied = name === "library kernel" || source !== base.source;
    if (errors.length || !applied) failed++;
    log(name.padEnd(40), applied ? "applied" : "DID NOT APPLY", errors.length ? errors.slice(0, 3).join(" | ") : "compiles");
  }
  if (failed) throw new Error(`${failed} experiment(s) do not apply or compile`);
}

async function main() {
  if (args.check) return checkExperiments();
  const dev = await requestFlexDevice({ backend: "vulkan", dawnOptions: DAWN_SUBGROUP_MATRIX_OPTIONS });
  // requestFlexDevice withholds subgroupMatrix when robustness is off (the wrong outputs this
  // harness found); the diagnosis runs it there on purpose.
  const unsafeDevice = await requestFlexDevice({ backend: "vulkan", dawnOptions: [`${DAWN_SUBGROUP_MATRIX_OPTIONS[0]},disable_robustness`] });
  const unsafe: FlexDevice = { ...unsafeDevice, limits: { ...unsafeDevice.limits, subgroupMatrix: dev.limits.subgroupMatrix } };
  log("device", dev.description, "subgroupMatrix", dev.limits.subgroupMatrix);
  // The benchmark's noop case, with wgsl-bench's inputs (call 9 ran with its own uniform [-2, 2) inputs, other seeds).
  const { inv } = invocation({ variant: "noop", n: N, batch: B, heads: H, d: D });
  const base = artifactFor(inv, dev, { config: MATRIX_CONFIG });
  const plain = artifactFor(inv, dev);
  const rows: Record<string, unknown>[] = [];
  const record = (name: string, r: { ms: number; tflops: number; rounds: number }, diff: number) => {
    rows.push({ name, ms: r.ms, tflops: r.tflops, rounds: r.rounds, maxDiffVsLibrary: diff });
    log(name.padEnd(34), r.ms.toFixed(3), "ms", r.tflops.toFixed(2), "TFLOP/s", "max |diff| vs library kernel", diff.toExponential(2));
  };
  const ref = await time(dev, inv, base);
  record("library kernel", ref, 0);
  const variant = (name: string, source: string): KernelArtifact => ({ ...base, source, specHash: `${base.specHash}-${name.replace(/\W+/g, "-")}` });
  if (args.experiments) {
    const set = EXPERIMENT_SETS[args.experiments];
    if (!set) throw new Error(`--experiments: no set "${args.experiments}" (sets: ${Object.keys(EXPERIMENT_SETS).join(", ")})`);
    // A fresh device per run: its output buffer starts zeroed, so unwritten elements show.
    const runOn = async (label: string, robust: boolean, source: string) => {
      const fresh = await requestFlexDevice({ backend: "vulkan", dawnOptions: [`${DAWN_SUBGROUP_MATRIX_OPTIONS[0]}${robust ? "" : ",disable_robustness"}`] });
      try {
        return await time({ ...fresh, limits: { ...fresh.limits, subgroupMatrix: dev.limits.subgroupMatrix } }, inv, variant(label, source));
      } finally {
        fresh.device.destroy();
      }
    };
    for (const [name, robust, edit] of set) {
      const source = edit(base.source);
      if (name !== "library kernel" && source === base.source) { log(name, "did not apply"); continue; }
      const label = `${name}, robustness ${robust ? "on" : "off"}`;
      try {
        // "down": the reference is the same edit with robustness on.
        const against = SELF_REFERENCED.has(args.experiments) ? await runOn(`${name}, robustness on`, true, source) : ref;
        if (against !== ref) record(`${name}, robustness on`, against, maxDiff(against.out, ref.out));
        const u = await runOn(label, robust, source);
        const bad = describeDiff(u.out, against.out);
        record(label, u, maxDiff(u.out, against.out));
        log("  ", JSON.stringify(bad));
        rows.push({ name: `${label}: differences`, ...bad });
      } catch (e) {
        log(label, "failed:", String(e).slice(0, 400));
        rows.push({ name: label, error: String(e).slice(0, 2000) });
      }
    }
    const p = await time(unsafe, inv, plain);
    record("plain default, robustness off", p, maxDiff(p.out, ref.out));
    writeFileSync(join(args.out!, "bisect.json"), JSON.stringify({ command: process.argv.join(" "), device: dev.description, n: N, d: D, batch: B, heads: H, rows }, null, 1));
    return;
  }
  let all = base.source;
  for (const [name, edit] of Object.entries(EDITS)) {
    const source = edit(base.source);
    if (source === base.source) { log(name, "did not apply"); continue; }
    all = edit(all);
    const r = await time(dev, inv, variant(name, source));
    record(name, r, maxDiff(r.out, ref.out));
  }
  const r = await time(dev, inv, variant("all edits", all));
  record("all edits", r, maxDiff(r.out, ref.out));
  const u = await time(unsafe, inv, base);
  record("library kernel, robustness off", u, maxDiff(u.out, ref.out));
  const p = await time(dev, inv, plain);
  record(`plain default ${JSON.stringify(plain.config.options)}`, p, maxDiff(p.out, ref.out));
  const again = await time(dev, inv, base);
  record("library kernel again", again, maxDiff(again.out, ref.out));
  writeFileSync(join(args.out!, "bisect.json"), JSON.stringify({ command: process.argv.join(" "), device: dev.description, n: N, d: D, batch: B, heads: H, rows }, null, 1));
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
