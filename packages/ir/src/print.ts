/** A readable printer: infix expressions, with shared subexpressions bound once as `let`. */
import type { ModGraph } from "./types.js";

const INFIX: Record<string, string> = {
  add: "+", sub: "-", mul: "*", div: "/", lt: "<", le: "<=", gt: ">", ge: ">=", eq: "==", ne: "!=",
  and: "&&", or: "||",
};

function fmtConst(v: number | boolean, dtype: string): string {
  if (typeof v === "boolean") return String(v);
  return dtype === "f32" && Number.isInteger(v) ? `${v}.0` : String(v);
}

export function printGraph(graph: ModGraph): string {
  const uses = new Uint32Array(graph.nodes.length);
  for (const n of graph.nodes) for (const a of n.args) uses[a]++;
  const text: string[] = [];
  const lets: string[] = [];
  graph.nodes.forEach((n, i) => {
    const arg = (k: number) => text[n.args[k]];
    let e: string;
    switch (n.op) {
      case "const": e = fmtConst(n.value!, n.dtype); break;
      case "input": e = n.input!; break;
      case "load": e = `${graph.buffers[n.buffer!].name}[${n.args.map((a) => text[a]).join(", ")}]`; break;
      case "where": e = `where(${arg(0)}, ${arg(1)}, ${arg(2)})`; break;
      case "not": e = `!${arg(0)}`; break;
      case "neg": e = `-${arg(0)}`; break;
      default:
        e = INFIX[n.op] ? `(${arg(0)} ${INFIX[n.op]} ${arg(1)})` : `${n.op}(${n.args.map((a) => text[a]).join(", ")})`;
    }
    const shared = uses[i] > 1 && n.op !== "const" && n.op !== "input" && i !== graph.nodes.length - 1;
    if (shared) {
      lets.push(`  let v${i}: ${n.dtype} = ${e}`);
      e = `v${i}`;
    }
    text.push(e);
  });
  const params = graph.kind === "mask" ? "(b, h, q, kv)" : "(score, b, h, q, kv)";
  const header = `${graph.kind} mod ${params} -> ${graph.nodes[graph.nodes.length - 1].dtype}  [key ${graph.key}]`;
  const bufs = graph.buffers.map((b) => `  buffer ${b.name}: ${b.dtype}[${b.shape.join(", ")}]`);
  return [header, ...bufs, ...lets, `  return ${text[text.length - 1]}`].join("\n");
}
