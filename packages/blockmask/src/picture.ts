/**
 * Pictures of a BlockMask: text for terminals and SVG for pages. Both draw one cell per block
 * (or per group of blocks when the grid is larger than the requested size), counted from the
 * kv tables without a dense block array.
 */
import { FlexAttnError } from "@flexattn/ir";
import type { BlockMaskShape, BlockTables, TableDims } from "./types.js";

export const PICTURE_LEGEND = "█ full  ▒ partial  ░ empty  ▓ mixed (downsampled)";

export interface PictureOptions {
  /** Most rows and columns of cells to draw; larger grids are downsampled. Default [24, 48]. */
  grid?: readonly [number, number];
  /** Most (b, h) table entries to draw. Default 4. */
  limit?: number;
}

type KvTables = Pick<BlockTables, "kvNumBlocks" | "kvIndices" | "fullKvNumBlocks" | "fullKvIndices">;

export interface PictureSource extends TableDims {
  readonly shape: BlockMaskShape;
  readonly blockSize: readonly [number, number];
  readonly tables: KvTables;
  readonly sparsity: number;
}

/** What one cell of a picture shows. "mixed": a downsampled cell whose blocks differ. */
export type CellState = "full" | "partial" | "empty" | "mixed";

/** A picture's cell grid: `fq × fk` blocks per cell, `rows × cols` cells. */
interface CellGrid {
  fq: number;
  fk: number;
  rows: number;
  cols: number;
}

function cellGrid(m: TableDims, grid: readonly [number, number]): CellGrid {
  const fq = Math.max(1, Math.ceil(m.numQBlocks / Math.max(1, grid[0])));
  const fk = Math.max(1, Math.ceil(m.numKvBlocks / Math.max(1, grid[1])));
  return { fq, fk, rows: Math.ceil(m.numQBlocks / fq), cols: Math.ceil(m.numKvBlocks / fk) };
}

/** The state of every cell of one (b, h) table entry, row-major. */
function cellStates(m: TableDims & { readonly tables: KvTables }, g: CellGrid, entry: number): CellState[] {
  const QB = m.numQBlocks;
  const KVB = m.numKvBlocks;
  const full = new Int32Array(g.rows * g.cols);
  const partial = new Int32Array(g.rows * g.cols);
  const count = (num: Int32Array, idx: Int32Array, into: Int32Array) => {
    for (let qb = 0; qb < QB; qb++) {
      const row = entry * QB + qb;
      for (let j = 0; j < num[row]; j++) into[Math.floor(qb / g.fq) * g.cols + Math.floor(idx[row * KVB + j] / g.fk)]++;
    }
  };
  count(m.tables.fullKvNumBlocks, m.tables.fullKvIndices, full);
  count(m.tables.kvNumBlocks, m.tables.kvIndices, partial);
  const states: CellState[] = [];
  for (let r = 0; r < g.rows; r++) {
    for (let c = 0; c < g.cols; c++) {
      const total = (Math.min((r + 1) * g.fq, QB) - r * g.fq) * (Math.min((c + 1) * g.fk, KVB) - c * g.fk);
      const f = full[r * g.cols + c];
      const p = partial[r * g.cols + c];
      states.push(f === total ? "full" : p === total ? "partial" : f + p === 0 ? "empty" : f === 0 ? "partial" : "mixed");
    }
  }
  return states;
}

function header(m: PictureSource): string {
  const s = m.shape;
  return (
    `BlockMask(B=${s.B}, H=${s.H}, qLen=${s.qLen}, kvLen=${s.kvLen}, blockSize=[${m.blockSize.join(", ")}], ` +
    `blocks=${m.numQBlocks}×${m.numKvBlocks}, sparsity=${m.sparsity.toFixed(2)}%)`
  );
}

/** "b=0, h=*": which logical batch and head a table entry stands for ("*" = broadcast). */
function entryLabel(m: PictureSource, entry: number): string {
  const bm = Math.floor(entry / m.Hm);
  const hm = entry % m.Hm;
  const b = m.Bm === 1 && m.shape.B > 1 ? "*" : String(bm);
  const h = m.Hm === 1 && m.shape.H > 1 ? "*" : String(hm);
  return `b=${b}, h=${h}`;
}

/** Two characters per cell keep blocks roughly square in a terminal. */
const TEXT_CELL: Record<CellState, string> = { full: "██", partial: "▒▒", empty: "░░", mixed: "▓▓" };

export function renderPicture(m: PictureSource, options: PictureOptions = {}): string {
  const limit = options.limit ?? 4;
  const g = cellGrid(m, options.grid ?? [24, 48]);
  const lines = [header(m)];
  if (g.fq > 1 || g.fk > 1) lines.push(`(one cell = ${g.fq}×${g.fk} blocks)`);
  lines.push(PICTURE_LEGEND);
  const entries = m.Bm * m.Hm;
  for (let entry = 0; entry < Math.min(entries, limit); entry++) {
    lines.push(`${entryLabel(m, entry)}:`);
    const states = cellStates(m, g, entry);
    for (let r = 0; r < g.rows; r++) lines.push(states.slice(r * g.cols, (r + 1) * g.cols).map((s) => TEXT_CELL[s]).join(""));
  }
  if (entries > limit) lines.push(`… ${entries - limit} more (b, h) entries`);
  return lines.join("\n");
}

export interface SvgPictureOptions {
  /** Most rows and columns of cells; larger grids are downsampled. Default [64, 64]. */
  grid?: readonly [number, number];
  /** Which (b, h) table entry to draw, as a flat index over [Bm, Hm]. Default 0. */
  entry?: number;
  /** Width of the drawing in CSS pixels (the height follows the cell grid). Default 320. */
  width?: number;
}

/** Cell colours: dark = computed without the mask, mid = mask applied, light = skipped. */
export const SVG_COLORS: Readonly<Record<CellState, string>> = {
  full: "#1f4e79",
  partial: "#6fa8dc",
  mixed: "#3d78b0",
  empty: "#f1f4f8",
};

/**
 * An SVG picture of one (b, h) entry of a BlockMask: queries down, keys across, one square per
 * cell, with a <title> for screen readers and hover. Self-contained (inline colours, no CSS).
 */
export function renderSvgPicture(m: PictureSource, options: SvgPictureOptions = {}): string {
  const entry = options.entry ?? 0;
  if (!Number.isInteger(entry) || entry < 0 || entry >= m.Bm * m.Hm) {
    throw new FlexAttnError(`blockMaskSvg: entry ${entry} is not one of the mask's ${m.Bm * m.Hm} (b, h) table entries`);
  }
  const g = cellGrid(m, options.grid ?? [64, 64]);
  const width = options.width ?? 320;
  const cell = width / g.cols;
  const height = cell * g.rows;
  const states = cellStates(m, g, entry);
  const num = (x: number) => Number(x.toFixed(3));
  const rects: string[] = [];
  for (let r = 0; r < g.rows; r++) {
    // Runs of equal cells become one rectangle: a causal mask of 64×64 cells draws ~190, not 4096.
    for (let c = 0; c < g.cols; ) {
      const state = states[r * g.cols + c];
      let end = c + 1;
      while (end < g.cols && states[r * g.cols + end] === state) end++;
      if (state !== "empty") {
        rects.push(
          `<rect x="${num(c * cell)}" y="${num(r * cell)}" width="${num((end - c) * cell)}" height="${num(cell)}" fill="${SVG_COLORS[state]}"/>`,
        );
      }
      c = end;
    }
  }
  const title = `${header(m)}, ${entryLabel(m, entry)}` + (g.fq > 1 || g.fk > 1 ? `, one cell = ${g.fq}×${g.fk} blocks` : "");
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="flexattn-blockmask" width="${num(width)}" height="${num(height)}" ` +
      `viewBox="0 0 ${num(width)} ${num(height)}" role="img" aria-label="${title}" ` +
      `data-sparsity="${m.sparsity.toFixed(2)}" data-cells="${g.rows}x${g.cols}">`,
    `<title>${title}</title>`,
    `<rect width="${num(width)}" height="${num(height)}" fill="${SVG_COLORS.empty}"/>`,
    ...rects,
    `<rect width="${num(width)}" height="${num(height)}" fill="none" stroke="#8a94a6" stroke-width="1"/>`,
    `</svg>`,
  ].join("\n");
}

/** A BlockMask as blockMaskSvg reads it (structurally). */
export interface SvgSource extends TableDims, KvTables {
  readonly shape: BlockMaskShape;
  readonly blockSize: readonly [number, number];
  sparsity(): number;
}

/** The SVG picture of a BlockMask (see renderSvgPicture): `blockMaskSvg(createBlockMask(causal(), shape))`. */
export function blockMaskSvg(m: SvgSource, options: SvgPictureOptions = {}): string {
  const source: PictureSource = {
    Bm: m.Bm, Hm: m.Hm, numQBlocks: m.numQBlocks, numKvBlocks: m.numKvBlocks,
    shape: m.shape, blockSize: m.blockSize, tables: m, sparsity: m.sparsity(),
  };
  return renderSvgPicture(source, options);
}
