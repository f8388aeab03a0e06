/**
 * Research harness (GPU machine) for the library's subgroupMatrix kernel, noop d=128. Times the
 * generated shader beside copies with one difference each removed by a text edit (the staging
 * bounds checks, the kv-bounds block, the tile-loop break, the reversed query tile order), and
 * with Dawn's robustness off. Each copy's output is compared with the unedited kernel's (correct
 * on the conformance suite); the library's default config for the device runs beside them (the plain
 * kernel until call 24, the sharedKV matrix kernel since). (Call 9 asked why
 * the kernel ran ~26 TFLOP/s against the probe's ~32; calls 10–19 found the answer, a workgroup
 * layout rule: results/wgsl-h200.md.)
 *
 *   node wgsl-matrix-bisect.mjs --out DIR   (bundled like wgsl-bench, see device/wgsl/README.md)
 * `--experiments layout` runs one of EXPERIMENT_SETS instead: source edits with Dawn's robustness
 * off (and on), each output described against the robust kernel's. `--check` compiles every
 * experiment's source on Dawn's null backend (no GPU) and stops.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { KernelArtifact, KernelConfig, KernelInvocation } from "@flexattn/template";
import { artifactFor, DAWN_SUBGROUP_MATRIX_OPTIONS, type FlexDevice, prepareWgsl, requestFlexDevice, timeWgsl } from "@flexattn/webgpu";
import { invocation, maxDiff } from "./wgsl-cases.js";

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
 * Source edits of the matrix kernel for `--experiments`, each run with Dawn's robustness off (and
 * some with it on). Calls 10–19 ran other sets (robustness, control, down, remat, branchfree,
 * atomics, layout) on the kernel as it was before its workgroup layout was fixed; they are in the
 * history of this file (commit 22d1945) and their results in results/wgsl-h200.md.
 */
const EXPERIMENT_EDITS: Record<string, (src: string) => string> = {
  // The layout that made every matrix kernel wrong on the H200: the flag as a 4-byte atomic
  // declared after the matrix arrays.
  "flag after the arrays": (s) => s
    .replace("var<workgroup> fa_rescale: array<atomic<u32>, 4>;\n", "")
    .replace(/(var<workgroup> fa_pp: [^\n]*\n)/, "$1var<workgroup> fa_rescale: atomic<u32>;\n")
    .replace(/&fa_rescale\[0\]/g, "&fa_rescale"),
  "no staging bounds checks": EDITS["no staging bounds checks"],
};
const combine = (...names: string[]) => (s: string) => names.reduce((t, n) => EXPERIMENT_EDITS[n](t), s);
type Experiment = [name: string, robust: boolean, edit: (s: string) => string];
const same = (s: string) => s;
/** The experiment sets, each output compared with the robust library kernel's. */
const EXPERIMENT_SETS: Record<string, Experiment[]> = {
  // Does the fixed kernel stay right without robustness, and does the old layout still break it?
  layout: [
    ["library kernel", false, same],
    ["no staging bounds checks", false, EXPERIMENT_EDITS["no staging bounds checks"]],
    ["flag after the arrays", false, EXPERIMENT_EDITS["flag after the arrays"]],
    ["flag after the arrays", true, EXPERIMENT_EDITS["flag after the arrays"]],
    ["flag after the arrays + no staging bounds checks", true, combine("flag after the arrays", "no staging bounds checks")],
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
  const unsafe = await requestFlexDevice({ backend: "vulkan", dawnOptions: [`${DAWN_SUBGROUP_MATRIX_OPTIONS[0]},disable_robustness`] });
  log("device", dev.description, "subgroupMatrix", dev.limits.subgroupMatrix);
  // The benchmark's noop case, with wgsl-bench's inputs (call 9 ran with its own uniform [-2, 2) inputs, other seeds).
  const { inv } = invocation({ variant: "noop", n: N, batch: B, heads: H, d: D });
  const base = artifactFor(inv, dev, { config: MATRIX_CONFIG });
  const libraryDefault = artifactFor(inv, dev);
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
        return await time(fresh, inv, variant(label, source));
      } finally {
        fresh.device.destroy();
      }
    };
    for (const [name, robust, edit] of set) {
      const source = edit(base.source);
      if (name !== "library kernel" && source === base.source) { log(name, "did not apply"); continue; }
      const label = `${name}, robustness ${robust ? "on" : "off"}`;
      try {
        const u = await runOn(label, robust, source);
        const bad = describeDiff(u.out, ref.out);
        record(label, u, maxDiff(u.out, ref.out));
        log("  ", JSON.stringify(bad));
        rows.push({ name: `${label}: differences`, ...bad });
      } catch (e) {
        log(label, "failed:", String(e).slice(0, 400));
        rows.push({ name: label, error: String(e).slice(0, 2000) });
      }
    }
    const p = await time(unsafe, inv, libraryDefault);
    record(`library default ${JSON.stringify(libraryDefault.config.options)}, robustness off`, p, maxDiff(p.out, ref.out));
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
  const p = await time(dev, inv, libraryDefault);
  record(`library default ${JSON.stringify(libraryDefault.config.options)}`, p, maxDiff(p.out, ref.out));
  const again = await time(dev, inv, base);
  record("library kernel again", again, maxDiff(again.out, ref.out));
  writeFileSync(join(args.out!, "bisect.json"), JSON.stringify({ command: process.argv.join(" "), device: dev.description, n: N, d: D, batch: B, heads: H, rows }, null, 1));
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
