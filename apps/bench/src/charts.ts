/**
 * One SVG chart per current results table, drawn with Vega-Lite from the table's JSON:
 * results/charts/<name>.svg. Each chart names its device, puts the anchors beside our figures
 * where the table has them, and gives its axis units.
 *
 *   pnpm --filter @flexattn/bench charts
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import * as vega from "vega";
import { type TopLevelSpec, compile } from "vega-lite";

export const RESULTS_DIR = join(import.meta.dirname, "..", "results");

/** One bar of a chart: its group (facet), category on the x axis, series and value. */
export interface Bar {
  panel: string;
  category: string;
  series: string;
  value: number;
}

export interface ChartSource {
  /** results/<name>.json in, results/charts/<name>.svg out. */
  name: string;
  title: (json: Json) => string;
  subtitle: (json: Json) => string;
  yTitle: string;
  bars: (json: Json) => Bar[];
  /** Series in legend order: anchors first (muted colours), ours after (strong ones). */
  series: string[];
  colors: string[];
  /** A horizontal target line, where the table states one. */
  rule?: { value: number; label: string };
}

/** Result files are read as plain JSON. */
type Json = any;

/** Anchors in muted colours, our figures in strong ones. */
const ANCHOR = ["#a0a7b0", "#6f8fb0"];
const OURS = ["#d9480f", "#7b2d8e"];

const finite = (b: Bar) => Number.isFinite(b.value);

/** Triton: rows of impl "flex" (the anchor) and "ours" (default and tuned configs), same process. */
const triton = (name: string): ChartSource => ({
  name,
  title: (j) => `Triton backend vs PyTorch flex_attention on the ${j.env.gpu} (bf16, forward)`,
  subtitle: (j) => `torch ${j.env.torch}, triton ${j.env.triton}; B = 16384/N, 16 heads at d=128, 32 at d=64; same process; 'tuned' = after the module's tune()`,
  yTitle: "effective TFLOP/s",
  series: ["flex_attention (torch.compile)", "ours, default config", "ours, tuned"],
  colors: [ANCHOR[0], OURS[0], OURS[1]],
  bars: (j) =>
    j.rows.flatMap((r: Json) => {
      const panel = `d=${r.D}, N=${r.N}`;
      const category = r.variant.replaceAll("_", "-");
      if (r.impl === "flex") return [{ panel, category, series: "flex_attention (torch.compile)", value: r.tflops }];
      return [
        // untuned_ms: the config the module resolved itself (current harness); default_ms: earlier runs.
        { panel, category, series: "ours, default config", value: (r.tflops * r.ms) / (r.untuned_ms ?? r.default_ms) },
        { panel, category, series: "ours, tuned", value: r.tflops },
      ];
    }).filter(finite),
});

/** WGSL: the headline rows (new bench files: `rows`; the H200 record: `protocolDefaults.rows`). */
const wgsl = (name: string): ChartSource => ({
  name,
  title: (j) => `WGSL kernel (Dawn/Vulkan, f32) on the ${j.gpu} vs PyTorch f32`,
  subtitle: (j) =>
    `library default configs${j.protocolDefaults ? ` (${j.protocolDefaults.call})` : ""}; torch ${j.torch}; anchors from the same device call; B×H = 16384/N × 16`,
  yTitle: "effective TFLOP/s",
  series: ["SDPA memory-efficient f32", "flex_attention f32 (torch.compile)", "ours (WGSL)"],
  colors: [ANCHOR[1], ANCHOR[0], OURS[0]],
  bars: (j) =>
    (j.rows ?? j.protocolDefaults.rows).flatMap((r: Json) => {
      const panel = `d=${r.d}, N=${r.n}`;
      return [
        { panel, category: r.variant, series: "SDPA memory-efficient f32", value: r.sdpaEff },
        { panel, category: r.variant, series: "flex_attention f32 (torch.compile)", value: r.flex },
        { panel, category: r.variant, series: "ours (WGSL)", value: r.tflops },
      ];
    }).filter(finite),
});

/**
 * CUDA: the bench rows of run_cuda.py (anchors flex, cuDNN, FA2; ours as the public module resolves its config, and
 * after its tune() where the run has that column). Older runs have no roles: each entry's first "ours …" row is the
 * config the module resolved untuned.
 */
const cuda = (name: string): ChartSource => ({
  name,
  title: (j) => `CUDA backend vs PyTorch on the ${j.gpu} (bf16, forward)`,
  subtitle: (j) => `torch ${j.torch}; same process; B = 16384/N, 16 heads at d=128, 32 at d=64; ours = the module's own config`,
  yTitle: "effective TFLOP/s",
  series: ["SDPA cuDNN", "flex_attention (torch.compile)", "ours (CUDA)", "ours (CUDA, after tune())"],
  colors: [ANCHOR[1], ANCHOR[0], OURS[0], OURS[1]],
  bars: (j) => {
    const roles = j.bench.some((r: Json) => r.role === "default");
    const seen = new Set<string>();
    return j.bench.flatMap((r: Json) => {
      const panel = `d=${r.D}, N=${r.N}`;
      const category = r.variant.replaceAll("_", "-");
      const anchor = ({ sdpa_cudnn: "SDPA cuDNN", flex: "flex_attention (torch.compile)" } as Record<string, string>)[r.impl];
      if (anchor) return [{ panel, category, series: anchor, value: r.tflops }];
      if (roles) {
        const series = ({ default: "ours (CUDA)", tuned: "ours (CUDA, after tune())" } as Record<string, string>)[r.role];
        return series ? [{ panel, category, series, value: r.tflops }] : [];
      }
      if (!r.impl.startsWith("ours") || seen.has(panel + category)) return [];
      seen.add(panel + category);
      return [{ panel, category, series: "ours (CUDA)", value: r.tflops }];
    }).filter(finite);
  },
});

export const CHARTS: ChartSource[] = [
  triton("triton-h100-public"),
  triton("triton-h200-final"),
  cuda("cuda-h100-tensor-core"),
  cuda("cuda-h100-wgmma"),
  cuda("cuda-h100-public"),
  cuda("cuda-h100-warp-specialized"),
  cuda("cuda-h100-noop-causal"),
  cuda("cuda-h100-tma"),
  {
    name: "triton-h100-backward-diagonal",
    title: (j) => `Triton backward, a learnable [2N−1] relative-position table, on the ${j.gpu} (bf16, forward+backward)`,
    subtitle: () => "causal, N = 16384, 16 heads; the module's own default config; flex_attention cannot train the table: its time with the table frozen is a lower bound",
    yTitle: "forward+backward ms (lower is better)",
    series: ["flex_attention, table frozen", "ours, table frozen", "ours, table trained"],
    colors: [ANCHOR[0], OURS[1], OURS[0]],
    bars: (j) => {
      const call = Object.entries(j.calls).find(([k]) => k.startsWith("call 4:"))![1] as Json;
      return call.bench.bench.flatMap((r: Json) => {
        const panel = `d=${r.D}, N=${r.N}`;
        const category = r.variant.replaceAll("_", "-");
        return [
          { panel, category, series: "flex_attention, table frozen", value: r.flex_frozen_ms },
          { panel, category, series: "ours, table frozen", value: r.ours_frozen_ms },
          { panel, category, series: "ours, table trained", value: r.ours_ms },
        ];
      }).filter(finite);
    },
  },
  wgsl("wgsl-h100-public"),
  wgsl("wgsl-h200"),
  {
    name: "js-node20-cpu",
    title: (j) => `JS backend on the CPU, Node ${j.node}: ${j.cpu}`,
    subtitle: (j) => `flexAttention(…, { backend: "js" }); B = ${j.problem.B}, H = ${j.problem.H}, d = ${j.problem.D}, f32; no anchor on this machine`,
    yTitle: "time of one call / noop's time",
    series: ["time vs noop"],
    colors: [OURS[0]],
    rule: { value: 0.15, label: "requirement: document-causal ≤ 0.15× noop" },
    bars: (j) => j.results.map((r: Json) => ({ panel: `N=${r.n}`, category: r.variant.replace(/ \(.*\)$/, ""), series: "time vs noop", value: r.vsNoop })).filter(finite),
  },
  {
    name: "blockmask-node20-cpu",
    title: (j) => `createBlockMask build time on the CPU (${j.cpuModel}, ${j.cores} cores), Node ${j.node}`,
    subtitle: (j) => `median of ${j.config.runs} runs after ${j.config.warmup} warm-up; block ${j.config.blockSize.join("×")}; ${j.config.documents} documents`,
    yTitle: "median build time (ms)",
    series: ["causal", "documentCausal"],
    colors: OURS,
    rule: { value: 50, label: "target: documentCausal at 128k tokens ≤ 50 ms" },
    bars: (j) => j.rows.map((r: Json) => ({ panel: "", category: `${r.tokens / 1024}k tokens`, series: r.mask, value: r.medianMs })).filter(finite),
  },
];

/** The Vega-Lite spec of a chart: grouped bars per category, one panel per facet value. */
export function chartSpec(source: ChartSource, json: Json): { spec: TopLevelSpec; bars: Bar[] } {
  const bars = source.bars(json);
  if (bars.length === 0) throw new Error(`${source.name}: no rows to draw`);
  const panels = [...new Set(bars.map((b) => b.panel))];
  // Only the series this table has (an older run may lack a column) reach the legend, each with its own colour.
  const drawn = source.series.flatMap((s, i) => (bars.some((b) => b.series === s) ? [{ s, color: source.colors[i] }] : []));
  const series = drawn.map((d) => d.s);
  const layer: Json[] = [
    {
      mark: { type: "bar", tooltip: true },
      encoding: {
        x: { field: "category", type: "nominal", title: null, sort: null, axis: { labelAngle: -35 } },
        xOffset: { field: "series", sort: series },
        y: { field: "value", type: "quantitative", title: source.yTitle },
        color: {
          field: "series", type: "nominal", title: null, scale: { domain: series, range: drawn.map((d) => d.color) },
          legend: { orient: "top", labelLimit: 0 },
        },
      },
    },
  ];
  // The target line: one datum of its own, drawn once per panel.
  if (source.rule) layer.push({ data: { values: [{}] }, mark: { type: "rule", color: "#c0392b", strokeDash: [4, 3], strokeWidth: 1.5 }, encoding: { y: { datum: source.rule.value } } });
  // Bars 12–36 px wide: a panel of few bars is still about 360 px wide.
  const perPanel = Math.max(...panels.map((p) => bars.filter((b) => b.panel === p).length));
  const inner = { width: { step: Math.round(Math.min(36, Math.max(12, 360 / perPanel))), for: "offset" }, height: 220, layer };
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: source.title(json), anchor: "start",
      subtitle: [source.subtitle(json), ...(source.rule ? [`dashed line: ${source.rule.label}`] : [])],
    },
    data: { values: bars },
    config: { font: "DejaVu Sans, Helvetica, Arial, sans-serif", view: { stroke: null } },
    ...(panels.length > 1
      ? { facet: { field: "panel", type: "nominal", title: null, sort: panels }, columns: 2, spec: inner, resolve: { scale: { x: "independent" } } }
      : inner),
  } as TopLevelSpec;
  return { spec, bars };
}

/** Render one chart to SVG, headless (Vega's SVG renderer needs no canvas). */
export async function renderChart(source: ChartSource, resultsDir = RESULTS_DIR): Promise<{ svg: string; bars: Bar[] }> {
  const json = JSON.parse(readFileSync(join(resultsDir, `${source.name}.json`), "utf8"));
  const { spec, bars } = chartSpec(source, json);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return { svg, bars };
}

async function main() {
  const dir = join(RESULTS_DIR, "charts");
  mkdirSync(dir, { recursive: true });
  for (const source of CHARTS) {
    const { svg, bars } = await renderChart(source);
    writeFileSync(join(dir, `${source.name}.svg`), `${svg}\n`);
    console.log(`results/charts/${source.name}.svg: ${bars.length} bars`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
