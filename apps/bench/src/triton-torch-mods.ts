/**
 * Renders a traced mod as a PyTorch function for the Triton harness, so PyTorch's
 * flex_attention can run the very same mod on the same tensors. Elementwise torch ops on 0-d
 * (vmapped) or broadcast index tensors; floor division and modulo follow the IR's semantics
 * (x // 0 = 0); captured-buffer loads read 0 out of range, as in every flexattn backend.
 */
import { type BinaryOp, type ExprRenderer, type ModGraph, type UnaryOp, renderGraph } from "@flexattn/ir";

function pyNum(x: number, float: boolean): string {
  if (Number.isNaN(x)) return 'float("nan")';
  if (x === Infinity) return 'float("inf")';
  if (x === -Infinity) return 'float("-inf")';
  const s = Object.is(x, -0) ? "-0.0" : String(x);
  return float && !/[.eEn]/.test(s) ? `${s}.0` : s;
}

const CMP: Partial<Record<BinaryOp, string>> = { lt: "<", le: "<=", gt: ">", ge: ">=", eq: "==", ne: "!=" };

function torchRenderer(bufferName: (slot: number) => string): ExprRenderer {
  const unary = (op: UnaryOp, x: string, t: string): string => {
    switch (op) {
      case "neg": return `(-${x})`;
      case "not": return `(~${x})`;
      case "abs": return `torch.abs(${x})`;
      case "toF32": return t === "f32" ? x : `${x}.to(torch.float32)`;
      case "toI32":
        if (t === "f32") return `_f32_to_i32(${x})`;
        return t === "bool" ? `${x}.to(torch.int32)` : x;
      default: return `torch.${op}(${x})`;
    }
  };
  const binary = (op: BinaryOp, a: string, b: string, t: string): string => {
    const cmp = CMP[op];
    if (cmp) return `(${a} ${cmp} ${b})`;
    const int = t === "i32";
    switch (op) {
      case "add": return `(${a} + ${b})`;
      case "sub": return `(${a} - ${b})`;
      case "mul": return `(${a} * ${b})`;
      case "div": return `(${a} / ${b})`;
      case "floorDiv": return int ? `_floordiv(${a}, ${b})` : `torch.floor(${a} / ${b})`;
      case "mod": return int ? `_mod(${a}, ${b})` : `(${a} - torch.floor(${a} / ${b}) * ${b})`;
      case "min": return `torch.minimum(${a}, ${b})`;
      case "max": return `torch.maximum(${a}, ${b})`;
      case "and": return `(${a} & ${b})`;
      case "or": return `(${a} | ${b})`;
      default: throw new Error(`torch renderer: unhandled op ${op}`);
    }
  };
  return {
    constant: (v, t) => {
      const dtype = t === "bool" ? "torch.bool" : t === "i32" ? "torch.int32" : "torch.float32";
      const value = t === "bool" ? (v ? "True" : "False") : pyNum(Number(v), t === "f32");
      return `_c(${value}, ${dtype})`;
    },
    input: (name) => ({ score: "score", b: "b", h: "h", q: "q_idx", kv: "kv_idx" })[name],
    load: (spec, slot, idx) => {
      const buf = bufferName(slot);
      if (spec.shape.length === 1) return `_gather1(${buf}, ${idx[0]})`;
      return `_gather2(${buf}, ${idx[0]}, ${idx[1]})`;
    },
    unary: (op, x, t) => unary(op, x, t),
    binary: (op, a, b, t) => binary(op, a, b, t),
    where: (c, a, b) => `torch.where(${c}, ${a}, ${b})`,
    declare: (name, _t, expr) => `${name} = ${expr}`,
  };
}

/**
 * Python source of `make(bufs, q_offset, kv_offset, device)` returning the mod as a function of
 * (score,) b, h, q_idx, kv_idx. `bufs` maps the kernel's buffer names to torch tensors.
 */
export function torchModSource(graph: ModGraph, bufferNames: readonly string[]): string {
  const { statements, result } = renderGraph(graph, torchRenderer((slot) => bufferNames[slot]), "t");
  const params = graph.kind === "mask" ? "b, h, q_idx, kv_idx" : "score, b, h, q_idx, kv_idx";
  return [
    "def make(bufs, q_offset, kv_offset, device):",
    ...bufferNames.map((n) => `    ${n} = bufs[${JSON.stringify(n)}]`),
    "    def _c(v, dtype):",
    "        return torch.full((), v, dtype=dtype, device=device)",
    `    def mod(${params}):`,
    "        b, h = b.to(torch.int32), h.to(torch.int32)",
    "        q_idx = q_idx.to(torch.int32) + q_offset",
    "        kv_idx = kv_idx.to(torch.int32) + kv_offset",
    ...statements.map((s) => `        ${s}`),
    `        return ${result}`,
    "    return mod",
  ].join("\n");
}
