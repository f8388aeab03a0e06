/**
 * One WGSL device call's outputs (wgsl-bench.json, torch-anchors.json, gpu.txt, command.txt from
 * device/wgsl/run.sh) as a results table beside its anchors: results/NAME.{json,md}, the chart
 * drawn by `pnpm --filter @flexattn/bench charts`.
 *
 *   npx tsx apps/bench/src/wgsl-results.ts OUT_DIR NAME     (NAME e.g. wgsl-h200)
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chartLink } from "./chart-link.js";

interface BenchRow {
  variant: string; n: number; batch: number; heads: number; d: number; density?: number; failed?: string;
  run?: { backend: string; device: string; fellBack: string | null; configSource: string | null };
  config?: string; kernelMs?: number; tflops?: number; callMs?: number; spotError?: number;
}
interface AnchorRow { variant: string; n: number; d: number; flex_tflops?: number; sdpa_eff_tflops?: number }

const [dir, name] = process.argv.slice(2);
if (!dir || !name) throw new Error("usage: wgsl-results.ts OUT_DIR NAME");
const read = (f: string) => JSON.parse(readFileSync(join(dir, f), "utf8"));
const bench = read("wgsl-bench.json") as { date: string; device: string; backendChoice: string; env: unknown; rows: BenchRow[]; conformance?: { passed: number; failed: number } };
const anchors = existsSync(join(dir, "torch-anchors.json")) ? (read("torch-anchors.json") as { torch: string; gpu: string; rows: AnchorRow[] }) : null;
const text = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8").trim() : "");
const gpu = anchors?.gpu ?? (text("gpu.txt").split("\n")[1]?.split(",")[0] || "unknown GPU");
const command = text("command.txt") || "bash apps/bench/device/wgsl/run.sh";

const rows = bench.rows.map((r) => {
  const a = anchors?.rows.find((x) => x.variant === r.variant && x.n === r.n && x.d === r.d);
  return { ...r, sdpaEff: a?.sdpa_eff_tflops, flex: a?.flex_tflops };
});
const out = {
  title: `WGSL flexAttention (backend "${bench.backendChoice}") on the ${gpu}, f32, beside PyTorch`,
  gpu, date: bench.date, device: bench.device, torch: anchors?.torch, env: bench.env,
  command: { device: command, bundle: "apps/bench/device/wgsl/README.md" },
  metric: "effective TFLOP/s = 4·B·H·N²·D·density / time; kernel: the artifact flexAttention ran, timestamp queries; call: the whole flexAttention call",
  conformance: bench.conformance ? { passed: bench.conformance.passed, failed: bench.conformance.failed } : undefined,
  rows,
};
writeFileSync(join(import.meta.dirname, "..", "results", `${name}.json`), `${JSON.stringify(out, null, 1)}\n`);

const f = (x: number | undefined, digits = 2) => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(digits));
const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(2)}×` : "–");
const md = [
  `# ${out.title} — ${out.date.slice(0, 10)}`, "",
  chartLink(name), "",
  `Adapter \`${out.device}\`; PyTorch ${out.torch ?? "(no anchors)"}, anchors from the same device call. ${out.metric}.`, "",
  "Command (repo root on the GPU machine, `.node` and `.gl` carried; see `apps/bench/device/wgsl/README.md`):", "",
  "```", command, `npx tsx apps/bench/src/wgsl-results.ts OUT ${name}   # here, on the call's files`, "```", "",
  ...(out.conformance ? [`Conformance on the device: ${out.conformance.passed}/${out.conformance.passed + out.conformance.failed}.`, ""] : []),
  "| variant | N | B×H | d | density | ran on (lastFlexAttentionRun) | config | kernel ms | TFLOP/s | call ms | SDPA-eff f32 | flex f32 | / SDPA-eff | / flex | spot err |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ...rows.map((r) =>
    r.failed
      ? `| ${r.variant} | ${r.n} | ${r.batch}×${r.heads} | ${r.d} | | failed: ${r.failed} | | | | | | | | | |`
      : `| ${r.variant} | ${r.n} | ${r.batch}×${r.heads} | ${r.d} | ${f(r.density, 3)} | ${r.run?.backend} (config: ${r.run?.configSource ?? "?"})${r.run?.fellBack ? `, fell back: ${r.run.fellBack}` : ""} | \`${r.config ?? "–"}\` | ${f(r.kernelMs, 3)} | ${f(r.tflops)} | ${f(r.callMs, 1)} | ${f(r.sdpaEff)} | ${f(r.flex)} | ${ratio(r.tflops, r.sdpaEff)} | ${ratio(r.tflops, r.flex)} | ${r.spotError?.toExponential(1) ?? "–"} |`,
  ),
  "",
];
writeFileSync(join(import.meta.dirname, "..", "results", `${name}.md`), md.join("\n"));
console.log(md.join("\n"));
