/**
 * WGSL benchmark for the GPU machine (Dawn in Node): times what a user calls. Every protocol case
 * runs `flexAttention(q, k, v, { backend, blockMask, scoreMod })` with the config the library
 * resolves by itself, and records `lastFlexAttentionRun()` (backend, device, fallback, config and
 * its source) beside its figures:
 * - kernel time: the artifact that call ran, dispatched alone (no upload, no readback) and timed
 *   with timestamp queries (@flexattn/webgpu timeWgsl);
 * - call time: the whole flexAttention call (validation, upload, dispatch, readback).
 * Before them, the conformance suite (runWgsl, the configs the library resolves for the device).
 * Writes wgsl-bench.json and the document layouts the PyTorch anchors reuse (docs-N.json) to --out.
 *
 *   node wgsl-bench.mjs --out DIR [--backend auto|wgsl] [--quick] [--skip-conformance] [--research-sweep K]
 *                       [--variants noop,causal] [--calls K]
 *
 * --research-sweep K is research, never a headline: it times the backend's first K declared
 * config candidates per case (what a tuner would try), each on its own pipeline.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type BackendChoice, randomDocumentIds } from "flexattn";
import { formatReport, runConformance } from "@flexattn/template";
import { defaultFlexDevice, runWgsl } from "@flexattn/webgpu";
import { type Case, DOCS, DOCS_SEED, VARIANTS } from "./wgsl-cases.js";
import { type Row, measureCase, researchSweep } from "./wgsl-measure.js";

const { values: args } = parseArgs({
  options: {
    out: { type: "string", default: "wgsl-out" },
    /** The flexAttention backend choice: "auto" (what a user gets by default) or "wgsl". */
    backend: { type: "string", default: "auto" },
    /** Tiny shapes, to try the harness without a GPU (FLEXATTN_WEBGPU_BACKEND=opengles, --backend wgsl). */
    quick: { type: "boolean", default: false },
    "skip-conformance": { type: "boolean", default: false },
    /** Timed flexAttention calls per case, after the first (which compiles). */
    calls: { type: "string", default: "3" },
    "research-sweep": { type: "string" },
    /** Only these variants (comma-separated), e.g. for a quick check of one path; default: the protocol's. */
    variants: { type: "string" },
  },
});
const BACKEND = args.backend as BackendChoice;
if (BACKEND !== "auto" && BACKEND !== "wgsl") throw new Error(`--backend must be auto or wgsl, got ${BACKEND}`);
const QUICK = args.quick!;
const CALLS = Number(args.calls);
const SWEEP_K = args["research-sweep"] === undefined ? 0 : Number(args["research-sweep"]);
mkdirSync(args.out!, { recursive: true });
const log = (...x: unknown[]) => console.log(new Date().toISOString().slice(11, 23), ...x);

async function main() {
  const started = Date.now();
  const dev = await defaultFlexDevice();
  log("device", dev.description, JSON.stringify(dev.limits));
  const result: Record<string, unknown> = {
    command: process.argv.join(" "), date: new Date().toISOString(), backendChoice: BACKEND,
    env: { FLEXATTN_WEBGPU_BACKEND: process.env.FLEXATTN_WEBGPU_BACKEND ?? null, FLEXATTN_DAWN_OPTIONS: process.env.FLEXATTN_DAWN_OPTIONS ?? null },
    device: dev.description, limits: dev.limits, features: [...dev.features],
    method: "kernel: the artifact flexAttention ran, median of 10 dispatches (second timed block); call: median of whole flexAttention calls",
  };
  const save = () => writeFileSync(join(args.out!, "wgsl-bench.json"), JSON.stringify(result, null, 1));

  for (const n of [1024, 4096]) {
    const ids = randomDocumentIds(n, DOCS, DOCS_SEED);
    const lengths = Array.from({ length: DOCS }, (_, d) => ids.filter((x) => x === d).length);
    writeFileSync(join(args.out!, `docs-${n}.json`), JSON.stringify(lengths));
  }

  if (!args["skip-conformance"]) {
    const t0 = Date.now();
    const report = await runConformance({ name: `wgsl (${dev.backend})`, run: (inst) => runWgsl(inst, { device: dev }).then(() => undefined) });
    log(formatReport(report));
    result.conformance = { passed: report.passed, failed: report.failed, seconds: (Date.now() - t0) / 1000, results: report.results };
    save();
  }

  const N4 = QUICK ? 512 : 4096;
  const N1 = QUICK ? 256 : 1024;
  const shape = (n: number, d: number, variant: string): Case =>
    ({ variant, n, d, heads: QUICK ? 2 : 16, batch: QUICK ? 1 : 16384 / n });
  const cases: Case[] = [];
  for (const d of [64, 128]) {
    for (const variant of ["causal", "noop"]) cases.push(shape(N1, d, variant));
    for (const variant of Object.keys(VARIANTS)) cases.push(shape(N4, d, variant));
  }
  const only = args.variants?.split(",");
  const rows: (Row | (Case & { failed: string }))[] = [];
  for (const c of only ? cases.filter((x) => only.includes(x.variant)) : cases) {
    try {
      const row = await measureCase(c, { backend: BACKEND, calls: CALLS });
      rows.push(row);
      log(
        "bench", c.variant, c.n, c.d, row.run.backend, row.config ?? "", row.run.configSource ?? "", row.run.fellBack ? `(fell back: ${row.run.fellBack})` : "",
        row.tflops?.toPrecision(3) ?? "–", "TFLOP/s kernel,", row.callMs.toFixed(1), "ms call, spot err", row.spotError.toExponential(2),
      );
    } catch (e) {
      rows.push({ ...c, failed: (e as Error).message });
      log("bench", c.variant, c.n, c.d, "failed:", (e as Error).message);
    }
    result.rows = rows;
    save();
  }

  if (SWEEP_K > 0) {
    const research = [];
    for (const c of cases.filter((x) => x.n === N4)) research.push(...(await researchSweep(dev, c, SWEEP_K, log)));
    result.research = { note: `the backend's first ${SWEEP_K} declared candidates per case; not what a user's call runs`, rows: research };
    save();
  }
  result.seconds = (Date.now() - started) / 1000;
  save();
  log("done in", result.seconds, "s");
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
