/**
 * The backend-independent half of every renderer: walk a ModGraph in order and ask a
 * target's ExprRenderer for one expression per node. Backends supply only the op table.
 */
import type { BinaryOp, BufferSpec, DType, IRNode, InputName, ModGraph, UnaryOp } from "./types.js";

export interface ExprRenderer {
  constant(value: number | boolean, dtype: DType): string;
  input(name: InputName): string;
  /** A guarded load: out-of-range indices read 0 (see evaluate.ts). */
  load(spec: BufferSpec, slot: number, indices: string[]): string;
  /** `argType` is the operand's type; the result type is on the node. */
  unary(op: UnaryOp, x: string, argType: DType, resultType: DType): string;
  binary(op: BinaryOp, a: string, b: string, argType: DType): string;
  where(cond: string, a: string, b: string, dtype: DType): string;
  /** One statement binding a temporary. */
  declare(name: string, dtype: DType, expr: string): string;
}

export interface RenderedMod {
  /** Statements to place before the use of `result`, in order. */
  statements: string[];
  /** The graph node each statement declares (consts and inputs declare none). */
  nodes: number[];
  /** The expression holding the mod's value. */
  result: string;
}

/**
 * The reciprocal a renderer may multiply by for `x / c` with c an f32 constant, as Inductor does:
 * exact for powers of two, else within 1 ulp of IEEE division, and one multiply instead of a
 * division sequence. Undefined where c is 0 or not finite, or its reciprocal is not a finite f32.
 */
export function constantReciprocal(c: number): number | undefined {
  const r = Math.fround(1 / c);
  return c !== 0 && Number.isFinite(c) && Number.isFinite(r) ? r : undefined;
}

/**
 * Render a graph as straight-line code. Temporaries are named `${prefix}${index}`, or by
 * `name(index)` when the caller places nodes in different scopes (see inputDependence).
 */
export function renderGraph(graph: ModGraph, r: ExprRenderer, prefix: string | ((node: number) => string)): RenderedMod {
  const nameOf = typeof prefix === "string" ? (i: number) => `${prefix}${i}` : prefix;
  const exprs: string[] = [];
  const statements: string[] = [];
  const nodes: number[] = [];
  graph.nodes.forEach((n, i) => {
    const expr = renderNode(graph, n, exprs, r);
    if (n.op === "const" || n.op === "input") {
      exprs.push(expr);
      return;
    }
    const name = nameOf(i);
    statements.push(r.declare(name, n.dtype, expr));
    nodes.push(i);
    exprs.push(name);
  });
  return { statements, nodes, result: exprs[exprs.length - 1] };
}

/** One bit per mod input, for the masks of inputDependence. */
export const INPUT_BIT: Readonly<Record<InputName, number>> = { score: 1, b: 2, h: 4, q: 8, kv: 16 };

/**
 * For each node, the inputs it depends on (an OR of INPUT_BIT). Mods are pure and their loads
 * are guarded, so a node may be evaluated once wherever its inputs are fixed: once per query
 * row when it reads neither kv nor score, once per key when it reads neither q nor score.
 */
export function inputDependence(graph: ModGraph): number[] {
  const deps: number[] = [];
  for (const n of graph.nodes) {
    if (n.op === "input") deps.push(INPUT_BIT[n.input!]);
    else deps.push(n.args.reduce((m, a) => m | deps[a], 0));
  }
  return deps;
}

function renderNode(graph: ModGraph, n: IRNode, exprs: string[], r: ExprRenderer): string {
  const arg = (k: number) => exprs[n.args[k]];
  switch (n.op) {
    case "const": return r.constant(n.value!, n.dtype);
    case "input": return r.input(n.input!);
    case "load": return r.load(graph.buffers[n.buffer!], n.buffer!, n.args.map((a) => exprs[a]));
    case "where": return r.where(arg(0), arg(1), arg(2), n.dtype);
    default: {
      const argType = graph.nodes[n.args[0]].dtype;
      if (n.args.length === 1) return r.unary(n.op as UnaryOp, arg(0), argType, n.dtype);
      return r.binary(n.op as BinaryOp, arg(0), arg(1), argType);
    }
  }
}

/** Inputs a graph reads, for backends that compute them lazily. */
export function usedInputs(graph: ModGraph): Set<InputName> {
  const used = new Set<InputName>();
  for (const n of graph.nodes) if (n.op === "input") used.add(n.input!);
  return used;
}
