import { causal, documentCausal, prefixLM, randomDocumentIds } from "@flexattn/masks";
import { describe, expect, it } from "vitest";
import { SVG_COLORS, blockMaskSvg, createBlockMask } from "../src/index.js";

/** The cells an SVG picture paints, decoded back from its rectangles (row-major state letters). */
function paintedCells(svg: string, rows: number, cols: number, width: number): string[] {
  const cell = width / cols;
  const grid = Array.from({ length: rows }, () => Array(cols).fill("e"));
  const letter = Object.fromEntries(Object.entries(SVG_COLORS).map(([k, v]) => [v, k[0]]));
  for (const m of svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="[\d.]+" fill="(#[0-9a-f]+)"\/>/g)) {
    const c0 = Math.round(Number(m[1]) / cell);
    const r = Math.round(Number(m[2]) / cell);
    const n = Math.round(Number(m[3]) / cell);
    for (let c = c0; c < c0 + n; c++) grid[r][c] = letter[m[4]];
  }
  return grid.map((row) => row.join(""));
}

describe("blockMaskSvg", () => {
  it("paints the same cells as the text picture", () => {
    const m = createBlockMask(causal(), { qLen: 300, kvLen: 500, blockSize: 64 });
    const svg = blockMaskSvg(m, { width: 160 });
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('data-sparsity="62.50"');
    expect(svg).toContain("<title>BlockMask(B=1, H=1, qLen=300, kvLen=500, blockSize=[64, 64], blocks=5×8, sparsity=62.50%), b=0, h=0</title>");
    expect(paintedCells(svg, 5, 8, 160)).toEqual(["peeeeeee", "fpeeeeee", "ffpeeeee", "fffpeeee", "ffffpeee"]);
  });

  it("agrees with toDense on a data-dependent mask, per (b, h) entry", () => {
    const docs = randomDocumentIds(512, 5, 3);
    const m = createBlockMask(documentCausal(docs), { qLen: 512, kvLen: 512, blockSize: 32 });
    const dense = m.toDense();
    const want = Array.from({ length: 16 }, (_, r) =>
      Array.from(dense.data.subarray(r * 16, (r + 1) * 16), (s) => "epf"[s]).join(""));
    expect(paintedCells(blockMaskSvg(m, { width: 320 }), 16, 16, 320)).toEqual(want);
    const perBatch = createBlockMask(prefixLM(Int32Array.from([16, 48])), { B: 2, qLen: 64, kvLen: 64, blockSize: 16 });
    expect(paintedCells(blockMaskSvg(perBatch, { entry: 1, width: 40 }), 4, 4, 40)).not.toEqual(
      paintedCells(blockMaskSvg(perBatch, { entry: 0, width: 40 }), 4, 4, 40));
  });

  it("downsamples large grids and marks mixed cells", () => {
    const m = createBlockMask(causal(), { qLen: 65536, kvLen: 65536 });
    const svg = blockMaskSvg(m, { grid: [8, 8], width: 80 });
    expect(svg).toContain("one cell = 64×64 blocks");
    expect(paintedCells(svg, 8, 8, 80)[2]).toBe("ffmeeeee");
  });

  it("refuses an entry the mask does not have", () => {
    const m = createBlockMask(causal(), { qLen: 64, kvLen: 64, blockSize: 16 });
    expect(() => blockMaskSvg(m, { entry: 1 })).toThrow(/entry 1 is not one of the mask's 1 \(b, h\) table entries/);
  });
});
