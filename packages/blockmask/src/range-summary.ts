/**
 * Range min/max over captured buffers, so interval analysis can bound `docs.at(q)` by the
 * document ids in a tile's q range instead of the whole buffer. O(1) queries, O(n) memory:
 * per 32-element chunk, prefix and suffix extremes; a sparse table over chunk extremes.
 */
import type { BufferData, BufferRangeFn, Interval, ModGraph } from "@flexattn/ir";
import { boundBuffers } from "@flexattn/ir";

const SHIFT = 5;
const CHUNK = 1 << SHIFT;
const ANYTHING: Interval = { lo: -Infinity, hi: Infinity, nan: true };

type Extremes = Int32Array | Float32Array;

export class RangeMinMax {
  private readonly prefMin: Extremes;
  private readonly prefMax: Extremes;
  private readonly sufMin: Extremes;
  private readonly sufMax: Extremes;
  /** Level k holds extremes of 2^k consecutive chunks starting at each chunk. */
  private readonly tableMin: Extremes[] = [];
  private readonly tableMax: Extremes[] = [];
  /** NaN count prefix sums (f32 data with NaNs only). */
  private readonly nans?: Int32Array;

  constructor(private readonly data: BufferData) {
    const n = data.length;
    const make = (len: number): Extremes => (data instanceof Int32Array ? new Int32Array(len) : new Float32Array(len));
    this.prefMin = make(n);
    this.prefMax = make(n);
    this.sufMin = make(n);
    this.sufMax = make(n);
    const chunks = (n + CHUNK - 1) >> SHIFT;
    const cMin = make(chunks);
    const cMax = make(chunks);
    for (let c = 0; c < chunks; c++) {
      const start = c << SHIFT;
      const end = Math.min(start + CHUNK, n);
      let lo = data[start];
      let hi = lo;
      for (let i = start; i < end; i++) {
        lo = Math.min(lo, data[i]);
        hi = Math.max(hi, data[i]);
        this.prefMin[i] = lo;
        this.prefMax[i] = hi;
      }
      cMin[c] = lo;
      cMax[c] = hi;
      lo = hi = data[end - 1];
      for (let i = end - 1; i >= start; i--) {
        lo = Math.min(lo, data[i]);
        hi = Math.max(hi, data[i]);
        this.sufMin[i] = lo;
        this.sufMax[i] = hi;
      }
    }
    this.tableMin.push(cMin);
    this.tableMax.push(cMax);
    for (let k = 1; 1 << k <= chunks; k++) {
      const prevMin = this.tableMin[k - 1];
      const prevMax = this.tableMax[k - 1];
      const len = chunks - (1 << k) + 1;
      const mn = make(len);
      const mx = make(len);
      const half = 1 << (k - 1);
      for (let c = 0; c < len; c++) {
        mn[c] = Math.min(prevMin[c], prevMin[c + half]);
        mx[c] = Math.max(prevMax[c], prevMax[c + half]);
      }
      this.tableMin.push(mn);
      this.tableMax.push(mx);
    }
    if (data instanceof Float32Array && data.some(Number.isNaN)) {
      this.nans = new Int32Array(n + 1);
      for (let i = 0; i < n; i++) this.nans[i + 1] = this.nans[i] + (Number.isNaN(data[i]) ? 1 : 0);
    }
  }

  /** Bounds of data[l..r] (inclusive, 0 <= l <= r < n). */
  query(l: number, r: number): Interval {
    if (this.nans && this.nans[r + 1] - this.nans[l] > 0) return ANYTHING;
    const cl = l >> SHIFT;
    const cr = r >> SHIFT;
    let lo: number;
    let hi: number;
    if (cl === cr) {
      const d = this.data;
      lo = hi = d[l];
      for (let i = l + 1; i <= r; i++) {
        const v = d[i];
        if (v < lo) lo = v;
        else if (v > hi) hi = v;
      }
      return { lo, hi };
    }
    lo = Math.min(this.sufMin[l], this.prefMin[r]);
    hi = Math.max(this.sufMax[l], this.prefMax[r]);
    if (cr - cl > 1) {
      const a = cl + 1;
      const k = 31 - Math.clz32(cr - 1 - a + 1);
      const b = cr - (1 << k);
      lo = Math.min(lo, this.tableMin[k][a], this.tableMin[k][b]);
      hi = Math.max(hi, this.tableMax[k][a], this.tableMax[k][b]);
    }
    return { lo, hi };
  }
}

/**
 * The `bufferRange` callback for IntervalAnalyzer.truth: 1-D buffers by index range; 2-D
 * buffers per row when the row index is a single value (rows summarized lazily), else
 * undefined, which makes the analyzer use whole-buffer bounds.
 */
export function makeBufferRange(graph: ModGraph, buffers?: readonly BufferData[]): BufferRangeFn | undefined {
  if (graph.buffers.length === 0) return undefined;
  const data = boundBuffers(graph, buffers);
  const flat: (RangeMinMax | undefined)[] = [];
  const rows: Map<number, RangeMinMax>[] = graph.buffers.map(() => new Map());
  return (slot, indices) => {
    const spec = graph.buffers[slot];
    if (spec.shape.length === 1) {
      const n = spec.shape[0];
      const l = Math.max(indices[0].lo, 0);
      const r = Math.min(indices[0].hi, n - 1);
      if (l > r) return undefined;
      const s = (flat[slot] ??= new RangeMinMax(data[slot]));
      return s.query(l, r);
    }
    const [nRows, nCols] = spec.shape;
    const row = indices[0];
    if (row.lo !== row.hi || row.lo < 0 || row.lo >= nRows) return undefined;
    const l = Math.max(indices[1].lo, 0);
    const r = Math.min(indices[1].hi, nCols - 1);
    if (l > r) return undefined;
    let s = rows[slot].get(row.lo);
    if (!s) {
      s = new RangeMinMax(data[slot].subarray(row.lo * nCols, (row.lo + 1) * nCols));
      rows[slot].set(row.lo, s);
    }
    return s.query(l, r);
  };
}
