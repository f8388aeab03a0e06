/**
 * Turn the raw outputs of the WGSL device runs (apps/bench/results/wgsl-h100-raw/runN) into
 * apps/bench/results/wgsl-h100.{json,md}: our kernels beside PyTorch's, from the same call.
 *
 *   npx tsx apps/bench/src/wgsl-report.ts [final-run-dir] [earlier-run-dir]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const RESULTS = join(import.meta.dirname, "..", "results");
const finalDir = process.argv[2] ?? join(RESULTS, "wgsl-h100-raw", "run3");
const earlierDir = process.argv[3] ?? join(RESULTS, "wgsl-h100-raw", "run2");

interface Row {
  variant: string; n: number; batch: number; heads: number; d: number; density: number; config: string;
  ms: number; tflops: number; method: string; spotError?: number; robustness?: boolean;
}
interface TorchRow {
  variant: string; n: number; d: number; density: number;
  flex_ms?: number; flex_tflops?: number; sdpa_eff_ms?: number; sdpa_eff_tflops?: number; flex_error?: string; skipped?: string;
}

const read = <T>(dir: string, f: string): T => JSON.parse(readFileSync(join(dir, f), "utf8"));
const wgsl = read<{ command: string; device: string; results: Row[]; sweep: Row[]; robustnessOff?: Row[]; chosen: unknown; seconds: number }>(finalDir, "wgsl-bench.json");
const torch = read<{ torch: string; gpu: string; rows: TorchRow[] }>(finalDir, "torch-anchors.json");
const gpu = readFileSync(join(finalDir, "gpu.txt"), "utf8").trim().split("\n")[1] ?? "";
const earlier = read<{ results: Row[]; chosen: unknown }>(earlierDir, "wgsl-bench.json");
const earlierTorch = read<{ rows: TorchRow[] }>(earlierDir, "torch-anchors.json");
const conformance = read<{ conformance: { passed: number; failed: number; seconds: number } }>(join(RESULTS, "wgsl-h100-raw", "run1"), "wgsl-bench.json").conformance;

const anchor = (rows: TorchRow[], variant: string, n: number, d: number) => rows.find((r) => r.variant === variant && r.n === n && r.d === d);
const f = (x: number | undefined, digits = 2) => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(digits));
const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(2)}×` : "–");

const DEVICE_COMMAND = "WGSL_S=240 TORCH_S=200 ANCHOR_BUDGET_S=150 bash apps/bench/device/wgsl/run.sh --unsafe --skip-conformance";
const BUILD_COMMAND = "esbuild apps/bench/src/wgsl-bench.ts --bundle --platform=node --format=esm --target=node20 --external:webgpu --outfile=.node/wgsl-bench.mjs";

const main = wgsl.results.map((r) => {
  const t = anchor(torch.rows, r.variant, r.n, r.d);
  return {
    ...r,
    sdpaEffTflops: t?.sdpa_eff_tflops, flexTflops: t?.flex_tflops,
    vsSdpaEff: t?.sdpa_eff_tflops ? r.tflops / t.sdpa_eff_tflops : undefined,
    vsFlex: t?.flex_tflops ? r.tflops / t.flex_tflops : undefined,
  };
});

// Best config per (variant, d) among the sweep's candidates (what an autotuner would pick).
const bestOf = new Map<string, Row>();
for (const s of wgsl.sweep) {
  const k = `${s.variant}|${s.d}`;
  if (!bestOf.has(k) || s.ms < bestOf.get(k)!.ms) bestOf.set(k, s);
}

const out = {
  title: "WGSL (Dawn/Vulkan) vs PyTorch f32 on the H100",
  date: "2026-11-25",
  command: { device: DEVICE_COMMAND, bundle: BUILD_COMMAND, node: wgsl.command },
  gpu, dawn: "webgpu@0.6.2 (Dawn), Vulkan backend", device: wgsl.device, torch: torch.torch,
  metric: "effective TFLOP/s = 4·B·H·N²·D·density / time (density = fraction of 128×128 blocks computed); f32 storage and arithmetic; WGSL: median of 10 dispatches by timestamp-query; PyTorch: triton.testing.do_bench median",
  conformanceOnVulkan: conformance,
  results: main,
  autotunedFromSweep: [...bestOf.values()],
  robustnessOff: wgsl.robustnessOff,
  chosenConfigs: wgsl.chosen,
  earlierRun: { note: "run 2: same harness, before the tanh(NaN) fix, d=128 config 128x16 T256 RM4", results: earlier.results, chosen: earlier.chosen },
};
writeFileSync(join(RESULTS, "wgsl-h100.json"), JSON.stringify(out, null, 1));

const lines: string[] = [];
lines.push(`# WGSL on the H100 (Dawn/Vulkan), f32, beside PyTorch — ${out.date}`, "");
lines.push(`GPU: ${gpu}. WebGPU: ${out.dawn}, adapter \`${wgsl.device}\`. PyTorch ${torch.torch}. All numbers of one table come from one device call.`, "");
lines.push("Command (repo root, on the GPU machine, with `.node` and `.gl` carried; see apps/bench/device/wgsl/README.md):", "");
lines.push("```", `${BUILD_COMMAND}   # here, beforehand`, DEVICE_COMMAND, "```", "");
lines.push(`Metric: ${out.metric}.`, "");
lines.push(`Correctness on Vulkan: the conformance suite passes ${conformance.passed}/${conformance.passed + conformance.failed} (run 1, ${conformance.seconds.toFixed(0)} s); every benchmark case below is spot-checked against a float64 reference (12 rows, max relative error in the last column).`, "");
lines.push("## Protocol (one config per head dim, picked by the sweep)", "");
lines.push("| variant | N | B×H | d | density | WGSL ms | WGSL TFLOP/s | SDPA-eff f32 | flex f32 | WGSL / SDPA-eff | WGSL / flex | spot err |");
lines.push("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of main) {
  lines.push(`| ${r.variant} | ${r.n} | ${r.batch}×${r.heads} | ${r.d} | ${f(r.density, 3)} | ${f(r.ms, 3)} | ${f(r.tflops)} | ${f(r.sdpaEffTflops)} | ${f(r.flexTflops)} | ${r.vsSdpaEff ? r.vsSdpaEff.toFixed(2) + "×" : "–"} | ${r.vsFlex ? r.vsFlex.toFixed(2) + "×" : "–"} | ${r.spotError?.toExponential(1) ?? "–"} |`);
}
lines.push("", `Configs: d=64 \`${wgsl.results.find((r) => r.d === 64)?.config}\`, d=128 \`${wgsl.results.find((r) => r.d === 128)?.config}\` (blockM×blockN, workgroup size, rows per invocation; sg = subgroup row reductions, qG = Q read through the cache).`, "");
lines.push("## Best sweep config per variant (N=4096, what an autotuner picks)", "");
lines.push("| variant | d | config | ms | TFLOP/s | SDPA-eff f32 | flex f32 | WGSL / SDPA-eff | WGSL / flex |");
lines.push("|---|---|---|---|---|---|---|---|---|");
for (const s of bestOf.values()) {
  const t = anchor(torch.rows, s.variant, s.n, s.d);
  lines.push(`| ${s.variant} | ${s.d} | \`${s.config}\` | ${f(s.ms, 3)} | ${f(s.tflops)} | ${f(t?.sdpa_eff_tflops)} | ${f(t?.flex_tflops)} | ${ratio(s.tflops, t?.sdpa_eff_tflops)} | ${ratio(s.tflops, t?.flex_tflops)} |`);
}
if (wgsl.robustnessOff?.length) {
  lines.push("", "## Dawn robustness off (`enable-dawn-features=allow_unsafe_apis,disable_robustness`, trusted shaders only)", "");
  lines.push("| variant | d | TFLOP/s (robust) | TFLOP/s (robustness off) |", "|---|---|---|---|");
  for (const u of wgsl.robustnessOff) {
    const r = wgsl.results.find((x) => x.variant === u.variant && x.n === u.n && x.d === u.d);
    lines.push(`| ${u.variant} | ${u.d} | ${f(r?.tflops)} | ${f(u.tflops)} |`);
  }
}
lines.push("", "## Earlier run (run 2, its own PyTorch anchors in the same call)", "");
lines.push("| variant | N | d | config | WGSL TFLOP/s | flex f32 | WGSL / flex |", "|---|---|---|---|---|---|---|");
for (const r of earlier.results) {
  const t = anchor(earlierTorch.rows, r.variant, r.n, r.d);
  lines.push(`| ${r.variant} | ${r.n} | ${r.d} | \`${r.config}\` | ${f(r.tflops)} | ${f(t?.flex_tflops)} | ${ratio(r.tflops, t?.flex_tflops)} |`);
}
lines.push("", "## Against the targets", "");
lines.push(
  "- **≥ 1.0× SDPA memory-efficient f32 (causal, noop, N=4k): not met.** d=64 reaches 0.85×; d=128 reaches 0.52× with the best",
  "  sweep config (0.39–0.40× with the single d=128 config of the protocol table). PyTorch's memory-efficient kernel reaches",
  "  33–47 TFLOP/s in f32, which is ~50–70% of the H100's non-tensor f32 peak (~67 TFLOP/s); WGSL cannot reach tensor cores",
  "  on this stack (DEVICE.md), so our kernel is plain f32 FMA: ~29 TFLOP/s (d=64) is ~44% of that peak.",
  "- **≥ 3× flex_attention f32 on every variant: met for d=128** (3.75–4.7× with the protocol config, 5.0–5.3× autotuned for",
  "  causal/noop), **not for d=64**: 2.4–3.1× on the masked variants, 1.55× on noop (flex's dense path is already 19 TFLOP/s),",
  "  and softcap-causal regressed to 0.85× in this run (next point).",
  "- softcap-causal d=64 ran at 24.5 TFLOP/s in run 2 and 10.4 in run 3 with the same config; the only change between the",
  "  runs was a NaN fix in the WGSL tanh helper (three integer instructions per score). Together with the d=128 128×16/256",
  "  config, which runs causal/noop at 24–25 TFLOP/s but document-causal at 4–8, this points at register-allocation cliffs",
  "  in the driver's compile of the fully unrolled kernel once a mod's code is inlined; we could not inspect the SASS through",
  "  Dawn, and the device budget did not allow another iteration. The d=128 protocol config (128×16, 512 invocations, 2 rows",
  "  each) was chosen because it is stable across all variants (17.5–19 TFLOP/s).",
  "- Robustness (Dawn's bounds clamping) costs ~1%: the hot loops read workgroup memory through per-invocation row pointers",
  "  with constant offsets, so there is one clamp per row instead of one per load (before that change: 15 vs 17.5 TFLOP/s).",
);
lines.push("", "Raw outputs of every run (logs, sweeps, anchors): `apps/bench/results/wgsl-h100-raw/run{1,2,3}/`.", "");
writeFileSync(join(RESULTS, "wgsl-h100.md"), lines.join("\n"));
console.log(lines.join("\n"));
