/**
 * The JavaScript renderer: one expression per IR op with exactly the evaluator's semantics.
 * Used by compileJsMod (fast predicates for BlockMask construction) and by codegen-js.
 * bool values are JS booleans; i32 values are int32 numbers; f32 values are fround-ed numbers.
 */
import type { ExprRenderer } from "./render.js";
import { renderGraph } from "./render.js";
import { f32ToI32, floorDivI32, modI32 } from "./semantics.js";
import { boundBuffers, evaluate } from "./evaluate.js";
import { canCompileSource } from "./eval-support.js";
import type { BinaryOp, BufferData, DType, InputName, ModGraph, UnaryOp } from "./types.js";

/** Helpers that generated JS calls; pass this object as `$rt` to the generated function. */
export const JS_RUNTIME = { floorDivI32, modI32, f32ToI32 } as const;

const F = "Math.fround";

function jsNumber(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "Infinity";
  if (x === -Infinity) return "-Infinity";
  if (Object.is(x, -0)) return "-0";
  return String(x);
}

export interface JsRendererOptions {
  /** JS expression for each input, e.g. { q: "qi", kv: "kj", ... }. */
  inputs: Partial<Record<InputName, string>>;
  /** JS expression naming buffer slot i's typed array. */
  bufferName: (slot: number) => string;
  /** Name under which JS_RUNTIME is in scope. */
  runtime: string;
}

export function jsRenderer(o: JsRendererOptions): ExprRenderer {
  const rt = o.runtime;
  return {
    constant: (v, t) => (t === "bool" ? String(Boolean(v)) : jsNumber(Number(v))),
    input: (name) => {
      const e = o.inputs[name];
      if (e === undefined) throw new Error(`JS renderer: no expression for input ${name}`);
      return e;
    },
    load: (spec, slot, [i, j]) => {
      const buf = o.bufferName(slot);
      if (spec.shape.length === 1) return `((${i}) >>> 0 < ${spec.shape[0]} ? ${buf}[${i}] : 0)`;
      const [rows, cols] = spec.shape;
      return `((${i}) >>> 0 < ${rows} && (${j}) >>> 0 < ${cols} ? ${buf}[(${i}) * ${cols} + (${j})] : 0)`;
    },
    unary: (op: UnaryOp, x: string, t: DType, rt2: DType) => unaryJs(op, x, t, rt2, rt),
    binary: (op: BinaryOp, a: string, b: string, t: DType) => binaryJs(op, a, b, t, rt),
    where: (c, a, b) => `(${c} ? ${a} : ${b})`,
    declare: (name, _t, expr) => `const ${name} = ${expr};`,
  };
}

function unaryJs(op: UnaryOp, x: string, t: DType, _result: DType, rt: string): string {
  switch (op) {
    case "neg": return t === "i32" ? `(-(${x}) | 0)` : `(-(${x}))`;
    case "not": return `(!${x})`;
    case "abs": return t === "i32" ? `(Math.abs(${x}) | 0)` : `Math.abs(${x})`;
    case "exp": return `${F}(Math.exp(${x}))`;
    case "exp2": return `${F}(Math.pow(2, ${x}))`;
    case "log": return `${F}(Math.log(${x}))`;
    case "log2": return `${F}(Math.log2(${x}))`;
    case "sqrt": return `${F}(Math.sqrt(${x}))`;
    case "tanh": return `${F}(Math.tanh(${x}))`;
    case "sigmoid": return `${F}(1 / (1 + Math.exp(-(${x}))))`;
    case "toF32": return t === "bool" ? `(${x} ? 1 : 0)` : `${F}(${x})`;
    case "toI32": return t === "bool" ? `(${x} ? 1 : 0)` : t === "f32" ? `${rt}.f32ToI32(${x})` : x;
  }
}

const JS_COMPARE: Partial<Record<BinaryOp, string>> = { lt: "<", le: "<=", gt: ">", ge: ">=", eq: "===", ne: "!==" };

function binaryJs(op: BinaryOp, a: string, b: string, t: DType, rt: string): string {
  const int = t === "i32";
  const cmp = JS_COMPARE[op];
  if (cmp) return `(${a} ${cmp} ${b})`;
  switch (op) {
    case "add": return int ? `((${a} + ${b}) | 0)` : `${F}(${a} + ${b})`;
    case "sub": return int ? `((${a} - ${b}) | 0)` : `${F}(${a} - ${b})`;
    case "mul": return int ? `Math.imul(${a}, ${b})` : `${F}(${a} * ${b})`;
    case "div": return `${F}(${a} / ${b})`;
    case "floorDiv": return int ? `${rt}.floorDivI32(${a}, ${b})` : `${F}(Math.floor(${F}(${a} / ${b})))`;
    case "mod": return int ? `${rt}.modI32(${a}, ${b})` : `${F}(${a} - ${F}(${F}(Math.floor(${F}(${a} / ${b}))) * ${b}))`;
    case "min": return `Math.min(${a}, ${b})`;
    case "max": return `Math.max(${a}, ${b})`;
    case "and": return `(${a} && ${b})`;
    case "or": return `(${a} || ${b})`;
    default: throw new Error(`JS renderer: unhandled op ${op}`);
  }
}

export type CompiledMaskFn = (b: number, h: number, q: number, kv: number) => boolean;
export type CompiledScoreFn = (score: number, b: number, h: number, q: number, kv: number) => number;

/**
 * Compile a graph to a JS closure (new Function) with its buffers bound. Masks return
 * booleans, score mods f32 numbers. Inputs must already be int32 (and score f32). Where code
 * cannot be compiled from strings (a CSP without 'unsafe-eval'), the closure runs the IR evaluator.
 */
export function compileJsMod(graph: ModGraph, buffers?: readonly BufferData[]): CompiledMaskFn | CompiledScoreFn {
  const data = boundBuffers(graph, buffers);
  if (!canCompileSource()) return interpretedMod(graph, data);
  const r = jsRenderer({
    inputs: { score: "score", b: "b", h: "h", q: "q", kv: "kv" },
    bufferName: (slot) => `B${slot}`,
    runtime: "$rt",
  });
  const { statements, result } = renderGraph(graph, r, "t");
  const params = graph.kind === "mask" ? "b, h, q, kv" : "score, b, h, q, kv";
  const body = [
    `"use strict";`,
    ...data.map((_, i) => `const B${i} = buffers[${i}];`),
    `return function ${graph.kind}Mod(${params}) {`,
    ...statements.map((s) => "  " + s),
    `  return ${result};`,
    `};`,
  ].join("\n");
  return new Function("$rt", "buffers", body)(JS_RUNTIME, data);
}

/** The evaluator behind compileJsMod's signature. */
function interpretedMod(graph: ModGraph, data: readonly BufferData[]): CompiledMaskFn | CompiledScoreFn {
  if (graph.kind === "mask") {
    const mask: CompiledMaskFn = (b, h, q, kv) => evaluate(graph, { b, h, q, kv }, data) as boolean;
    return mask;
  }
  const score: CompiledScoreFn = (s, b, h, q, kv) => evaluate(graph, { score: s, b, h, q, kv }, data) as number;
  return score;
}
