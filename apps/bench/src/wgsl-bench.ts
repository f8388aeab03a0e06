/**
 * WGSL benchmark for the GPU machine (Dawn in Node, Vulkan): the conformance suite, spot checks
 * at benchmark sizes against a float64 reference, a config sweep, then the performance
 * protocol in f32. Writes JSON (and the doc-id layouts the PyTorch anchors reuse) to --out.
 *
 *   node wgsl-bench.mjs --out DIR [--quick] [--backend vulkan|opengles] [--unsafe] [--skip-conformance | --conformance-only]
 *     [--skip-sweep | --repeat-sweep | --configs EARLIER/wgsl-bench.json] [--subgroup-matrix] [--wide-d64]
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { randomDocumentIds } from "@flexattn/masks";
import { type KernelConfig, formatReport, runConformance } from "@flexattn/template";
import { wgslConfigCandidates, wgslDefaultConfig } from "@flexattn/codegen-wgsl";
import {
  DAWN_SUBGROUP_MATRIX_OPTIONS, type DawnBackend, type FlexDevice, prepareWgsl, requestFlexDevice, runWgsl, timeWgsl, vec4Compatible,
} from "@flexattn/webgpu";
import { type Case, DOCS_SEED, VARIANTS, invocation, spotCheck } from "./wgsl-cases.js";

const { values: args } = parseArgs({
  options: {
    out: { type: "string", default: "wgsl-out" },
    quick: { type: "boolean", default: false },
    backend: { type: "string", default: "vulkan" },
    unsafe: { type: "boolean", default: false },
    "skip-conformance": { type: "boolean", default: false },
    /** Stop after the conformance suite (e.g. to check a --conformance-config on the GPU). */
    "conformance-only": { type: "boolean", default: false },
    "skip-sweep": { type: "boolean", default: false },
    /** Sweep again on a fresh device (new pipelines), variants in reverse order: is a config's speed reproducible? */
    "repeat-sweep": { type: "boolean", default: false },
    /** Protocol configs per variant from an earlier run's wgsl-bench.json (its chosenConfigs); implies --skip-sweep. */
    configs: { type: "string" },
    /** The protocol runs the library's default config for the device (after any sweep), not each variant's best. */
    "protocol-defaults": { type: "boolean", default: false },
    /**
     * Request f16 subgroup matrices (Dawn toggles), run the conformance suite on subgroupMatrix
     * configs wherever one applies, and sweep them beside the plain ones.
     */
    "subgroup-matrix": { type: "boolean", default: false },
    /** With --subgroup-matrix: sweep SWEEP_MMA_SHORT only (no plain configs). */
    "matrix-only": { type: "boolean", default: false },
    /** Sweep head dim 64 only, over WIDE_64 (shapes and options the H100-pruned list no longer times). */
    "wide-d64": { type: "boolean", default: false },
    /**
     * With --subgroup-matrix: the conformance suite's configs (JSON), e.g. '{"blockN":32,"options":{"shareKV":true}}':
     * options forced, and the tile of each case's first matching candidate where one fits (else its first matrix candidate).
     */
    "conformance-config": { type: "string" },
  },
});
if (args["conformance-only"] && args["skip-conformance"]) throw new Error("--conformance-only and --skip-conformance leave nothing to run");
mkdirSync(args.out!, { recursive: true });
const QUICK = args.quick!;
const log = (...x: unknown[]) => console.log(new Date().toISOString().slice(11, 23), ...x);

// ---- configs ------------------------------------------------------------------------------

function cfg(blockM: number, blockN: number, T: number, rm: number, extra: Record<string, number | boolean> = {}): KernelConfig {
  return {
    blockM, blockN, numWarps: Math.max(1, T / 32), numStages: 1, prescaleQk: false,
    options: { rowsPerThread: rm, workgroupSize: T, vec4: true, ...extra },
  };
}
const label = (c: KernelConfig) => {
  const o = c.options ?? {};
  const tanh = o.tanh === "guarded" && "tanhG";
  if (o.subgroupMatrix) {
    // prefetchV applies only where V is staged after Q·Kᵀ (sharedKV).
    const flags = [o.shareKV && "sharedKV", o.shareKV && o.prefetchV === false && !o.prefetchNext && "noPrefetchV", o.prefetchNext && "prefetchNext",
      // The bank-conflict layouts are defaults since call 34: named only when turned off.
      o.padS === false && "unpaddedS", o.staggerS === false && "noStaggerS", o.staggerSplit === false && "noStaggerSplit", tanh];
    return [`${c.blockM}x${c.blockN} T${o.workgroupSize} mma`, ...flags.filter(Boolean)].join(" ");
  }
  const flags = [o.subgroups && "sg", o.qGlobal && "qG", o.doubleBuffer && "db", o.shareKV && "sharedKV", o.prefetchV === false && "noPrefetchV", c.prescaleQk && "pre", o.unrollD && `uD${o.unrollD}`, o.unrollN && `uN${o.unrollN}`, tanh];
  return [`${c.blockM}x${c.blockN} T${o.workgroupSize} RM${o.rowsPerThread}`, ...flags.filter(Boolean)].join(" ");
};

/**
 * Sweep candidates per head dim (all fit 48 KB of workgroup memory), from the H100 sweeps
 * (apps/bench/results/wgsl-h100-raw): 128-row tiles with Q read through the cache and subgroup
 * row reductions won there; 128×32/T128/RM8, no-subgroup and 64-row configs lost by 2× or more
 * and are no longer timed.
 */
const sg = { subgroups: true, qGlobal: true };
const SWEEP: Record<number, KernelConfig[]> = {
  64: [cfg(128, 32, 256, 4, sg), cfg(128, 32, 256, 4, { ...sg, prefetchV: false }), cfg(128, 16, 256, 4, sg)],
  128: [
    cfg(128, 16, 256, 4, { ...sg, prefetchV: false }), cfg(128, 16, 512, 2, sg),
    // 32-key tiles fit 48 KB only with K and Vᵀ in one array.
    cfg(128, 32, 256, 4, { ...sg, shareKV: true }), cfg(128, 32, 512, 2, { ...sg, shareKV: true }), cfg(128, 32, 512, 4, { ...sg, shareKV: true }),
  ],
};
/**
 * --wide-d64: the d=64 default's shape with each unroll and reduction option changed, and its
 * other thread shapes (the H100 sweeps pruned these before timing was settled). Wider key tiles,
 * double buffering and Q staged in workgroup memory do not fit 48 KB at this shape.
 */
const WIDE_64: KernelConfig[] = [
  ...SWEEP[64],
  cfg(128, 32, 256, 4, { ...sg, unrollD: 16 }), cfg(128, 32, 256, 4, { ...sg, unrollD: 8 }),
  cfg(128, 32, 256, 4, { ...sg, unrollN: 4 }), cfg(128, 32, 256, 4, { ...sg, unrollN: 2 }),
  cfg(128, 32, 256, 4, { ...sg, prefetchV: false, unrollD: 16 }),
  cfg(128, 32, 512, 2, sg), cfg(128, 32, 128, 8, sg),
];
const mma = (blockM: number, blockN: number, T: number, extra: Record<string, number | boolean | string> = {}): KernelConfig => ({
  blockM, blockN, numWarps: T / 32, numStages: 1, prescaleQk: false, options: { subgroupMatrix: true, workgroupSize: T, vec4: true, ...extra },
});
/** subgroupMatrix configs (--subgroup-matrix): 16 or 32 query rows per subgroup, 16 keys per tile. */
const SWEEP_MMA: Record<number, KernelConfig[]> = {
  64: [mma(128, 16, 128), mma(128, 16, 256), mma(64, 16, 64), mma(128, 32, 128)],
  128: [mma(128, 16, 256), mma(128, 16, 128), mma(64, 16, 128), mma(64, 16, 64)],
};
/**
 * --matrix-only: V staged in K's place (shareKV, the default since call 24) and the next tile's K
 * and V a tile ahead (prefetchNext, the default since calls 30 and 34), on 16- and 32-key tiles, with
 * and without the bank-conflict staggers (staggerS + staggerSplit, defaults since call 34; S rows
 * are padded in all, padS). Call 34 swept these with the staggers named when on, before they were
 * the defaults.
 */
const kvShared = { shareKV: true };
const unstaggered = { staggerS: false, staggerSplit: false };
const SWEEP_MMA_SHORT: Record<number, KernelConfig[]> = {
  // 64- and 32-row tiles: slower on all but noop (call 30). Without shareKV: 2–5% slower (call 24).
  // tanhG (the builtin tanh): softcap 23% slower (call 24).
  64: [16, 32].flatMap((blockN) => [unstaggered, {}].map((x) => mma(128, blockN, 256, { ...kvShared, prefetchNext: true, ...x }))),
  128: [mma(128, 16, 256, kvShared), mma(128, 16, 256, { ...kvShared, prefetchNext: true, ...unstaggered }), mma(128, 16, 256, { ...kvShared, prefetchNext: true })],
};
/** A swept figure below this fraction of its variant's best is timed again on the same pipeline. */
const RETIME_BELOW = 0.8;
/**
 * Every protocol variant is swept: the protocol then runs each (variant, head dim) with its own
 * best config, which is what the autotuner does; the config with the best geometric mean over
 * the variants is reported too, as the best single config.
 */
const SWEEP_VARIANTS = Object.keys(VARIANTS);

// ---- running -------------------------------------------------------------------------------

interface Row {
  variant: string; n: number; batch: number; heads: number; d: number; density: number; config: string;
  ms: number; tflops: number; method: string; rounds?: number; spotError?: number; device?: string;
}

async function measure(dev: FlexDevice, c: Case, config: KernelConfig, check: boolean, iterations = 10, settle = false): Promise<Row> {
  const { inv, density } = invocation(c);
  // Unchecked figures (the sweep) time the kernel without reading its output: no spot check first.
  const prepared = await prepareWgsl(inv, { device: dev, config, verify: check ? "auto" : "never" });
  let spotError: number | undefined;
  if (check) {
    inv.out.fill(NaN);
    await prepared.run();
    spotError = spotCheck(inv);
  }
  // Timed rounds repeat until the median settles: GPU clocks ramp for a few hundred ms after idle.
  // A pipeline just created can still run 1.3–3.5× slow for a while after that (call 24: every slow
  // swept figure ran at full speed when timed again on the same pipeline); `settle` times it once
  // untimed first.
  if (settle) await timeWgsl(prepared, { iterations, warmup: 2, warmupMs: 300 });
  const t = await timeWgsl(prepared, { iterations, warmup: 2, warmupMs: 300 });
  const flops = 4 * c.batch * c.heads * c.n * c.n * c.d * density;
  return {
    ...c, density, config: label(config), ms: t.medianMs, tflops: flops / (t.medianMs * 1e-3) / 1e12, method: t.method, rounds: t.rounds,
    ...(spotError !== undefined ? { spotError } : {}),
  };
}

const shapes = (n: number, d: number): Case => {
  const heads = QUICK ? 2 : 16;
  const batch = QUICK ? 1 : 16384 / n;
  return { variant: "", n, batch, heads, d };
};

async function main() {
  const started = Date.now();
  const MMA = args["subgroup-matrix"]!;
  const dawnOptions = MMA ? DAWN_SUBGROUP_MATRIX_OPTIONS : [];
  const dev = await requestFlexDevice({ backend: args.backend as DawnBackend, dawnOptions });
  if (MMA && !dev.limits.subgroupMatrix) {
    const info = dev.adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: { componentType: string; resultComponentType: string; M: number; N: number; K: number }[] };
    const configs = (info.subgroupMatrixConfigs ?? []).map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(", ");
    throw new Error(`--subgroup-matrix: no f16 subgroup matrices on ${dev.description} (subgroups ${info.subgroupMinSize}..${info.subgroupMaxSize}; matrix configs: ${configs || "none"})`);
  }
  log("device", dev.description, JSON.stringify(dev.limits), [...dev.features].join(","));
  const result: Record<string, unknown> = {
    command: process.argv.join(" "), date: new Date().toISOString(), device: dev.description,
    limits: dev.limits, features: [...dev.features],
  };
  const save = () => writeFileSync(join(args.out!, "wgsl-bench.json"), JSON.stringify(result, null, 1));

  // Document layouts for the PyTorch side: the same documents, as lengths.
  for (const n of [1024, 4096]) {
    const ids = randomDocumentIds(n, 8, DOCS_SEED);
    const lengths = Array.from({ length: 8 }, (_, d) => ids.filter((x) => x === d).length);
    writeFileSync(join(args.out!, `docs-${n}.json`), JSON.stringify(lengths));
  }

  if (!args["skip-conformance"]) {
    const t0 = Date.now();
    const wanted = JSON.parse(args["conformance-config"] ?? "{}") as Partial<Pick<KernelConfig, "blockM" | "blockN" | "options">>;
    if (args["conformance-config"]) result.conformanceConfig = wanted;
    // With --subgroup-matrix every case that a subgroupMatrix config fits runs on one.
    const onMatrix: string[] = [];
    const configFor = (inst: Parameters<typeof runWgsl>[0]) => {
      if (!MMA) return undefined;
      const sparseBlock = inst.blockMask.blockSize as [number, number];
      const candidates = wgslConfigCandidates(inst.problem, sparseBlock, { limits: dev.limits, vec4: vec4Compatible(inst), options: wanted.options })
        .filter((c) => c.options?.subgroupMatrix);
      const config = candidates.find((c) => (wanted.blockM ?? c.blockM) === c.blockM && (wanted.blockN ?? c.blockN) === c.blockN) ?? candidates[0];
      if (config) onMatrix.push(label(config));
      return config;
    };
    const report = await runConformance({ name: `wgsl (${dev.backend})`, run: (inst) => runWgsl(inst, { device: dev, config: configFor(inst) }).then(() => undefined) });
    log(formatReport(report));
    if (MMA) log(`conformance: ${onMatrix.length} of ${report.results.length} cases on subgroupMatrix configs`);
    result.conformance = { passed: report.passed, failed: report.failed, seconds: (Date.now() - t0) / 1000, results: report.results, ...(MMA ? { onSubgroupMatrix: onMatrix } : {}) };
    save();
  }
  if (args["conformance-only"]) return;

  const N4 = QUICK ? 512 : 4096;
  const N1 = QUICK ? 256 : 1024;
  // Before (or without) the sweep: the library's default for this device.
  const fallback = (d: number, subgroupMatrix = dev.limits.subgroupMatrix) =>
    wgslDefaultConfig(invocation({ ...shapes(N4, d), variant: "causal" }).inv.problem, [128, 128], { limits: { ...dev.limits, subgroupMatrix } });
  const defaults: Record<number, KernelConfig> = { 64: fallback(64), 128: fallback(128) };
  const best: Record<number, KernelConfig> = { ...defaults };
  result.defaults = { 64: label(defaults[64]), 128: label(defaults[128]) };
  // Dawn without its robustness transform (bounds clamping of array accesses): trusted shaders only.
  const fast = args.unsafe
    ? await requestFlexDevice({ backend: args.backend as DawnBackend, dawnOptions: [`${MMA ? DAWN_SUBGROUP_MATRIX_OPTIONS[0] : "enable-dawn-features=allow_unsafe_apis"},disable_robustness`] })
    : null;
  const sweep: (Row & { robustness: boolean; pass?: number; retime?: boolean })[] = [];
  /** Per (variant, head dim): the fastest swept config, what the autotuner would pick. */
  const bestPer = new Map<string, { config: KernelConfig; ms: number }>();
  const perKey = (variant: string, d: number) => `${variant}:${d}`;
  /** A first-pass figure, first or timed again, takes its variant's pick if it is the fastest yet. */
  const offer = (variant: string, d: number, config: KernelConfig, ms: number) => {
    const key = perKey(variant, d);
    if (ms < (bestPer.get(key)?.ms ?? Infinity)) bestPer.set(key, { config, ms });
  };
  const runSweep = async (device: FlexDevice, into: Record<number, KernelConfig>, robustness: boolean, pass = 1) => {
    const variants = pass === 1 ? SWEEP_VARIANTS : [...SWEEP_VARIANTS].reverse();
    for (const d of args["wide-d64"] ? [64] : [64, 128]) {
      let bestScore = Infinity;
      const plain = args["wide-d64"] ? WIDE_64 : SWEEP[d];
      const configs = !MMA ? plain : args["matrix-only"] ? SWEEP_MMA_SHORT[d] : [...plain, ...SWEEP_MMA[d]];
      for (const config of configs) {
        let logSum = 0;
        for (const variant of variants) {
          try {
            const row = await measure(device, { ...shapes(N4, d), variant }, config, false, 5);
            sweep.push({ ...row, robustness, ...(pass > 1 ? { pass } : {}) });
            logSum += Math.log(row.ms);
            if (pass === 1) offer(variant, d, config, row.ms);
            log(`sweep${pass > 1 ? pass : ""}`, robustness ? "robust" : "unsafe", d, variant, label(config), row.ms.toFixed(3), "ms", row.tflops.toFixed(2), "TFLOP/s");
          } catch (e) {
            log("sweep", d, variant, label(config), "failed:", (e as Error).message);
            logSum = Infinity;
          }
        }
        if (pass === 1 && logSum < bestScore) [bestScore, into[d]] = [logSum, config];
      }
      // Is a slow figure the pipeline (a slow compile) or the moment? Time it again, same pipeline and buffers.
      const ofPass = sweep.filter((r) => r.d === d && r.robustness === robustness && (r.pass ?? 1) === pass && !r.retime);
      for (const row of ofPass) {
        const bestOfVariant = Math.max(...ofPass.filter((r) => r.variant === row.variant).map((r) => r.tflops));
        if (!(row.tflops < RETIME_BELOW * bestOfVariant)) continue;
        const config = configs.find((c) => label(c) === row.config)!;
        const again = await measure(device, { ...shapes(N4, d), variant: row.variant }, config, false, 5);
        sweep.push({ ...again, robustness, retime: true, ...(pass > 1 ? { pass } : {}) });
        // A slow first figure must not decide the variant's config (call 30 chose on first figures only).
        if (pass === 1) offer(row.variant, d, config, again.ms);
        log(`retime${pass > 1 ? pass : ""}`, d, row.variant, row.config, row.tflops.toFixed(2), "→", again.tflops.toFixed(2), "TFLOP/s");
      }
    }
    result.sweep = sweep;
    save();
  };
  const sweptHere = !args.configs && !args["skip-sweep"];
  if (args.configs) {
    const chosen = JSON.parse(readFileSync(args.configs, "utf8")).chosenConfigs as Record<string, KernelConfig>;
    for (const [key, config] of Object.entries(chosen)) bestPer.set(key, { config, ms: NaN });
    result.configsFrom = args.configs;
  } else if (!args["skip-sweep"]) {
    await runSweep(dev, best, true);
    if (args["repeat-sweep"]) await runSweep(await requestFlexDevice({ backend: args.backend as DawnBackend, dawnOptions }), {}, true, 2);
    // The best single config per head dim (geometric mean over the variants); the robustness-off
    // rows (--unsafe) run the protocol's configs and carry their labels.
    result.chosen = {
      robust: { 64: label(best[64]), 128: label(best[128]) },
      perVariant: Object.fromEntries([...bestPer].map(([k, v]) => [k, label(v.config)])),
    };
    result.chosenConfigs = Object.fromEntries([...bestPer].map(([k, v]) => [k, v.config]));
    save();
  }
  /** The protocol runs each case with its variant's best swept config (N = 1k reuses N = 4k's). */
  const configFor = (c: Case) => (args["protocol-defaults"] ? null : bestPer.get(perKey(c.variant, c.d))?.config) ?? defaults[c.d];

  const rows: Row[] = [];
  const cases: Case[] = [];
  for (const d of [64, 128]) {
    for (const variant of ["causal", "noop"]) cases.push({ ...shapes(N1, d), variant });
    for (const variant of Object.keys(VARIANTS)) cases.push({ ...shapes(N4, d), variant });
  }
  for (const c of cases) {
    try {
      // Without a sweep before it, every protocol pipeline is new.
      const row = await measure(dev, c, configFor(c), true, 10, !sweptHere);
      rows.push(row);
      log("bench", c.variant, c.n, c.d, row.ms.toFixed(3), "ms", row.tflops.toFixed(2), "TFLOP/s", "spot err", row.spotError?.toExponential(2));
    } catch (e) {
      log("bench", c.variant, c.n, c.d, "failed:", (e as Error).message);
      rows.push({ ...c, density: NaN, config: label(configFor(c)), ms: NaN, tflops: NaN, method: `failed: ${(e as Error).message}` });
    }
    result.results = rows;
    save();
  }

  if (fast) {
    const unsafeRows: Row[] = [];
    for (const c of cases.filter((x) => x.n === N4 && (x.variant === "causal" || x.variant === "noop"))) {
      try {
        const row = await measure(fast, c, configFor(c), true, 10, true);
        unsafeRows.push(row);
        log("unsafe", c.variant, c.d, row.ms.toFixed(3), "ms", row.tflops.toFixed(2), "TFLOP/s", "spot err", row.spotError?.toExponential(2));
      } catch (e) {
        log("unsafe", c.variant, c.d, label(configFor(c)), "failed:", (e as Error).message);
      }
    }
    result.robustnessOff = unsafeRows;
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
