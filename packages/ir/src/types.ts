/** Scalar types of the IR. Indices are i32, scores f32, masks bool. */
export type DType = "i32" | "f32" | "bool";

/** The mod's formal parameters, in PyTorch's order: score, b, h, q, kv. */
export type InputName = "score" | "b" | "h" | "q" | "kv";
export const INDEX_INPUTS = ["b", "h", "q", "kv"] as const;

export type UnaryOp =
  | "neg" | "not" | "abs" | "exp" | "exp2" | "log" | "log2" | "sqrt" | "tanh" | "sigmoid"
  | "toF32" | "toI32";
export type BinaryOp =
  | "add" | "sub" | "mul" | "div" | "floorDiv" | "mod" | "min" | "max"
  | "lt" | "le" | "gt" | "ge" | "eq" | "ne" | "and" | "or";
export type Op = "const" | "input" | "load" | "where" | UnaryOp | BinaryOp;

/**
 * One node of a ModGraph. Nodes are stored in topological order and referenced by index,
 * so `args` always point at earlier nodes.
 */
export interface IRNode {
  readonly op: Op;
  readonly dtype: DType;
  readonly args: readonly number[];
  /** `const` only: the value (booleans are stored as booleans). */
  readonly value?: number | boolean;
  /** `input` only. */
  readonly input?: InputName;
  /** `load` only: slot of the captured buffer in `ModGraph.buffers`. */
  readonly buffer?: number;
}

export type BufferData = Int32Array | Float32Array;

/** A captured buffer as the graph sees it: its data is a kernel argument, not part of the key. */
export interface BufferSpec {
  readonly name: string;
  readonly dtype: "i32" | "f32";
  /** 1-D `[n]` or 2-D `[rows, cols]` (row-major). */
  readonly shape: readonly number[];
  /** The captured data; absent on graphs read back from JSON until rebound. */
  readonly data?: BufferData;
}

export type ModKind = "mask" | "score";

/** A traced mod: a typed, hash-consed DAG whose last node is the result. */
export interface ModGraph {
  readonly kind: ModKind;
  readonly nodes: readonly IRNode[];
  readonly buffers: readonly BufferSpec[];
  /** Stable structural hash of `structure`: a short name for printing and file names. */
  readonly key: string;
  /**
   * The canonical structure in full (nodes, dtypes, buffer shapes; never buffer data): what
   * caches compare, so two different mods can never share a kernel through a hash collision.
   */
  readonly structure: string;
}

export function rootOf(graph: ModGraph): number {
  return graph.nodes.length - 1;
}

export class FlexAttnError extends Error {
  override name = "FlexAttnError";
}

/**
 * Refuse keys of an options object that nothing reads: a misspelt option (`blockmask`) would
 * otherwise be ignored and the call would silently run without it.
 */
export function checkKnownKeys(obj: object, known: readonly string[], what: string): void {
  const unknown = Object.keys(obj).filter((k) => !known.includes(k));
  if (!unknown.length) return;
  const hints = unknown.map((k) => {
    const near = known.find((n) => n.toLowerCase() === k.toLowerCase());
    return near ? `${k} (did you mean ${near}?)` : k;
  });
  throw new FlexAttnError(`${what} has unknown key${unknown.length > 1 ? "s" : ""} ${hints.join(", ")}; known: ${known.join(", ")}`);
}
