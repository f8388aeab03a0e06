/**
 * Research harness (GPU machine): why does the library's subgroupMatrix kernel run noop d=128 at
 * ~26 TFLOP/s when the probe's kernel of the same shape runs ~32 (results/wgsl-h200.md, last
 * section)? Times the generated shader beside copies with one difference each removed by a text
 * edit (the staging bounds checks, the kv-bounds block, the tile-loop break, the reversed query
 * tile order), and with Dawn's robustness off. Each copy's output is compared with the unedited
 * kernel's (correct on the conformance suite); the plain default config runs as the reference.
 *
 *   node wgsl-matrix-bisect.mjs --out DIR   (bundled like wgsl-bench, see device/wgsl/README.md)
 * `--unsafe-only` times only the robustness-off runs and says how their outputs differ (NaN count,
 * elements off by more than 1e-3, first rows); written after the device time ran out, not yet run.
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
    /** Only the robustness-off run, with a description of how its output differs. */
    "unsafe-only": { type: "boolean", default: false },
  },
});
const log = (...x: unknown[]) => console.log(new Date().toISOString().slice(11, 23), ...x);

const N = Number(args.n);
const D = 128;
const [B, H] = [16384 / N, 16];

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

/** NaN count, elements off by more than 1e-3, and the (batch·head, row) of the first ones. */
function describeDiff(a: Float32Array, ref: Float32Array) {
  let nan = 0, off = 0;
  const rows = new Set<string>();
  for (let i = 0; i < a.length; i++) {
    const missing = Number.isNaN(a[i]);
    if (missing) nan++;
    else if (Math.abs(a[i] - ref[i]) > 1e-3) off++;
    if ((missing || Math.abs(a[i] - ref[i]) > 1e-3) && rows.size < 12) rows.add(`${Math.floor(i / (N * D))}:${Math.floor(i / D) % N}`);
  }
  return { elements: a.length, nan, off, firstRows: [...rows] };
}

async function main() {
  const dev = await requestFlexDevice({ backend: "vulkan", dawnOptions: DAWN_SUBGROUP_MATRIX_OPTIONS });
  // requestFlexDevice withholds subgroupMatrix when robustness is off (the wrong outputs this
  // harness found); the diagnosis runs it there on purpose.
  const unsafeDevice = await requestFlexDevice({ backend: "vulkan", dawnOptions: [`${DAWN_SUBGROUP_MATRIX_OPTIONS[0]},disable_robustness`] });
  const unsafe: FlexDevice = { ...unsafeDevice, limits: { ...unsafeDevice.limits, subgroupMatrix: dev.limits.subgroupMatrix } };
  log("device", dev.description, "subgroupMatrix", dev.limits.subgroupMatrix);
  // The benchmark's noop case, with wgsl-bench's inputs (call 9 ran with its own uniform [-2, 2) inputs, other seeds).
  const { inv } = invocation({ variant: "noop", n: N, batch: B, heads: H, d: D });
  const mma: KernelConfig = { blockM: 128, blockN: 16, numWarps: 8, numStages: 1, prescaleQk: false, options: { subgroupMatrix: true, workgroupSize: 256, vec4: true } };
  const base = artifactFor(inv, dev, { config: mma });
  const plain = artifactFor(inv, dev);
  const rows: Record<string, unknown>[] = [];
  const record = (name: string, r: { ms: number; tflops: number; rounds: number }, diff: number) => {
    rows.push({ name, ms: r.ms, tflops: r.tflops, rounds: r.rounds, maxDiffVsLibrary: diff });
    log(name.padEnd(34), r.ms.toFixed(3), "ms", r.tflops.toFixed(2), "TFLOP/s", "max |diff| vs library kernel", diff.toExponential(2));
  };
  const ref = await time(dev, inv, base);
  record("library kernel", ref, 0);
  if (args["unsafe-only"]) {
    for (const [name, device, artifact] of [["library kernel", unsafe, base], ["plain default", unsafe, plain]] as const) {
      const u = await time(device, inv, artifact);
      const bad = describeDiff(u.out, ref.out);
      record(`${name}, robustness off`, u, maxDiff(u.out, ref.out));
      log("  ", JSON.stringify(bad));
      rows.push({ name: `${name}, robustness off: differences`, ...bad });
    }
    writeFileSync(join(args.out!, "bisect.json"), JSON.stringify({ command: process.argv.join(" "), device: dev.description, n: N, d: D, batch: B, heads: H, rows }, null, 1));
    return;
  }
  const variant = (name: string, source: string): KernelArtifact => ({ ...base, source, specHash: `${base.specHash}-${name.replace(/\W+/g, "-")}` });
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
