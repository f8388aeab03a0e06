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
  /** The expression holding the mod's value. */
  result: string;
}

/** Render a graph as straight-line code; temporaries are named `${prefix}${index}`. */
export function renderGraph(graph: ModGraph, r: ExprRenderer, prefix: string): RenderedMod {
  const exprs: string[] = [];
  const statements: string[] = [];
  graph.nodes.forEach((n, i) => {
    const expr = renderNode(graph, n, exprs, r);
    if (n.op === "const" || n.op === "input") {
      exprs.push(expr);
      return;
    }
    const name = `${prefix}${i}`;
    statements.push(r.declare(name, n.dtype, expr));
    exprs.push(name);
  });
  return { statements, result: exprs[exprs.length - 1] };
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
