/**
 * A small grouped bar chart as SVG, for benchmark tables that come without a drawn chart:
 * one group per label, one bar per series, values on a linear axis from zero.
 */
import { escapeHtml } from "./output.js";

export interface BarChart {
  title: string;
  unit: string;
  /** Group labels along the x axis. */
  groups: readonly string[];
  /** One value per group (NaN = no bar). */
  series: readonly { name: string; values: readonly number[] }[];
}

const PALETTE = ["#1f4e79", "#e07b39", "#6fa8dc", "#7aa95c", "#a05195", "#8a94a6"];

export function barChartSvg(c: BarChart): string {
  const barW = 12;
  const groupW = Math.max(40, c.series.length * barW + 16);
  const left = 48;
  const top = 28;
  const plotH = 180;
  const labelH = 110;
  const width = left + c.groups.length * groupW + 16;
  const legendY = top + plotH + labelH;
  const height = legendY + 18 * Math.ceil(c.series.length / 3) + 8;
  const all = c.series.flatMap((s) => s.values).filter(Number.isFinite);
  const maxV = niceMax(Math.max(1e-9, ...all));
  const y = (v: number) => top + plotH - (v / maxV) * plotH;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="bench-chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(c.title)}" font-family="sans-serif" font-size="10">`,
    `<title>${escapeHtml(c.title)}</title>`,
    `<text x="${left}" y="16" font-size="12" font-weight="bold">${escapeHtml(c.title)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = (maxV * i) / 4;
    out.push(
      `<line x1="${left}" x2="${width - 8}" y1="${y(v)}" y2="${y(v)}" stroke="#dde2ea"/>`,
      `<text x="${left - 4}" y="${y(v) + 3}" text-anchor="end">${formatTick(v)}</text>`,
    );
  }
  out.push(`<text x="10" y="${top + plotH / 2}" transform="rotate(-90 10 ${top + plotH / 2})" text-anchor="middle">${escapeHtml(c.unit)}</text>`);
  c.groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + 8;
    c.series.forEach((s, si) => {
      const v = s.values[gi];
      if (!Number.isFinite(v)) return;
      out.push(
        `<rect x="${x0 + si * barW}" y="${y(v).toFixed(1)}" width="${barW - 2}" height="${(top + plotH - y(v)).toFixed(1)}" fill="${PALETTE[si % PALETTE.length]}"><title>${escapeHtml(`${s.name}, ${g}: ${formatTick(v)} ${c.unit}`)}</title></rect>`,
      );
    });
    const lx = x0 + (c.series.length * barW) / 2;
    out.push(`<text x="${lx}" y="${top + plotH + 10}" transform="rotate(40 ${lx} ${top + plotH + 10})">${escapeHtml(g)}</text>`);
  });
  c.series.forEach((s, si) => {
    const lx = left + (si % 3) * 180;
    const ly = legendY + 18 * Math.floor(si / 3);
    out.push(
      `<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${PALETTE[si % PALETTE.length]}"/>`,
      `<text x="${lx + 14}" y="${ly}">${escapeHtml(s.name)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n");
}

function niceMax(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function formatTick(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toPrecision(2);
}
