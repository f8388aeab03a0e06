/**
 * Reverse-mode differentiation of a traced score mod: from `out = mod(score, b, h, q, kv)` derive
 *
 *   dScore           ∂out/∂score, and
 *   per load site    ∂out/∂(the value a load of a captured f32 buffer read), with the flat
 *                    element offset that load read (-1 when out of range: it read 0, so no gradient).
 *
 * Each result is a ModGraph of its own, built with the hash-consing GraphBuilder from one reverse
 * sweep (so adjoints share the forward's subexpressions and each other's), over the forward's
 * inputs and with the forward's buffer slots unchanged: every derived graph binds the same buffers.
 *
 * Only f32 values carry gradients: i32 and bool paths (indices, comparisons, masks) have none,
 * and so do toI32, f32 floorDiv and the data read by an i32 buffer.
 *
 * Subgradients follow PyTorch's conventions:
 *   where(c, a, b)  the gradient flows to the branch taken, 0 to the other;
 *   max / min       torch.maximum / torch.minimum: the larger (smaller) operand takes it all, a tie splits it half and half;
 *   abs             gradient · sign(x), sign(0) = 0;
 *   f32 mod         torch.remainder: ∂a = 1, ∂b = −floor(a / b); f32 floorDiv: 0.
 */
import { type BufferSource, GraphBuilder, subgraph } from "./builder.js";
import type { BinaryOp, BufferSpec, ModGraph } from "./types.js";
import { FlexAttnError } from "./types.js";
import { boundBuffers, evaluate, type ScalarEnv } from "./evaluate.js";
import type { BufferData } from "./types.js";

/** One load of a captured f32 buffer and what it receives. */
export interface BufferGradientSite {
  /** ∂out/∂(the loaded value): an f32 graph over the mod's inputs. */
  readonly weight: ModGraph;
  /** The flat element offset the load reads, -1 when any index is out of range: an i32 graph. */
  readonly offset: ModGraph;
}

/** The gradient of one captured f32 buffer: the sum of its sites' weights, scattered to their offsets. */
export interface BufferGradient {
  /** Slot in the forward graph's `buffers`. */
  readonly slot: number;
  readonly name: string;
  readonly sites: readonly BufferGradientSite[];
}

export interface ScoreModGradient {
  readonly forward: ModGraph;
  /** ∂out/∂score: an f32 graph over the mod's inputs. */
  readonly dScore: ModGraph;
  /** One entry per f32 buffer of the forward graph, in slot order (a buffer read only as an index has no sites). */
  readonly buffers: readonly BufferGradient[];
}

/** Whether each node carries a gradient: f32 and reachable from the score or an f32 load. */
function activeNodes(g: ModGraph): boolean[] {
  const active: boolean[] = [];
  for (const n of g.nodes) {
    if (n.dtype !== "f32") active.push(false);
    else if (n.op === "input") active.push(n.input === "score");
    else if (n.op === "load") active.push(true);
    else if (n.op === "toF32") active.push(false); // of i32 or bool: an integer path
    else if (n.op === "floorDiv") active.push(false); // piecewise constant
    else if (n.op === "where") active.push(active[n.args[1]] || active[n.args[2]]);
    else active.push(n.args.some((a) => active[a]));
  }
  return active;
}

/**
 * Refuse what a backend cannot scatter: a load that receives a gradient at an index that moves
 * with the score (the backward recomputes the score, so it could scatter to another entry).
 */
function checkLoadIndices(g: ModGraph, getsGradient: (node: number) => boolean): void {
  const readsScore: boolean[] = [];
  g.nodes.forEach((n, i) => {
    readsScore.push(n.op === "input" ? n.input === "score" : n.args.some((a) => readsScore[a]));
    if (n.op === "load" && getsGradient(i) && n.args.some((a) => readsScore[a])) {
      throw new FlexAttnError(
        `cannot differentiate the score mod: buffer "${g.buffers[n.buffer!].name}" is read at an index computed from the score; ` +
          `its gradient would scatter to an entry that moves with the recomputed score. Index buffers by b, h, q, kv ` +
          `(and values read from other buffers) only`,
      );
    }
  });
}

/** A graph for `root` keeping the forward's buffer slots (the builder's slots are the forward's). */
const extract = (b: GraphBuilder, root: number, buffers: readonly BufferSpec[]): ModGraph => subgraph("score", b.nodes, root, buffers);

/** Differentiate a traced score mod (see the file comment). Mask mods have no gradient. */
export function differentiateScoreMod(graph: ModGraph): ScoreModGradient {
  if (graph.kind !== "score") {
    throw new FlexAttnError("differentiateScoreMod takes a traced score mod; a mask mod has no gradient (it only selects keys)");
  }
  const b = new GraphBuilder();
  const sources: BufferSource[] = graph.buffers.map((spec) => ({ spec }));
  // Copy the forward: loads register their sources in first-use order, which is the forward's slot order.
  const id: number[] = [];
  for (const n of graph.nodes) {
    const args = n.args.map((a) => id[a]);
    if (n.op === "const") id.push(b.constant(n.dtype, Number(n.value)));
    else if (n.op === "input") id.push(b.input(n.input!));
    else if (n.op === "load") id.push(b.load(sources[n.buffer!], args));
    else if (n.op === "where") id.push(b.where(args[0], args[1], args[2]));
    else if (args.length === 1) id.push(b.unary(n.op as never, args[0]));
    else id.push(b.binary(n.op as BinaryOp, args[0], args[1]));
  }
  sources.forEach((s, slot) => {
    // Graphs made by the tracer (or read back from its JSON) number buffers in first-use order.
    if (b.bufferSource(slot) !== s) throw new FlexAttnError(`differentiateScoreMod: buffer slot ${slot} is not numbered in first-use order; trace the mod again`);
  });
  const active = activeNodes(graph);
  const adjoint: (number | undefined)[] = new Array(graph.nodes.length).fill(undefined);
  const root = graph.nodes.length - 1;
  const zero = b.constant("f32", 0);
  const one = b.constant("f32", 1);
  const add = (i: number, g: number) => {
    if (!active[i]) return;
    adjoint[i] = adjoint[i] === undefined ? g : b.binary("add", adjoint[i]!, g);
  };
  const mul = (x: number, y: number) => b.binary("mul", x, y);
  if (active[root]) adjoint[root] = one;
  for (let i = root; i >= 0; i--) {
    const g = adjoint[i];
    if (g === undefined) continue;
    const n = graph.nodes[i];
    const x = id[i];
    const [a0, a1, a2] = n.args;
    const [x0, x1] = n.args.map((a) => id[a]);
    switch (n.op) {
      case "input": case "load": case "const": break;
      case "neg": add(a0, b.unary("neg", g)); break;
      case "abs": add(a0, b.where(b.binary("lt", zero, x0), g, b.where(b.binary("lt", x0, zero), b.unary("neg", g), zero))); break;
      case "exp": add(a0, mul(g, x)); break;
      case "exp2": add(a0, mul(g, mul(x, b.constant("f32", Math.LN2)))); break;
      case "log": add(a0, b.binary("div", g, x0)); break;
      case "log2": add(a0, b.binary("div", g, mul(x0, b.constant("f32", Math.LN2)))); break;
      case "sqrt": add(a0, b.binary("div", mul(g, b.constant("f32", 0.5)), x)); break;
      case "tanh": add(a0, mul(g, b.binary("sub", one, mul(x, x)))); break;
      case "sigmoid": add(a0, mul(g, mul(x, b.binary("sub", one, x)))); break;
      case "add": add(a0, g); add(a1, g); break;
      case "sub": add(a0, g); add(a1, b.unary("neg", g)); break;
      case "mul": add(a0, mul(g, x1)); add(a1, mul(g, x0)); break;
      case "div":
        add(a0, b.binary("div", g, x1));
        add(a1, b.unary("neg", b.binary("div", mul(g, x), x1)));
        break;
      case "mod":
        add(a0, g);
        add(a1, b.unary("neg", mul(g, b.binary("floorDiv", x0, x1))));
        break;
      case "min": case "max": {
        // torch.maximum / minimum: the winner takes the gradient, a tie splits it.
        const half = mul(g, b.constant("f32", 0.5));
        const wins = (p: number, q: number) => (n.op === "max" ? b.binary("lt", q, p) : b.binary("lt", p, q));
        const tie = b.binary("eq", x0, x1);
        add(a0, b.where(wins(x0, x1), g, b.where(tie, half, zero)));
        add(a1, b.where(wins(x1, x0), g, b.where(tie, half, zero)));
        break;
      }
      case "where": {
        const c = id[a0];
        add(a1, b.where(c, g, zero));
        add(a2, b.where(c, zero, g));
        break;
      }
      default:
        throw new FlexAttnError(`differentiateScoreMod: no derivative for the f32 op "${n.op}"`);
    }
  }
  checkLoadIndices(graph, (i) => adjoint[i] !== undefined);
  const dScoreNode = graph.nodes.findIndex((n) => n.op === "input" && n.input === "score");
  const dScore = extract(b, dScoreNode >= 0 && adjoint[dScoreNode] !== undefined ? adjoint[dScoreNode]! : zero, graph.buffers);
  const buffers: BufferGradient[] = [];
  graph.buffers.forEach((spec, slot) => {
    if (spec.dtype !== "f32") return;
    const sites: BufferGradientSite[] = [];
    graph.nodes.forEach((n, i) => {
      if (n.op !== "load" || n.buffer !== slot || adjoint[i] === undefined) return;
      sites.push({ weight: extract(b, adjoint[i]!, graph.buffers), offset: extract(b, flatOffset(b, spec, n.args.map((a) => id[a])), graph.buffers) });
    });
    buffers.push({ slot, name: spec.name, sites });
  });
  return { forward: graph, dScore, buffers };
}

/** The guarded load's flat offset as a node: i·cols + j when every index is in range, else -1. */
function flatOffset(b: GraphBuilder, spec: BufferSpec, [i, j]: number[]): number {
  const c = (v: number) => b.constant("i32", v);
  const inRange = (x: number, n: number) => b.binary("and", b.binary("le", c(0), x), b.binary("lt", x, c(n)));
  if (spec.shape.length === 1) return b.where(inRange(i, spec.shape[0]), i, c(-1));
  const [rows, cols] = spec.shape;
  const ok = b.binary("and", inRange(i, rows), inRange(j, cols));
  return b.where(ok, b.binary("add", b.binary("mul", i, c(cols)), j), c(-1));
}

/** A score-mod gradient at one point: ∂out/∂score and each site's (slot, offset, weight). */
export interface PointGradient {
  dScore: number;
  sites: { slot: number; offset: number; weight: number }[];
}

/** Evaluate a gradient at one point with the IR evaluator (the forward's buffers, or an override). */
export function evaluateGradient(grad: ScoreModGradient, env: ScalarEnv, buffers?: readonly BufferData[]): PointGradient {
  const data = boundBuffers(grad.forward, buffers);
  const dScore = evaluate(grad.dScore, env, data) as number;
  const sites: PointGradient["sites"] = [];
  for (const bg of grad.buffers) {
    for (const s of bg.sites) {
      const offset = evaluate(s.offset, env, data) as number;
      if (offset >= 0) sites.push({ slot: bg.slot, offset, weight: evaluate(s.weight, env, data) as number });
    }
  }
  return { dScore, sites };
}
