/** The results charts: every listed table renders to a well-formed SVG with one bar per figure, and the committed SVG is current. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHARTS, RESULTS_DIR, renderChart } from "../src/charts.js";

/** Tag names in document order, checked for balance (SVG from Vega has no CDATA, comments or doctype). */
function parseTags(svg: string): string[] {
  const stack: string[] = [];
  const seen: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"]*")*)\s*(\/?)>/g)) {
    const [, close, name, , selfClose] = m;
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else {
      seen.push(name);
      if (!selfClose) stack.push(name);
    }
  }
  if (stack.length) throw new Error(`unclosed <${stack.join("> <")}>`);
  // Every '<' belongs to a tag: the text between tags is escaped.
  const tags = svg.match(/</g)?.length ?? 0;
  const matched = [...svg.matchAll(/<\/?[A-Za-z][\w:-]*(?:\s+[\w:-]+="[^"]*")*\s*\/?>/g)].length;
  if (tags !== matched) throw new Error(`${tags - matched} '<' outside a well-formed tag`);
  return seen;
}

describe("results charts", () => {
  it("the tag check rejects broken SVG", () => {
    expect(() => parseTags("<svg><g></svg>")).toThrow(/closes/);
    expect(() => parseTags("<svg><g>")).toThrow(/unclosed/);
    expect(() => parseTags('<svg><text>a < b</text></svg>')).toThrow(/outside/);
  });

  for (const source of CHARTS) {
    it(`${source.name}: one bar per figure, titled, committed and linked`, async () => {
      const { svg, bars } = await renderChart(source);
      const tags = parseTags(svg);
      expect(tags[0]).toBe("svg");
      expect(bars.length).toBeGreaterThan(0);
      expect(svg.match(/aria-roledescription="bar"/g)?.length).toBe(bars.length);
      // Every series in the legend, and the device named in the title.
      for (const s of new Set(bars.map((b) => b.series))) expect(svg).toContain(`>${s}</text>`);
      const json = JSON.parse(readFileSync(join(RESULTS_DIR, `${source.name}.json`), "utf8"));
      expect(svg).toContain(source.title(json).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll('"', "&quot;").slice(0, 40));
      const committed = join(RESULTS_DIR, "charts", `${source.name}.svg`);
      expect(existsSync(committed), "run pnpm --filter @flexattn/bench charts").toBe(true);
      expect(readFileSync(committed, "utf8").trim(), "results/charts is stale: run pnpm --filter @flexattn/bench charts").toBe(svg.trim());
      expect(readFileSync(join(RESULTS_DIR, `${source.name}.md`), "utf8")).toContain(`charts/${source.name}.svg`);
    });
  }
});
