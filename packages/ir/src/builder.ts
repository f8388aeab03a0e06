/**
 * GraphBuilder: hash-consed node construction with constant folding and algebraic
 * simplification. Structural sharing is common-subexpression elimination.
 */
import { COMMUTATIVE, evalBinary, evalUnary } from "./semantics.js";
import { stableHash } from "./hash.js";
import type { BinaryOp, BufferSpec, DType, IRNode, InputName, ModGraph, ModKind, UnaryOp } from "./types.js";
import { FlexAttnError } from "./types.js";

/** Identity of a captured buffer during tracing (the same object → the same slot). */
export interface BufferSource {
  readonly spec: BufferSpec;
}

const INVERSE_COMPARISON: Partial<Record<BinaryOp, BinaryOp>> = {
  lt: "ge", le: "gt", gt: "le", ge: "lt", eq: "ne", ne: "eq",
};

/** More operations than any real mod needs (they have tens to hundreds). */
export const MAX_TRACED_NODES = 100_000;

export class GraphBuilder {
  readonly nodes: IRNode[] = [];
  private readonly interned = new Map<string, number>();
  private readonly sources: BufferSource[] = [];
  /** Values handed to the mod and the ones it passed on to an operation (see droppedValues). */
  private readonly handedOut = new Set<number>();
  private readonly passedOn = new Set<number>();

  /** A traced value was given to the mod (constants and inputs are exempt: dropping them is harmless). */
  noteHandedOut(id: number): void {
    const op = this.nodes[id].op;
    if (op !== "const" && op !== "input") this.handedOut.add(id);
  }

  /** The mod passed a traced value to an operation. */
  notePassedOn(id: number): void {
    this.passedOn.add(id);
  }

  /**
   * Values the mod computed and then neither passed on nor returned: they went into JS control
   * flow (if, ?:, &&, ||, !, ===) or nowhere. A dropped comparison always counts; a dropped
   * number only when the result is a JS constant (nothing computed reached it, as with
   * `docs.at(q) === docs.at(kv)`): unused arithmetic alone is harmless.
   */
  droppedValues(result: number | undefined): number[] {
    return [...this.handedOut].filter(
      (id) => id !== result && !this.passedOn.has(id) && (result === undefined || this.nodes[id].dtype === "bool"),
    );
  }

  node(n: IRNode): number {
    const k = nodeKey(n);
    const found = this.interned.get(k);
    if (found !== undefined) return found;
    if (this.nodes.length >= MAX_TRACED_NODES) {
      // A JS loop whose condition is a traced value never ends (a traced value is always truthy):
      // stop here with a message instead of filling the heap.
      throw new FlexAttnError(
        `the mod built over ${MAX_TRACED_NODES} operations while being traced; a JS loop whose condition is a traced value never ends ` +
          "(a traced comparison is always truthy). A mod is straight-line code: write a bounded search as where() / min() / max() over the candidates",
      );
    }
    this.nodes.push(n);
    this.interned.set(k, this.nodes.length - 1);
    return this.nodes.length - 1;
  }

  constant(dtype: DType, value: number): number {
    const v = dtype === "bool" ? Boolean(value) : dtype === "f32" ? Math.fround(value) : value | 0;
    return this.node({ op: "const", dtype, args: [], value: v });
  }

  input(name: InputName): number {
    return this.node({ op: "input", dtype: name === "score" ? "f32" : "i32", args: [], input: name });
  }

  load(source: BufferSource, indices: number[]): number {
    let slot = this.sources.indexOf(source);
    if (slot < 0) slot = this.sources.push(source) - 1;
    return this.node({ op: "load", dtype: source.spec.dtype, args: indices, buffer: slot });
  }

  bufferSource(slot: number): BufferSource {
    return this.sources[slot];
  }

  dtype(id: number): DType {
    return this.nodes[id].dtype;
  }

  private constValue(id: number): number | undefined {
    const n = this.nodes[id];
    return n.op === "const" ? Number(n.value) : undefined;
  }

  unary(op: UnaryOp, x: number): number {
    const t = this.dtype(x);
    const resultType: DType = op === "toF32" ? "f32" : op === "toI32" ? "i32" : t;
    if ((op === "toF32" && t === "f32") || (op === "toI32" && t === "i32")) return x;
    const c = this.constValue(x);
    if (c !== undefined) return this.constant(resultType, evalUnary(op, t, c));
    const inner = this.nodes[x];
    if ((op === "neg" || op === "not") && inner.op === op) return inner.args[0];
    if (op === "not" && inner.op in INVERSE_COMPARISON && this.dtype(inner.args[0]) !== "f32") {
      // Only for integers: with NaN, !(a < b) is not (a >= b).
      return this.binary(INVERSE_COMPARISON[inner.op as BinaryOp]!, inner.args[0], inner.args[1]);
    }
    return this.node({ op, dtype: resultType, args: [x] });
  }

  binary(op: BinaryOp, a: number, b: number): number {
    const t = this.dtype(a);
    const resultType: DType = op in INVERSE_COMPARISON ? "bool" : t;
    // Canonical operand order: constants right, otherwise by node index, so a+b ≡ b+a.
    if (COMMUTATIVE.has(op) && this.shouldSwap(a, b)) [a, b] = [b, a];
    if (op === "gt") return this.binary("lt", b, a);
    if (op === "ge") return this.binary("le", b, a);
    const ca = this.constValue(a);
    const cb = this.constValue(b);
    if (ca !== undefined && cb !== undefined) return this.constant(resultType, evalBinary(op, t, ca, cb));
    const simplified = this.simplifyBinary(op, t, a, b, cb);
    if (simplified !== undefined) return simplified;
    return this.node({ op, dtype: resultType, args: [a, b] });
  }

  where(cond: number, a: number, b: number): number {
    const c = this.constValue(cond);
    if (c !== undefined) return c ? a : b;
    if (a === b) return a;
    const t = this.dtype(a);
    if (t === "bool") {
      // where(c, x, y) on booleans is (c and x) or (not c and y): keeps masks in and/or form.
      const ca = this.constValue(a);
      const cb = this.constValue(b);
      if (ca === 1 && cb === 0) return cond;
      if (ca === 0 && cb === 1) return this.unary("not", cond);
    }
    return this.node({ op: "where", dtype: t, args: [cond, a, b] });
  }

  private shouldSwap(a: number, b: number): boolean {
    const aConst = this.nodes[a].op === "const";
    const bConst = this.nodes[b].op === "const";
    if (aConst !== bConst) return aConst;
    return a > b;
  }

  private simplifyBinary(op: BinaryOp, t: DType, a: number, b: number, cb: number | undefined): number | undefined {
    const int = t === "i32";
    switch (op) {
      case "add":
        if (cb === 0) return a;
        if (int && cb !== undefined) {
          // (x + c1) + c2 → x + (c1 + c2): exact under i32 wraparound.
          const inner = this.nodes[a];
          const c1 = inner.op === "add" ? this.constValue(inner.args[1]) : undefined;
          if (c1 !== undefined) return this.binary("add", inner.args[0], this.constant("i32", c1 + cb));
        }
        return undefined;
      case "sub":
        if (cb === 0) return a;
        if (int && a === b) return this.constant("i32", 0);
        if (int && cb !== undefined) return this.binary("add", a, this.constant("i32", -cb));
        return undefined;
      case "mul":
        if (cb === 1) return a;
        if (int && cb === 0) return this.constant("i32", 0);
        return undefined;
      case "div":
        return cb === 1 ? a : undefined;
      case "floorDiv":
        return int && cb === 1 ? a : undefined;
      case "min":
      case "max":
        return a === b ? a : undefined;
      case "and":
        if (cb === 1 || a === b) return a;
        if (cb === 0) return b;
        return undefined;
      case "or":
        if (cb === 0 || a === b) return a;
        if (cb === 1) return b;
        return undefined;
      case "eq": case "le":
        return int && a === b ? this.constant("bool", 1) : undefined;
      case "ne": case "lt":
        return int && a === b ? this.constant("bool", 0) : undefined;
      default:
        return undefined;
    }
  }

  /** Keep what the root reaches, renumber in topological order, and name the buffers. */
  finish(kind: ModKind, root: number): ModGraph {
    const reachable = new Uint8Array(this.nodes.length);
    reachable[root] = 1;
    for (let i = root; i >= 0; i--) if (reachable[i]) for (const a of this.nodes[i].args) reachable[a] = 1;
    const renumber = new Int32Array(this.nodes.length).fill(-1);
    const slotMap = new Map<number, number>();
    const buffers: BufferSpec[] = [];
    const nodes: IRNode[] = [];
    for (let i = 0; i <= root; i++) {
      if (!reachable[i]) continue;
      const n = this.nodes[i];
      const args = n.args.map((a) => renumber[a]);
      let out: IRNode = { ...n, args };
      if (n.op === "load") {
        let slot = slotMap.get(n.buffer!);
        if (slot === undefined) {
          slot = buffers.length;
          slotMap.set(n.buffer!, slot);
          const spec = this.sources[n.buffer!].spec;
          buffers.push({ ...spec, name: uniqueName(spec.name, buffers) });
        }
        out = { ...out, buffer: slot };
      }
      renumber[i] = nodes.length;
      nodes.push(out);
    }
    return makeGraph(kind, nodes, buffers);
  }
}

function uniqueName(name: string, taken: readonly BufferSpec[]): string {
  let candidate = name;
  for (let i = 1; taken.some((b) => b.name === candidate); i++) candidate = `${name}_${i}`;
  return candidate;
}

export function nodeKey(n: IRNode): string {
  const tail = n.op === "const" ? `=${n.value}` : n.op === "input" ? `@${n.input}` : n.op === "load" ? `#${n.buffer}` : "";
  return `${n.op}:${n.dtype}(${n.args.join(",")})${tail}`;
}

/** The graph of `root` and the nodes it reaches, renumbered in order; buffer slots stay as they are. */
export function subgraph(kind: ModKind, nodes: readonly IRNode[], root: number, buffers: readonly BufferSpec[]): ModGraph {
  const reachable = new Uint8Array(root + 1);
  reachable[root] = 1;
  for (let i = root; i >= 0; i--) if (reachable[i]) for (const a of nodes[i].args) reachable[a] = 1;
  const renumber = new Int32Array(root + 1).fill(-1);
  const kept: IRNode[] = [];
  for (let i = 0; i <= root; i++) {
    if (!reachable[i]) continue;
    renumber[i] = kept.length;
    kept.push({ ...nodes[i], args: nodes[i].args.map((a) => renumber[a]) });
  }
  return makeGraph(kind, kept, buffers);
}

/** Assemble a ModGraph and compute its structural key (buffer data never enters it). */
export function makeGraph(kind: ModKind, nodes: readonly IRNode[], buffers: readonly BufferSpec[]): ModGraph {
  if (nodes.length === 0) throw new FlexAttnError("a ModGraph needs at least one node");
  const structure = [
    kind,
    nodes.map(nodeKey).join(";"),
    buffers.map((b) => `${b.dtype}[${b.shape.join("x")}]`).join(","),
  ].join("|");
  return { kind, nodes, buffers, key: stableHash(structure), structure };
}
