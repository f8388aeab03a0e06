/**
 * Research harness (GPU machine): why does the library's subgroupMatrix kernel run noop d=128 at
 * ~26 TFLOP/s when the probe's kernel of the same shape runs ~32 (results/wgsl-h200.md, last
 * section)? Times the generated shader beside copies with one difference each removed by a text
 * edit (the staging bounds checks, the kv-bounds block, the tile-loop break, the reversed query
 * tile order), and with Dawn's robustness off. Each copy's output is compared with the unedited
 * kernel's (correct on the conformance suite); the plain default config runs as the reference.
 *
 *   node wgsl-matrix-bisect.mjs --out DIR   (bundled like wgsl-bench, see device/wgsl/README.md)
 * `--experiments robustness|control` runs one of EXPERIMENT_SETS instead: source edits with Dawn's
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
  const prepared = await prepareWgsl(inv, { device: dev, artifact });
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
  // No barrier dependencies on the loads (the original reordering bug, for comparison).
  "no load deps": (s) => s.replace(/ \+ fa_d(q\d+|k|p|r\d+)(?= \+ \d+u, \d+u\))/g, ""),
};
const combine = (...names: string[]) => (s: string) => names.reduce((t, n) => EXPERIMENT_EDITS[n](t), s);
type Experiment = [name: string, robust: boolean, edit: (s: string) => string];
const same = (s: string) => s;
/** The experiment sets: `robustness` ran as call 10, `control` as call 11 (results/wgsl-h200.md). */
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
    for (const [name, robust, edit] of set) {
      const source = edit(base.source);
      if (name !== "library kernel" && source === base.source) { log(name, "did not apply"); continue; }
      // A fresh device per run: its output buffer starts zeroed, so unwritten elements show.
      const fresh = await requestFlexDevice({ backend: "vulkan", dawnOptions: [`${DAWN_SUBGROUP_MATRIX_OPTIONS[0]}${robust ? "" : ",disable_robustness"}`] });
      const on: FlexDevice = { ...fresh, limits: { ...fresh.limits, subgroupMatrix: dev.limits.subgroupMatrix } };
      const label = `${name}, robustness ${robust ? "on" : "off"}`;
      try {
        const u = await time(on, inv, variant(label, source));
        const bad = describeDiff(u.out, ref.out);
        record(label, u, maxDiff(u.out, ref.out));
        log("  ", JSON.stringify(bad));
        rows.push({ name: `${label}: differences`, ...bad });
      } catch (e) {
        log(label, "failed:", String(e).slice(0, 400));
        rows.push({ name: label, error: String(e).slice(0, 2000) });
      }
      fresh.device.destroy();
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
