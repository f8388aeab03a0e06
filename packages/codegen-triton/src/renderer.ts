/**
 * The Triton renderer: one expression per IR op with the evaluator's semantics
 * (packages/ir/src/semantics.ts), vectorized over a tile. Inputs are tensors that broadcast:
 * q as [BLOCK_M, 1], kv as [1, BLOCK_N], b and h as scalars, score as [BLOCK_M, BLOCK_N].
 *
 * Constants are typed [1, 1] tensors (`tl.full`), never bare Python literals: a literal meeting
 * a literal would be folded by Python itself (where 1 // 0 raises), and a literal meeting a
 * tensor takes Triton's promotion rules instead of the IR's types.
 */
import type { BinaryOp, BufferSpec, DType, ExprRenderer, InputName, UnaryOp } from "@flexattn/ir";
import { FlexAttnError, constantReciprocal } from "@flexattn/ir";
import { pyFloat } from "./python.js";
import { type HelperName, helperName } from "./runtime.js";

export interface TritonRendererOptions {
  /** Python expression of each input inside the kernel. */
  inputs: Partial<Record<InputName, string>>;
  /** Kernel argument naming buffer slot i. */
  bufferName: (slot: number) => string;
  /** Use the SFU's approximate tanh (options.approxTanh). */
  approxTanh?: boolean;
}

export interface TritonRenderer extends ExprRenderer {
  /** Helpers the rendered expressions call (filled while rendering). */
  readonly helpers: Set<HelperName>;
}


const COMPARE: Partial<Record<BinaryOp, string>> = { lt: "<", le: "<=", gt: ">", ge: ">=", eq: "==", ne: "!=" };

export function tritonRenderer(o: TritonRendererOptions): TritonRenderer {
  const helpers = new Set<HelperName>();
  /** f32 constants by their rendered text, so `x / c` can become `x * (1/c)`. */
  const f32Constants = new Map<string, number>();
  const call = (h: HelperName, ...args: string[]) => {
    helpers.add(h);
    return `${helperName(h)}(${args.join(", ")})`;
  };
  const constant = (v: number | boolean, t: DType): string => {
    if (t === "bool") return `tl.full([1, 1], ${v ? 1 : 0}, tl.int1)`;
    if (t === "i32") return `tl.full([1, 1], ${Number(v) | 0}, tl.int32)`;
    const text = `tl.full([1, 1], ${pyFloat(Number(v))}, tl.float32)`;
    f32Constants.set(text, Number(v));
    return text;
  };

  const unary = (op: UnaryOp, x: string, t: DType): string => {
    switch (op) {
      case "neg": return `(-${x})`; // i32: two's-complement wrap, as the IR
      case "not": return `(${x} == 0)`;
      case "abs": return `tl.abs(${x})`; // i32: abs(INT_MIN) wraps to INT_MIN, as the IR
      case "exp": return `tl.exp(${x})`;
      case "exp2": return `tl.exp2(${x})`;
      case "log": return `tl.log(${x})`;
      case "log2": return `tl.log2(${x})`;
      case "sqrt": return `tl.sqrt_rn(${x})`; // tl.sqrt is approximate
      case "tanh": return call(o.approxTanh ? "tanh_approx" : "tanh", x);
      case "sigmoid": return `(1.0 / (1.0 + tl.exp(-${x})))`;
      case "toF32": return t === "f32" ? x : `${x}.to(tl.float32)`;
      case "toI32": return t === "f32" ? call("f32_to_i32", x) : t === "bool" ? `${x}.to(tl.int32)` : x;
    }
  };

  const binary = (op: BinaryOp, a: string, b: string, t: DType): string => {
    const cmp = COMPARE[op];
    if (cmp) return `(${a} ${cmp} ${b})`; // f32 != is unordered (NaN != NaN), as JS !==
    const int = t === "i32";
    switch (op) {
      case "add": return `(${a} + ${b})`;
      case "sub": return `(${a} - ${b})`;
      case "mul": return `(${a} * ${b})`;
      case "div": {
        const c = f32Constants.get(b);
        const reciprocal = c === undefined ? undefined : constantReciprocal(c);
        return reciprocal === undefined ? `(${a} / ${b})` : `(${a} * ${constant(reciprocal, "f32")})`;
      }
      case "floorDiv": return int ? call("floordiv", a, b) : `tl.floor(${a} / ${b})`;
      case "mod": return int ? call("mod", a, b) : `(${a} - tl.floor(${a} / ${b}) * ${b})`;
      case "min": return int ? `tl.minimum(${a}, ${b})` : `tl.minimum(${a}, ${b}, propagate_nan=tl.PropagateNan.ALL)`;
      case "max": return int ? `tl.maximum(${a}, ${b})` : `tl.maximum(${a}, ${b}, propagate_nan=tl.PropagateNan.ALL)`;
      case "and": return `(${a} & ${b})`;
      case "or": return `(${a} | ${b})`;
      default: throw new FlexAttnError(`Triton renderer: unhandled op ${op}`);
    }
  };

  const load = (spec: BufferSpec, slot: number, idx: string[]): string => {
    const ptr = o.bufferName(slot);
    if (spec.shape.length === 1) return call("gather1", ptr, idx[0], String(spec.shape[0]));
    return call("gather2", ptr, idx[0], idx[1], String(spec.shape[0]), String(spec.shape[1]));
  };

  return {
    helpers,
    constant,
    input: (name) => {
      const e = o.inputs[name];
      if (e === undefined) throw new FlexAttnError(`Triton renderer: no expression for input ${name}`);
      return e;
    },
    load,
    unary: (op, x, argType) => unary(op, x, argType),
    binary,
    where: (c, a, b) => `tl.where(${c}, ${a}, ${b})`,
    declare: (name, _t, expr) => `${name} = ${expr}`,
  };
}

