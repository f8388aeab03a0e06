/**
 * Benchmark pages from apps/bench/results: each results table (`*.md`) becomes a page, with the
 * SVG charts the bench drew for it (`<table name>.svg` anywhere under results/, e.g. charts/), or, where it drew none, a bar
 * chart made here from the table's JSON.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { basename, join, normalize, relative } from "node:path";
import { type BarChart, barChartSvg } from "./chart.js";
import { REPO_ROOT } from "./output.js";

export const RESULTS_DIR = join(REPO_ROOT, "apps/bench/results");

export interface BenchPage {
  /** The results table's name, e.g. "wgsl-h200"; the page is bench/<name>.md. */
  name: string;
  title: string;
  markdown: string;
  /** Charts the bench drew, as paths relative to the results folder. */
  drawnCharts: string[];
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

/** The rows of a results JSON that a chart can show: the first array of objects with a variant and a rate. */
export function chartRows(json: unknown): Record<string, unknown>[] | null {
  if (Array.isArray(json)) {
    const rows = json.filter((x): x is Record<string, unknown> => typeof x === "object" && x !== null);
    if (rows.length && rows.some((r) => typeof r.variant === "string" && (typeof r.tflops === "number" || typeof r.gflops === "number"))) return rows;
    return null;
  }
  if (typeof json === "object" && json !== null) {
    for (const v of Object.values(json)) {
      const rows = chartRows(v);
      if (rows) return rows;
    }
  }
  return null;
}

const num = (r: Record<string, unknown>, ...keys: string[]): number => {
  for (const k of keys) if (typeof r[k] === "number") return r[k] as number;
  return Number.NaN;
};

/** Bar charts of a results table's rows: one per head dim, one bar per implementation or anchor. */
export function chartsFromRows(name: string, rows: Record<string, unknown>[]): BarChart[] {
  const tera = rows.some((r) => typeof r.tflops === "number");
  const rate = (r: Record<string, unknown>) => num(r, tera ? "tflops" : "gflops");
  const dims = [...new Set(rows.map((r) => num(r, "D", "d")))];
  return dims.map((d) => {
    const inDim = rows.filter((r) => Object.is(num(r, "D", "d"), d) && typeof r.variant === "string");
    const groupOf = (r: Record<string, unknown>) => {
      const n = num(r, "N", "n");
      return Number.isFinite(n) ? `${r.variant} N=${n >= 1024 && n % 1024 === 0 ? `${n / 1024}k` : n}` : String(r.variant);
    };
    const groups = [...new Set(inDim.map(groupOf))];
    const series = new Map<string, number[]>();
    const put = (s: string, g: string, v: number) => {
      if (!Number.isFinite(v)) return;
      if (!series.has(s)) series.set(s, groups.map(() => Number.NaN));
      const values = series.get(s)!;
      const i = groups.indexOf(g);
      values[i] = Number.isFinite(values[i]) ? Math.max(values[i], v) : v;
    };
    for (const r of inDim) {
      const g = groupOf(r);
      put(typeof r.impl === "string" ? r.impl : "flexattn", g, rate(r));
      put("PyTorch flex_attention", g, num(r, "flex", "flexTflops"));
      put("SDPA", g, num(r, "sdpaEff", "sdpaEffTflops"));
    }
    return {
      title: `${name}${Number.isFinite(d) ? `, head dim ${d}` : ""} (best row per bar)`,
      unit: tera ? "TFLOP/s" : "GFLOP/s",
      groups,
      series: [...series].map(([s, values]) => ({ name: s, values })),
    };
  });
}

/** Whether a drawn chart (anywhere under results/) belongs to a table: `<table>.svg` or `<table>.<what>.svg`. */
function drawnFor(svgPath: string, table: string): boolean {
  const stem = basename(svgPath, ".svg");
  return stem === table || stem.startsWith(`${table}.`);
}

/**
 * Links into the results folder do not exist on the site: show them as repository paths. Images
 * of the page's drawn charts go: the page inlines those charts.
 */
function unlinkRelative(markdown: string, inlined: readonly string[] = []): string {
  return markdown
    .replace(/!\[[^\]]*\]\((?!https?:)([^)]+)\)\s*/g, (m, path: string) => (inlined.includes(normalize(path)) ? "" : m.slice(1)))
    .replace(/\[([^\]]+)\]\((?!https?:|#)([^)]+)\)/g, (_m, text: string, path: string) => `${text} (\`apps/bench/results/${path}\`)`);
}

export function benchPages(dir = RESULTS_DIR): BenchPage[] {
  if (!existsSync(dir)) return [];
  const files = listFiles(dir);
  const svgs = files.filter((f) => f.endsWith(".svg"));
  return files
    .filter((f) => f.endsWith(".md") && !f.includes("/") && f !== "README.md")
    .sort()
    .map((f) => {
      const name = f.slice(0, -3);
      const text = readFileSync(join(dir, f), "utf8");
      const title = /^#\s+(.+)$/m.exec(text)?.[1] ?? name;
      const drawnCharts = svgs.filter((s) => drawnFor(s, name)).sort();
      return { name, title, markdown: unlinkRelative(text, drawnCharts), drawnCharts };
    });
}

/** The page for one results table: its charts, then the table as the bench wrote it. */
export function benchPageMarkdown(page: BenchPage, dir = RESULTS_DIR): string {
  const charts: string[] = [];
  if (page.drawnCharts.length) {
    for (const svg of page.drawnCharts) charts.push(`<div class="bench-chart">\n${stripXmlProlog(readFileSync(join(dir, svg), "utf8"))}\n</div>`, "");
  } else {
    const jsonFile = join(dir, `${page.name}.json`);
    const rows = existsSync(jsonFile) ? chartRows(JSON.parse(readFileSync(jsonFile, "utf8"))) : null;
    for (const chart of rows ? chartsFromRows(page.name, rows) : []) charts.push(`<div class="bench-chart">\n${barChartSvg(chart)}\n</div>`, "");
  }
  const source = `*From \`apps/bench/results/${page.name}.md\`${charts.length ? "; charts drawn from the same results" : ""}.*`;
  // The table's own title stays the page's first heading; the charts follow it.
  const [, title = "", rest = page.markdown] = /^(#\s+[^\n]*\n)?([\s\S]*)$/.exec(page.markdown) ?? [];
  return ["::: v-pre", "", title, source, "", ...charts, rest, "", ":::", ""].join("\n");
}

function stripXmlProlog(svg: string): string {
  return svg.replace(/^<\?xml[^>]*>\s*/, "").replace(/<!DOCTYPE[^>]*>\s*/, "");
}

/** The index: the results folder's own README (what is current, what is history), then every page. */
export function benchIndexMarkdown(pages: readonly BenchPage[], dir = RESULTS_DIR): string {
  if (!pages.length) return "No benchmark results in this checkout.\n";
  const readme = join(dir, "README.md");
  const overview = existsSync(readme)
    ? ["::: v-pre", unlinkRelative(readFileSync(readme, "utf8").replace(/^#\s+[^\n]*\n/, "")).replace(/^## /gm, "### "), ":::", ""]
    : [];
  return [
    ...overview,
    "## Every results table",
    "",
    "| results | page |",
    "| --- | --- |",
    ...pages.map((p) => `| ${p.title.replaceAll("|", "\\|")} | [${p.name}](./${p.name}) |`),
    "",
  ].join("\n");
}
