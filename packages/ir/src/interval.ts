/**
 * Interval analysis: bound every node of a ModGraph given ranges for b, h, q, kv (and score),
 * and summaries of captured buffers. A bool result is always-true, always-false or unknown.
 * Sound by construction: each rule over-approximates the evaluator's semantics.
 */
import { I32_MAX, I32_MIN, evalUnary, f32ToI32, floorDivI32, modI32 } from "./semantics.js";
import { boundBuffers } from "./evaluate.js";
import type { BufferData, InputName, ModGraph } from "./types.js";
import { FlexAttnError } from "./types.js";

/** Closed interval [lo, hi]; `nan` marks that an f32 value may also be NaN. bool is [0|1, 0|1]. */
export interface Interval {
  lo: number;
  hi: number;
  nan?: boolean;
}

export type InputRanges = Partial<Record<InputName, Interval>> & { b: Interval; h: Interval; q: Interval; kv: Interval };

/** Bound the values of buffer `slot` over the given index ranges; undefined → whole buffer. */
export type BufferRangeFn = (slot: number, indices: readonly Interval[]) => Interval | undefined;

export type Truth = "true" | "false" | "unknown";

const FULL_I32: Interval = { lo: I32_MIN, hi: I32_MAX };
const FULL_F32: Interval = { lo: -Infinity, hi: Infinity, nan: true };
const f = Math.fround;

function i32(lo: number, hi: number): Interval {
  return lo < I32_MIN || hi > I32_MAX ? FULL_I32 : { lo, hi };
}

function corners(a: Interval, b: Interval, op: (x: number, y: number) => number): [number, number] {
  const c = [op(a.lo, b.lo), op(a.lo, b.hi), op(a.hi, b.lo), op(a.hi, b.hi)];
  return [Math.min(...c), Math.max(...c)];
}

function f32Interval(lo: number, hi: number, nan = false): Interval {
  if (Number.isNaN(lo) || Number.isNaN(hi)) return FULL_F32;
  return { lo: f(lo), hi: f(hi), nan };
}

function join(a: Interval, b: Interval): Interval {
  return { lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi), nan: a.nan || b.nan };
}

/** Whole-buffer bounds, the fallback summary. */
function wholeBufferRange(data: BufferData): Interval {
  let lo = Infinity;
  let hi = -Infinity;
  let nan = false;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (Number.isNaN(v)) nan = true;
    else {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return { lo, hi, nan };
}

/**
 * A reusable analyzer for one graph: construct once, call `run` per region (BlockMask
 * construction calls it for thousands of tiles).
 */
export class IntervalAnalyzer {
  private readonly values: Interval[];
  private readonly whole: Interval[];

  constructor(
    readonly graph: ModGraph,
    buffers?: readonly BufferData[],
  ) {
    this.values = new Array(graph.nodes.length);
    this.whole = graph.buffers.length ? boundBuffers(graph, buffers).map(wholeBufferRange) : [];
  }

  /** Bounds of every node for inputs in the given ranges. */
  run(inputs: InputRanges, bufferRange?: BufferRangeFn): Interval[] {
    const { graph, values } = this;
    for (let i = 0; i < graph.nodes.length; i++) values[i] = this.node(i, inputs, bufferRange);
    return values;
  }

  /** For a mask: is it true everywhere in the region, false everywhere, or unknown? */
  truth(inputs: InputRanges, bufferRange?: BufferRangeFn): Truth {
    const vals = this.run(inputs, bufferRange);
    const r = vals[vals.length - 1];
    return r.lo === 1 ? "true" : r.hi === 0 ? "false" : "unknown";
  }

  private node(i: number, inputs: InputRanges, bufferRange?: BufferRangeFn): Interval {
    const n = this.graph.nodes[i];
    const v = this.values;
    const a = v[n.args[0]];
    const b = v[n.args[1]];
    const isInt = n.args.length > 0 && this.graph.nodes[n.args[0]].dtype !== "f32";
    switch (n.op) {
      case "const": {
        const x = Number(n.value);
        return { lo: x, hi: x, nan: Number.isNaN(x) };
      }
      case "input": {
        const r = inputs[n.input!];
        if (r) return r;
        if (n.input === "score") return FULL_F32;
        throw new FlexAttnError(`interval analysis needs a range for input "${n.input}"`);
      }
      case "load": {
        const spec = this.graph.buffers[n.buffer!];
        const idx = n.args.map((k) => v[k]);
        const inRange = idx.every((r, axis) => r.lo >= 0 && r.hi < spec.shape[axis]);
        const outside = idx.some((r, axis) => r.hi < 0 || r.lo >= spec.shape[axis]);
        if (outside) return { lo: 0, hi: 0 };
        const r = bufferRange?.(n.buffer!, idx) ?? this.whole[n.buffer!];
        return inRange ? r : join(r, { lo: 0, hi: 0 });
      }
      case "where":
        return a.lo === 1 ? b : a.hi === 0 ? v[n.args[2]] : join(b, v[n.args[2]]);
      case "not":
        return { lo: 1 - a.hi, hi: 1 - a.lo };
      case "and":
        return { lo: a.lo & b.lo, hi: a.hi & b.hi };
      case "or":
        return { lo: a.lo | b.lo, hi: a.hi | b.hi };
      case "lt": case "le": case "gt": case "ge": case "eq": case "ne":
        return compareInterval(n.op, a, b);
      case "neg":
        return isInt ? i32(-a.hi, -a.lo) : { lo: -a.hi, hi: -a.lo, nan: a.nan };
      case "abs": {
        const lo = a.lo >= 0 ? a.lo : a.hi <= 0 ? -a.hi : 0;
        const hi = Math.max(Math.abs(a.lo), Math.abs(a.hi));
        return isInt ? i32(lo, hi) : { lo, hi, nan: a.nan };
      }
      case "toF32":
        return { lo: f(a.lo), hi: f(a.hi) };
      case "toI32":
        if (!isInt) {
          const r = { lo: f32ToI32(a.lo), hi: f32ToI32(a.hi) };
          return a.nan ? join(r, { lo: 0, hi: 0 }) : r;
        }
        return a;
      case "exp": case "exp2": case "tanh": case "sigmoid":
        return { lo: evalUnary(n.op, "f32", a.lo), hi: evalUnary(n.op, "f32", a.hi), nan: a.nan };
      case "log": case "log2": case "sqrt": {
        const nan = a.nan || a.lo < 0;
        return { lo: evalUnary(n.op, "f32", Math.max(a.lo, 0)), hi: evalUnary(n.op, "f32", Math.max(a.hi, 0)), nan };
      }
      case "add": case "sub": case "mul": case "min": case "max":
        return arithmetic(n.op, a, b, isInt);
      case "div":
        if (b.lo > 0 || b.hi < 0) return f32Interval(...corners(a, b, (x, y) => x / y), a.nan || b.nan || infinitiesMakeNaN("div", a, b));
        return FULL_F32;
      case "floorDiv":
        return isInt ? floorDivInterval(a, b) : FULL_F32;
      case "mod":
        return isInt ? modInterval(a, b) : FULL_F32;
    }
  }
}

function arithmetic(op: "add" | "sub" | "mul" | "min" | "max", a: Interval, b: Interval, isInt: boolean): Interval {
  let lo: number;
  let hi: number;
  switch (op) {
    case "add": lo = a.lo + b.lo; hi = a.hi + b.hi; break;
    case "sub": lo = a.lo - b.hi; hi = a.hi - b.lo; break;
    case "mul": [lo, hi] = corners(a, b, (x, y) => x * y); break;
    case "min": lo = Math.min(a.lo, b.lo); hi = Math.min(a.hi, b.hi); break;
    case "max": lo = Math.max(a.lo, b.lo); hi = Math.max(a.hi, b.hi); break;
  }
  if (isInt) return i32(lo, hi);
  return f32Interval(lo, hi, a.nan || b.nan || infinitiesMakeNaN(op, a, b));
}

const mayBeInfinite = (x: Interval) => x.lo === -Infinity || x.hi === Infinity;
const mayBeZero = (x: Interval) => x.lo <= 0 && x.hi >= 0;

/** NaN from non-NaN operands: Inf - Inf, Inf + -Inf, 0 · Inf, Inf / Inf (endpoints alone miss it). */
function infinitiesMakeNaN(op: "add" | "sub" | "mul" | "div" | "min" | "max", a: Interval, b: Interval): boolean {
  switch (op) {
    case "add": return (a.hi === Infinity && b.lo === -Infinity) || (a.lo === -Infinity && b.hi === Infinity);
    case "sub": return (a.hi === Infinity && b.hi === Infinity) || (a.lo === -Infinity && b.lo === -Infinity);
    case "mul": return (mayBeZero(a) && mayBeInfinite(b)) || (mayBeZero(b) && mayBeInfinite(a));
    case "div": return mayBeInfinite(a) && mayBeInfinite(b);
    default: return false;
  }
}

function floorDivInterval(a: Interval, b: Interval): Interval {
  // floorDiv is monotone in each argument on each side of zero; x / 0 is defined as 0.
  const parts: Interval[] = [];
  const side = (blo: number, bhi: number) => {
    const [lo, hi] = corners(a, { lo: blo, hi: bhi }, (x, y) => floorDivI32(x, y));
    parts.push({ lo, hi });
  };
  if (b.lo <= -1) side(b.lo, Math.min(b.hi, -1));
  if (b.hi >= 1) side(Math.max(b.lo, 1), b.hi);
  if (b.lo <= 0 && b.hi >= 0) parts.push({ lo: 0, hi: 0 });
  // INT_MIN / -1 wraps: fall back to the full range when it is reachable.
  if (a.lo === I32_MIN && b.lo <= -1 && b.hi >= -1) return FULL_I32;
  return parts.reduce(join);
}

function modInterval(a: Interval, b: Interval): Interval {
  if (b.lo === b.hi && b.lo > 0) {
    const c = b.lo;
    if (Math.floor(a.lo / c) === Math.floor(a.hi / c)) return { lo: modI32(a.lo, c), hi: modI32(a.hi, c) };
    return { lo: 0, hi: c - 1 };
  }
  const lo = b.lo < 0 ? b.lo + 1 : 0;
  const hi = b.hi > 0 ? b.hi - 1 : 0;
  return { lo: Math.min(lo, 0), hi: Math.max(hi, 0) };
}

function compareInterval(op: "lt" | "le" | "gt" | "ge" | "eq" | "ne", a: Interval, b: Interval): Interval {
  const nan = a.nan || b.nan;
  let alwaysTrue: boolean;
  let alwaysFalse: boolean;
  switch (op) {
    case "lt": alwaysTrue = a.hi < b.lo; alwaysFalse = a.lo >= b.hi; break;
    case "le": alwaysTrue = a.hi <= b.lo; alwaysFalse = a.lo > b.hi; break;
    case "gt": alwaysTrue = a.lo > b.hi; alwaysFalse = a.hi <= b.lo; break;
    case "ge": alwaysTrue = a.lo >= b.hi; alwaysFalse = a.hi < b.lo; break;
    case "eq": alwaysTrue = a.lo === a.hi && b.lo === b.hi && a.lo === b.lo; alwaysFalse = a.hi < b.lo || b.hi < a.lo; break;
    case "ne": alwaysTrue = a.hi < b.lo || b.hi < a.lo; alwaysFalse = a.lo === a.hi && b.lo === b.hi && a.lo === b.lo; break;
  }
  // NaN makes every comparison false except ne.
  if (nan) {
    if (op === "ne") alwaysFalse = false;
    else alwaysTrue = false;
  }
  return { lo: alwaysTrue ? 1 : 0, hi: alwaysFalse ? 0 : 1 };
}

/** Convenience: bounds of every node for one set of ranges. */
export function analyzeIntervals(graph: ModGraph, inputs: InputRanges, bufferRange?: BufferRangeFn, buffers?: readonly BufferData[]): Interval[] {
  return new IntervalAnalyzer(graph, buffers).run(inputs, bufferRange).slice();
}

/** Index ranges already reported by checkBufferIndices (once per buffer, axis and range in a process). */
const reportedRanges = new Set<string>();

/**
 * Reject buffer indices that are provably out of range for the given input ranges: such a
 * load can only ever read 0, which is never what the author meant. Indices that may leave the
 * buffer for part of the range are reported once through `warn`: a buffer sized for a shorter
 * sequence is a common slip, and its extra positions would silently read 0.
 */
export function checkBufferIndices(
  graph: ModGraph, inputs: InputRanges, buffers?: readonly BufferData[], warn: (message: string) => void = (m) => console.warn(m),
): void {
  const vals = new IntervalAnalyzer(graph, buffers).run(inputs);
  graph.nodes.forEach((n) => {
    if (n.op !== "load") return;
    const spec = graph.buffers[n.buffer!];
    n.args.forEach((arg, axis) => {
      const r = vals[arg];
      const size = spec.shape[axis];
      if (r.hi < 0 || r.lo >= size) {
        throw new FlexAttnError(
          `buffer "${spec.name}" is indexed with values in [${r.lo}, ${r.hi}] on axis ${axis}, ` +
            `always outside its range [0, ${size}): check the index expression and the sequence lengths`,
        );
      }
      const key = `${spec.name}|${axis}|${size}|${r.lo}|${r.hi}`;
      if ((r.lo < 0 || r.hi >= size) && !reportedRanges.has(key)) {
        reportedRanges.add(key);
        warn(
          `flexattn: buffer "${spec.name}" (${size} entries on axis ${axis}) may be indexed with values in [${r.lo}, ${r.hi}] ` +
            "for these sizes; indices outside it read 0. Size the buffer for the sequence, or clamp the index with min() / max() " +
            "if the reads of 0 are meant",
        );
      }
    });
  });
}
