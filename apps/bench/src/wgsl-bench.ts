/**
 * WGSL benchmark for the GPU machine (Dawn in Node): times what a user calls. Every protocol case
 * runs `flexAttention(q, k, v, { backend, blockMask, scoreMod })` with the config the library
 * resolves by itself, and records `lastFlexAttentionRun()` (backend, device, fallback) beside its
 * figures:
 * - kernel time: the artifact that call ran, dispatched alone (no upload, no readback) and timed
 *   with timestamp queries (@flexattn/webgpu timeWgsl);
 * - call time: the whole flexAttention call (validation, upload, dispatch, readback).
 * Before them, the conformance suite on the device's default configs. Writes wgsl-bench.json and
 * the document layouts the PyTorch anchors reuse (docs-N.json) to --out.
 *
 *   node wgsl-bench.mjs --out DIR [--backend auto|wgsl] [--subgroup-matrix] [--quick] [--skip-conformance]
 *     [--research-sweep K]
 *
 * --research-sweep K is research, never a headline: it times the backend's first K declared
 * config candidates per case (what a tuner would try), each on its own pipeline.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  type BackendChoice, type KernelArtifact, type KernelConfig, type LastRun, type PreparedCall, compile, compileCacheStats, findExecutor,
  flexAttention, lastFlexAttentionRun, prepareCall, randomDocumentIds,
} from "flexattn";
import { formatReport, runConformance } from "@flexattn/template";
import { wgslConfigCandidates } from "@flexattn/codegen-wgsl";
import { DAWN_SUBGROUP_MATRIX_OPTIONS, type FlexDevice, defaultFlexDevice, prepareWgsl, runWgsl, timeWgsl, vec4Compatible } from "@flexattn/webgpu";
import { type Case, DOCS, DOCS_SEED, type PublicCall, VARIANTS, publicCall, spotCheck } from "./wgsl-cases.js";

const { values: args } = parseArgs({
  options: {
    out: { type: "string", default: "wgsl-out" },
    /** The flexAttention backend choice: "auto" (what a user gets by default) or "wgsl". */
    backend: { type: "string", default: "auto" },
    /** Set FLEXATTN_DAWN_OPTIONS to Dawn's f16 subgroup-matrix toggles, as a user would (unless already set). */
    "subgroup-matrix": { type: "boolean", default: false },
    /** Tiny shapes, to try the harness without a GPU (FLEXATTN_WEBGPU_BACKEND=opengles, --backend wgsl). */
    quick: { type: "boolean", default: false },
    "skip-conformance": { type: "boolean", default: false },
    /** Timed flexAttention calls per case, after the first (which compiles). */
    calls: { type: "string", default: "3" },
    "research-sweep": { type: "string" },
  },
});
const BACKEND = args.backend as BackendChoice;
if (BACKEND !== "auto" && BACKEND !== "wgsl") throw new Error(`--backend must be auto or wgsl, got ${BACKEND}`);
if (args["subgroup-matrix"]) process.env.FLEXATTN_DAWN_OPTIONS ||= DAWN_SUBGROUP_MATRIX_OPTIONS.join(" ");
const QUICK = args.quick!;
const CALLS = Number(args.calls);
const SWEEP_K = args["research-sweep"] === undefined ? 0 : Number(args["research-sweep"]);
mkdirSync(args.out!, { recursive: true });
const log = (...x: unknown[]) => console.log(new Date().toISOString().slice(11, 23), ...x);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** A config as one readable line: tile, workgroup size, then every backend option. */
const configLabel = (c: KernelConfig) =>
  [`${c.blockM}x${c.blockN}`, ...Object.entries(c.options ?? {}).map(([k, v]) => (v === true ? k : `${k}=${v}`))].join(" ");

const flopsOf = (c: Case, density: number) => 4 * c.batch * c.heads * c.n * c.n * c.d * density;

/**
 * The artifact a flexAttention call just ran, from the public API. compile() must serve it from
 * its cache (nothing generated): a kernel flexAttention did not run is never timed.
 *
 * TODO(issue 17): read the config from `lastFlexAttentionRun().config` (or flexattn's
 * resolveConfig) once flexattn exposes it; until then it is the WGSL executor's defaultConfig,
 * which flexAttention passes to the same spec builder that compile() uses.
 */
async function artifactRun(call: PublicCall, prepared: PreparedCall, run: LastRun): Promise<KernelArtifact> {
  const fromRun = (run as LastRun & { config?: KernelConfig }).config;
  const config = fromRun ?? (await findExecutor("wgsl"))?.defaultConfig?.(prepared.problem, prepared.sparseBlock, prepared.invocation);
  const before = compileCacheStats().generated;
  const artifact = compile(call.options, prepared.problem, { backend: "wgsl", config });
  if (compileCacheStats().generated !== before) {
    throw new Error(
      `the config read back (${config ? configLabel(config) : "the backend default"}) is not the one flexAttention ran; ` +
        "the bench must take its config from the library (lastFlexAttentionRun().config or resolveConfig)",
    );
  }
  return artifact;
}

interface Row extends Case {
  density: number;
  /** lastFlexAttentionRun() after the case's calls (fellBack null when it did not fall back). */
  run: { backend: LastRun["backend"]; device: string; fellBack: string | null };
  config?: string;
  kernelMs?: number;
  tflops?: number;
  method?: string;
  rounds?: number;
  firstCallMs: number;
  callMs: number;
  callTflops: number;
  spotError: number;
}

async function measure(c: Case): Promise<Row> {
  const call = publicCall(c);
  const density = call.blockMask.density();
  const options = { ...call.options, backend: BACKEND };
  const t0 = performance.now();
  const out = await flexAttention(call.q, call.k, call.v, options);
  const firstCallMs = performance.now() - t0;
  const prepared = prepareCall(call.q, call.k, call.v, options);
  prepared.invocation.out.set(out.data);
  const spotError = spotCheck(prepared.invocation);
  const callTimes: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const t = performance.now();
    await flexAttention(call.q, call.k, call.v, options);
    callTimes.push(performance.now() - t);
  }
  const last = lastFlexAttentionRun()!;
  const run = { backend: last.backend, device: last.device, fellBack: last.fellBack ?? null };
  const callMs = median(callTimes);
  const row: Row = { ...c, density, run, firstCallMs, callMs, callTflops: flopsOf(c, density) / (callMs * 1e-3) / 1e12, spotError };
  if (run.backend !== "wgsl") return row;
  const artifact = await artifactRun(call, prepared, last);
  const dev = await defaultFlexDevice();
  if (run.device !== `WebGPU: ${dev.description}`) throw new Error(`flexAttention ran on ${run.device}, the timer has ${dev.description}`);
  const kernel = await prepareWgsl(prepared.invocation, { device: dev, artifact });
  // The first timed block of a pipeline can still run slow (timing.ts): keep the second.
  await timeWgsl(kernel, { iterations: 10, warmup: 2, warmupMs: 300 });
  const t = await timeWgsl(kernel, { iterations: 10, warmup: 2, warmupMs: 300 });
  return {
    ...row, config: configLabel(artifact.config), kernelMs: t.medianMs, tflops: flopsOf(c, density) / (t.medianMs * 1e-3) / 1e12,
    method: t.method, rounds: t.rounds,
  };
}

/** Research: the backend's first K candidates for a case, each prepared, spot-checked and timed. */
async function researchSweep(dev: FlexDevice, c: Case, k: number) {
  const call = publicCall(c);
  const density = call.blockMask.density();
  const prepared = prepareCall(call.q, call.k, call.v, call.options);
  const inv = prepared.invocation;
  const candidates = wgslConfigCandidates(prepared.problem, prepared.sparseBlock, { limits: dev.limits, vec4: vec4Compatible(inv) }).slice(0, k);
  const rows = [];
  for (const config of candidates) {
    try {
      const kernel = await prepareWgsl(inv, { device: dev, config });
      inv.out.fill(Number.NaN);
      await kernel.run();
      const spotError = spotCheck(inv);
      await timeWgsl(kernel, { iterations: 5, warmup: 2, warmupMs: 300 });
      const t = await timeWgsl(kernel, { iterations: 5, warmup: 2, warmupMs: 300 });
      rows.push({ ...c, density, config: configLabel(config), kernelMs: t.medianMs, tflops: flopsOf(c, density) / (t.medianMs * 1e-3) / 1e12, spotError });
      log("research", c.variant, c.d, configLabel(config), (flopsOf(c, density) / (t.medianMs * 1e-3) / 1e12).toFixed(2), "TFLOP/s");
    } catch (e) {
      rows.push({ ...c, density, config: configLabel(config), failed: (e as Error).message });
      log("research", c.variant, c.d, configLabel(config), "failed:", (e as Error).message);
    }
  }
  return rows;
}

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
  const rows: (Row | (Case & { failed: string }))[] = [];
  for (const c of cases) {
    try {
      const row = await measure(c);
      rows.push(row);
      log(
        "bench", c.variant, c.n, c.d, row.run.backend, row.run.fellBack ? `(fell back: ${row.run.fellBack})` : "",
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
    for (const c of cases.filter((x) => x.n === N4)) research.push(...(await researchSweep(dev, c, SWEEP_K)));
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
