/**
 * A readable picture of a BlockMask: one cell per block (or per group of blocks when the grid
 * is larger than the requested size), drawn from the kv tables without a dense block array.
 */
import type { BlockMaskShape, BlockTables, TableDims } from "./types.js";

export const PICTURE_LEGEND = "█ full  ▒ partial  ░ empty  ▓ mixed (downsampled)";

export interface PictureOptions {
  /** Most rows and columns of cells to draw; larger grids are downsampled. Default [24, 48]. */
  grid?: readonly [number, number];
  /** Most (b, h) table entries to draw. Default 4. */
  limit?: number;
}

export interface PictureSource extends TableDims {
  readonly shape: BlockMaskShape;
  readonly blockSize: readonly [number, number];
  readonly tables: BlockTables;
  readonly sparsity: number;
}

export function renderPicture(m: PictureSource, options: PictureOptions = {}): string {
  const [maxRows, maxCols] = options.grid ?? [24, 48];
  const limit = options.limit ?? 4;
  const QB = m.numQBlocks;
  const KVB = m.numKvBlocks;
  const fq = Math.max(1, Math.ceil(QB / Math.max(1, maxRows)));
  const fk = Math.max(1, Math.ceil(KVB / Math.max(1, maxCols)));
  const rows = Math.ceil(QB / fq);
  const cols = Math.ceil(KVB / fk);
  const s = m.shape;
  const lines = [
    `BlockMask(B=${s.B}, H=${s.H}, qLen=${s.qLen}, kvLen=${s.kvLen}, blockSize=[${m.blockSize.join(", ")}], ` +
      `blocks=${QB}×${KVB}, sparsity=${m.sparsity.toFixed(2)}%)`,
  ];
  if (fq > 1 || fk > 1) lines.push(`(one cell = ${fq}×${fk} blocks)`);
  lines.push(PICTURE_LEGEND);
  const entries = m.Bm * m.Hm;
  const full = new Int32Array(rows * cols);
  const partial = new Int32Array(rows * cols);
  for (let entry = 0; entry < Math.min(entries, limit); entry++) {
    full.fill(0);
    partial.fill(0);
    count(m.tables.fullKvNumBlocks, m.tables.fullKvIndices, full);
    count(m.tables.kvNumBlocks, m.tables.kvIndices, partial);
    const bm = Math.floor(entry / m.Hm);
    const hm = entry % m.Hm;
    const b = m.Bm === 1 && s.B > 1 ? "*" : String(bm);
    const h = m.Hm === 1 && s.H > 1 ? "*" : String(hm);
    lines.push(`b=${b}, h=${h}:`);
    for (let r = 0; r < rows; r++) {
      let line = "";
      for (let c = 0; c < cols; c++) {
        const cellBlocks = (Math.min((r + 1) * fq, QB) - r * fq) * (Math.min((c + 1) * fk, KVB) - c * fk);
        line += cell(full[r * cols + c], partial[r * cols + c], cellBlocks);
      }
      lines.push(line);
    }

    function count(num: Int32Array, idx: Int32Array, into: Int32Array): void {
      for (let qb = 0; qb < QB; qb++) {
        const row = entry * QB + qb;
        for (let j = 0; j < num[row]; j++) into[Math.floor(qb / fq) * cols + Math.floor(idx[row * KVB + j] / fk)]++;
      }
    }
  }
  if (entries > limit) lines.push(`… ${entries - limit} more (b, h) entries`);
  return lines.join("\n");
}

/** Two characters per cell keep blocks roughly square in a terminal. */
function cell(full: number, partial: number, total: number): string {
  if (full === total) return "██";
  if (partial === total) return "▒▒";
  if (full + partial === 0) return "░░";
  if (full === 0) return "▒▒";
  return "▓▓";
}
