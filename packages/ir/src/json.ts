/** JSON round trip of a ModGraph. Buffer data is not serialized: rebind it with bindBuffers. */
import { makeGraph } from "./builder.js";
import { BINARY_OPS, UNARY_OPS } from "./semantics.js";
import type { BufferData, BufferSpec, DType, IRNode, ModGraph } from "./types.js";
import { FlexAttnError } from "./types.js";

export interface ModGraphJSON {
  format: "flexattn.modgraph/1";
  kind: ModGraph["kind"];
  key: string;
  buffers: { name: string; dtype: "i32" | "f32"; shape: number[] }[];
  nodes: (Omit<IRNode, "value"> & { value?: number | boolean | string })[];
}

export function graphToJSON(graph: ModGraph): ModGraphJSON {
  return {
    format: "flexattn.modgraph/1",
    kind: graph.kind,
    key: graph.key,
    buffers: graph.buffers.map((b) => ({ name: b.name, dtype: b.dtype, shape: [...b.shape] })),
    nodes: graph.nodes.map((n) => {
      // JSON has no NaN or infinities: spell them as strings.
      const value = typeof n.value === "number" && !Number.isFinite(n.value) ? String(n.value) : n.value;
      return {
        op: n.op, dtype: n.dtype, args: [...n.args],
        ...(value !== undefined && { value }),
        ...(n.input !== undefined && { input: n.input }),
        ...(n.buffer !== undefined && { buffer: n.buffer }),
      };
    }),
  };
}

const OPS = new Set<string>(["const", "input", "load", "where", ...UNARY_OPS, ...BINARY_OPS]);
const DTYPES = new Set<DType>(["i32", "f32", "bool"]);

export function graphFromJSON(json: ModGraphJSON, buffers?: readonly BufferData[]): ModGraph {
  if (json?.format !== "flexattn.modgraph/1") throw new FlexAttnError("not a flexattn ModGraph JSON (format flexattn.modgraph/1)");
  const nodes: IRNode[] = json.nodes.map((n, i) => {
    if (!OPS.has(n.op) || !DTYPES.has(n.dtype)) throw new FlexAttnError(`ModGraph JSON node ${i}: unknown op or dtype`);
    if (n.args.some((a) => !Number.isInteger(a) || a < 0 || a >= i)) {
      throw new FlexAttnError(`ModGraph JSON node ${i}: arguments must reference earlier nodes`);
    }
    const value = typeof n.value === "string" ? Number(n.value) : n.value;
    return { ...n, value } as IRNode;
  });
  const specs: BufferSpec[] = json.buffers.map((b, i) => ({ ...b, data: buffers?.[i] }));
  const graph = makeGraph(json.kind, nodes, specs);
  if (graph.key !== json.key) throw new FlexAttnError("ModGraph JSON key does not match its contents (corrupted or edited)");
  return graph;
}

/** The same graph with new buffer data (same shapes and dtypes): the key is unchanged. */
export function bindBuffers(graph: ModGraph, data: readonly BufferData[]): ModGraph {
  if (data.length !== graph.buffers.length) {
    throw new FlexAttnError(`graph has ${graph.buffers.length} buffers, ${data.length} given`);
  }
  const buffers = graph.buffers.map((spec, i) => {
    const d = data[i];
    const dtype = d instanceof Int32Array ? "i32" : d instanceof Float32Array ? "f32" : undefined;
    const size = spec.shape.reduce((a, b) => a * b, 1);
    if (dtype !== spec.dtype || d.length !== size) {
      throw new FlexAttnError(`buffer "${spec.name}" expects ${spec.dtype}[${spec.shape.join(", ")}]`);
    }
    return { ...spec, data: d };
  });
  return { ...graph, buffers };
}
