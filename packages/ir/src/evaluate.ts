/**
 * The reference evaluator: the exact semantics every backend must reproduce
 * (i32 wraparound, Python floor division and modulo, IEEE f32, out-of-range loads read 0).
 */
import { evalBinary, evalUnary, isBinary, isUnary } from "./semantics.js";
import type { BufferData, BufferSpec, IRNode, InputName, ModGraph } from "./types.js";
import { FlexAttnError } from "./types.js";

export interface ScalarEnv {
  b: number;
  h: number;
  q: number;
  kv: number;
  /** Required for score mods. */
  score?: number;
}

/** Per-element inputs: arrays (one entry per element) or scalars broadcast to all. */
export interface BatchEnv {
  length: number;
  b: ArrayLike<number> | number;
  h: ArrayLike<number> | number;
  q: ArrayLike<number> | number;
  kv: ArrayLike<number> | number;
  score?: ArrayLike<number> | number;
}

/** The data bound to a graph's buffers: explicit override, else what was captured. */
export function boundBuffers(graph: ModGraph, override?: readonly BufferData[]): BufferData[] {
  return graph.buffers.map((spec, i) => {
    const data = override?.[i] ?? spec.data;
    if (!data) throw new FlexAttnError(`buffer "${spec.name}" has no data bound (graphs read from JSON need bindBuffers)`);
    const size = spec.shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) {
      throw new FlexAttnError(`buffer "${spec.name}" expects ${size} elements, got ${data.length}`);
    }
    return data;
  });
}

/** Guarded load: the flat offset, or -1 when any index is out of range (the load then reads 0). */
export function bufferOffset(spec: BufferSpec, i: number, j?: number): number {
  const [rows, cols] = spec.shape;
  if (i < 0 || i >= rows) return -1;
  if (spec.shape.length === 1) return i;
  if (j === undefined || j < 0 || j >= cols) return -1;
  return i * cols + j;
}

function inputValue(name: InputName, env: ScalarEnv): number {
  const v = env[name];
  if (v === undefined) throw new FlexAttnError(`evaluate: input "${name}" is required by this graph`);
  return name === "score" ? Math.fround(v) : v | 0;
}

function evalNode(n: IRNode, vals: ArrayLike<number>, graph: ModGraph, data: BufferData[], env: ScalarEnv): number {
  switch (n.op) {
    case "const": return Number(n.value);
    case "input": return inputValue(n.input!, env);
    case "load": {
      const spec = graph.buffers[n.buffer!];
      const off = bufferOffset(spec, vals[n.args[0]], n.args.length > 1 ? vals[n.args[1]] : undefined);
      return off < 0 ? 0 : data[n.buffer!][off];
    }
    case "where": return vals[n.args[0]] ? vals[n.args[1]] : vals[n.args[2]];
    default: {
      const argType = graph.nodes[n.args[0]].dtype;
      if (isUnary(n.op)) return evalUnary(n.op, argType, vals[n.args[0]]);
      if (isBinary(n.op)) return evalBinary(n.op, argType, vals[n.args[0]], vals[n.args[1]]);
      throw new FlexAttnError(`evaluate: unknown op ${n.op}`);
    }
  }
}

/** Evaluate a graph at one point. Masks return booleans, score mods numbers. */
export function evaluate(graph: ModGraph, env: ScalarEnv, buffers?: readonly BufferData[]): number | boolean {
  const data = boundBuffers(graph, buffers);
  const vals = new Float64Array(graph.nodes.length);
  for (let i = 0; i < graph.nodes.length; i++) vals[i] = evalNode(graph.nodes[i], vals, graph, data, env);
  const out = vals[graph.nodes.length - 1];
  return graph.nodes[graph.nodes.length - 1].dtype === "bool" ? out !== 0 : out;
}

/**
 * Evaluate many points at once, node by node over typed arrays. Returns a Uint8Array (0/1)
 * for masks and a Float32Array for score mods.
 */
export function evaluateBatch(graph: ModGraph, env: BatchEnv, buffers?: readonly BufferData[]): Uint8Array | Float32Array {
  const data = boundBuffers(graph, buffers);
  const n = env.length;
  const columns: Float64Array[] = [];
  const scratch = new Float64Array(graph.nodes.length);
  const scalarEnv: ScalarEnv = { b: 0, h: 0, q: 0, kv: 0 };
  const pick = (src: ArrayLike<number> | number | undefined, k: number) => (typeof src === "number" ? src : src?.[k]);
  for (let i = 0; i < graph.nodes.length; i++) {
    const node = graph.nodes[i];
    const col = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      for (const a of node.args) scratch[a] = columns[a][k];
      scalarEnv.b = pick(env.b, k)!;
      scalarEnv.h = pick(env.h, k)!;
      scalarEnv.q = pick(env.q, k)!;
      scalarEnv.kv = pick(env.kv, k)!;
      scalarEnv.score = pick(env.score, k);
      col[k] = evalNode(node, scratch, graph, data, scalarEnv);
    }
    columns.push(col);
  }
  const last = columns[columns.length - 1];
  return graph.nodes[graph.nodes.length - 1].dtype === "bool" ? Uint8Array.from(last) : Float32Array.from(last);
}
