/** The build-time generators: mask gallery, DSL tables, ABI, bench pages and charts. */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LIBRARY_MASKS } from "@flexattn/masks";
import { describe, expect, it } from "vitest";
import { abiMarkdown } from "../src/generate/abi.js";
import { benchIndexMarkdown, benchPageMarkdown, benchPages, chartRows, chartsFromRows } from "../src/generate/bench.js";
import { barChartSvg } from "../src/generate/chart.js";
import { MISTAKES, mistakeMessage, opExamplesMarkdown } from "../src/generate/dsl.js";
import { masksMarkdown } from "../src/generate/masks.js";

describe("generated pages", () => {
  it("draws every library mask as an SVG with its sparsity", () => {
    const md = masksMarkdown();
    expect(md.match(/<svg /g)).toHaveLength(LIBRARY_MASKS.length);
    expect(md).toContain("`causal()` — kv <= q. Sparsity 48.4%: 496 full, 32 partial, 496 empty blocks.");
    expect(md).toContain("slidingWindow(512, { causal: false })");
  });

  it("gives every documented mistake a library error", () => {
    for (const m of MISTAKES) expect(mistakeMessage(m), m.what).not.toBe("");
    expect(opExamplesMarkdown()).toContain("| `floorDiv(-7, 2)` | i32 | -4 |");
  });

  it("lists the ABI with captured buffers in place", () => {
    const md = abiMarkdown();
    expect(md).toContain("| 0 | `q` |");
    expect(md).toMatch(/\| 9 \| `mask_\w+` \| tensor \| i32 \| captured \|/);
  });

  it("makes bench pages, drawing charts from the JSON where the bench drew none", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-results-"));
    writeFileSync(join(dir, "x-cpu.md"), "# X on a CPU\n\nSee [raw](x-raw/log.txt).\n");
    writeFileSync(join(dir, "x-cpu.json"), JSON.stringify({ results: [{ variant: "noop", n: 1024, gflops: 5 }, { variant: "causal", n: 1024, gflops: 6 }] }));
    writeFileSync(join(dir, "y-gpu.md"), "# Y\n\n![Chart](charts/y-gpu.svg)\n\nText.\n");
    mkdirSync(join(dir, "charts"));
    writeFileSync(join(dir, "charts/y-gpu-other.svg"), "<svg/>");
    writeFileSync(join(dir, "charts/y-gpu.svg"), '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><rect id="drawn-by-bench"/></svg>');
    const pages = benchPages(dir);
    expect(pages.map((p) => [p.name, p.title, p.drawnCharts])).toEqual([["x-cpu", "X on a CPU", []], ["y-gpu", "Y", ["charts/y-gpu.svg"]]]);
    const x = benchPageMarkdown(pages[0], dir);
    expect(x).toContain('class="bench-chart"');
    expect(x).toContain("raw (`apps/bench/results/x-raw/log.txt`)");
    const y = benchPageMarkdown(pages[1], dir);
    expect(y).toContain('<rect id="drawn-by-bench"/>');
    expect(y).not.toContain("<?xml");
    expect(y).not.toContain("Chart");
    expect(y).toContain("Text.");
    writeFileSync(join(dir, "README.md"), "# Results\n\n## Current\n\nSee [x](x-cpu.md).\n");
    const index = benchIndexMarkdown(pages, dir);
    expect(index).toContain("### Current");
    expect(index).toContain("x (`apps/bench/results/x-cpu.md`)");
    expect(index).toContain("| X on a CPU | [x-cpu](./x-cpu) |");
  });

  it("charts the best rate per implementation, one chart per head dim", () => {
    const rows = chartRows({ meta: {}, rows: [
      { impl: "ours", variant: "causal", N: 4096, D: 64, tflops: 10 },
      { impl: "ours", variant: "causal", N: 4096, D: 64, tflops: 12 },
      { impl: "flex", variant: "causal", N: 4096, D: 64, tflops: 9 },
      { impl: "ours", variant: "causal", N: 4096, D: 128, tflops: 20 },
    ] })!;
    const charts = chartsFromRows("t", rows);
    expect(charts.map((c) => c.title)).toEqual(["t, head dim 64 (best row per bar)", "t, head dim 128 (best row per bar)"]);
    expect(charts[0].groups).toEqual(["causal N=4k"]);
    expect(charts[0].series).toEqual([{ name: "ours", values: [12] }, { name: "flex", values: [9] }]);
    const svg = barChartSvg(charts[0]);
    expect(svg.match(/<rect [^>]*height="[\d.]+" fill/g)?.length).toBeGreaterThanOrEqual(2);
    expect(svg).toContain("<title>ours, causal N=4k: 12.0 TFLOP/s</title>");
  });
});
