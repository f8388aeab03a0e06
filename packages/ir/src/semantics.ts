/**
 * The scalar semantics of every IR op: the single definition that the evaluator, constant
 * folding and interval analysis share, and that every backend renderer must reproduce.
 * Values are JS numbers: i32 in [-2^31, 2^31), f32 rounded with Math.fround, bool as 0 | 1.
 */
import type { BinaryOp, DType, UnaryOp } from "./types.js";

const f = Math.fround;
export const I32_MIN = -2147483648;
export const I32_MAX = 2147483647;

/** Python floor division on i32; division by zero gives 0 and INT_MIN / -1 wraps. */
export function floorDivI32(a: number, b: number): number {
  if (b === 0) return 0;
  return Math.floor(a / b) | 0; // exact: the double quotient never rounds across an integer here
}

/** Python modulo on i32: the result has the sign of the divisor; x mod 0 is 0. */
export function modI32(a: number, b: number): number {
  if (b === 0) return 0;
  let r = a % b;
  if (r !== 0 && r < 0 !== b < 0) r += b;
  return r | 0;
}

/** f32 → i32: truncate toward zero, saturate at the i32 range, NaN → 0. */
export function f32ToI32(x: number): number {
  if (Number.isNaN(x)) return 0;
  if (x >= 2147483648) return I32_MAX;
  if (x <= -2147483649) return I32_MIN;
  return Math.trunc(x) | 0;
}

export function evalUnary(op: UnaryOp, t: DType, x: number): number {
  switch (op) {
    case "neg": return t === "i32" ? -x | 0 : f(-x);
    case "not": return x ? 0 : 1;
    case "abs": return t === "i32" ? Math.abs(x) | 0 : f(Math.abs(x));
    case "exp": return f(Math.exp(x));
    case "exp2": return f(Math.pow(2, x));
    case "log": return f(Math.log(x));
    case "log2": return f(Math.log2(x));
    case "sqrt": return f(Math.sqrt(x));
    case "tanh": return f(Math.tanh(x));
    case "sigmoid": return f(1 / (1 + Math.exp(-x)));
    case "toF32": return f(x);
    case "toI32": return t === "f32" ? f32ToI32(x) : x | 0;
  }
}

/** `t` is the operands' type (both operands always share it after tracing). */
export function evalBinary(op: BinaryOp, t: DType, a: number, b: number): number {
  const int = t === "i32";
  switch (op) {
    case "add": return int ? (a + b) | 0 : f(a + b);
    case "sub": return int ? (a - b) | 0 : f(a - b);
    case "mul": return int ? Math.imul(a, b) : f(a * b);
    case "div": return f(a / b);
    case "floorDiv": return int ? floorDivI32(a, b) : f(Math.floor(f(a / b)));
    case "mod": return int ? modI32(a, b) : f(a - f(f(Math.floor(f(a / b))) * b));
    case "min": return Math.min(a, b);
    case "max": return Math.max(a, b);
    case "lt": return a < b ? 1 : 0;
    case "le": return a <= b ? 1 : 0;
    case "gt": return a > b ? 1 : 0;
    case "ge": return a >= b ? 1 : 0;
    case "eq": return a === b ? 1 : 0;
    case "ne": return a !== b ? 1 : 0;
    case "and": return a & b;
    case "or": return a | b;
  }
}

export const UNARY_OPS: readonly UnaryOp[] = [
  "neg", "not", "abs", "exp", "exp2", "log", "log2", "sqrt", "tanh", "sigmoid", "toF32", "toI32",
];
export const BINARY_OPS: readonly BinaryOp[] = [
  "add", "sub", "mul", "div", "floorDiv", "mod", "min", "max",
  "lt", "le", "gt", "ge", "eq", "ne", "and", "or",
];
export const COMPARISONS: ReadonlySet<BinaryOp> = new Set(["lt", "le", "gt", "ge", "eq", "ne"]);
export const COMMUTATIVE: ReadonlySet<BinaryOp> = new Set(["add", "mul", "min", "max", "eq", "ne", "and", "or"]);
/** Ops defined only on f32 operands (i32 operands are promoted when traced). */
export const FLOAT_ONLY: ReadonlySet<UnaryOp | BinaryOp> = new Set([
  "div", "exp", "exp2", "log", "log2", "sqrt", "tanh", "sigmoid",
]);

export function isUnary(op: string): op is UnaryOp {
  return (UNARY_OPS as readonly string[]).includes(op);
}
export function isBinary(op: string): op is BinaryOp {
  return (BINARY_OPS as readonly string[]).includes(op);
}
