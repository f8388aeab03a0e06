/**
 * Symbolic values seen by mods while they are traced. TypeScript has no operator overloading,
 * so arithmetic is spelled with methods (q.sub(kv).le(w)) and free functions (where, exp, ...).
 */
import type { GraphBuilder } from "./builder.js";
import { activeBuilder } from "./trace-context.js";
import type { BinaryOp, DType, UnaryOp } from "./types.js";
import { FlexAttnError } from "./types.js";
import { f32ToI32 } from "./semantics.js";

/** What a mod may pass where a value is expected: a traced value, a number or a boolean. */
export type ValueLike = Value | number | boolean;

const ARITHMETIC_HINT =
  "use methods instead of operators: q.ge(kv) for q >= kv, q.sub(kv) for q - kv, a.and(b) for a && b, " +
  "a.eq(b) for a === b, and where(cond, a, b) instead of if/else or cond ? a : b; " +
  "Math.* does not trace either: use tanh, exp, log, sqrt, abs, min, max… from flexattn";

export class Value {
  /** @internal */
  constructor(
    readonly builder: GraphBuilder,
    readonly id: number,
  ) {
    builder.noteHandedOut(id);
  }

  get dtype(): DType {
    return this.builder.dtype(this.id);
  }

  add(o: ValueLike): Value { return arith("add", this, o); }
  sub(o: ValueLike): Value { return arith("sub", this, o); }
  mul(o: ValueLike): Value { return arith("mul", this, o); }
  /** True division: always f32, as in Python. Use floorDiv for integer division. */
  div(o: ValueLike): Value { return arith("div", this, o); }
  floorDiv(o: ValueLike): Value { return arith("floorDiv", this, o); }
  mod(o: ValueLike): Value { return arith("mod", this, o); }
  min(o: ValueLike): Value { return arith("min", this, o); }
  max(o: ValueLike): Value { return arith("max", this, o); }
  neg(): Value { return unaryOp("neg", this); }
  abs(): Value { return unaryOp("abs", this); }
  lt(o: ValueLike): Value { return compare("lt", this, o); }
  le(o: ValueLike): Value { return compare("le", this, o); }
  gt(o: ValueLike): Value { return compare("gt", this, o); }
  ge(o: ValueLike): Value { return compare("ge", this, o); }
  eq(o: ValueLike): Value { return compare("eq", this, o); }
  ne(o: ValueLike): Value { return compare("ne", this, o); }
  and(o: ValueLike): Value { return logic("and", this, o); }
  or(o: ValueLike): Value { return logic("or", this, o); }
  not(): Value { return unaryOp("not", this); }

  [Symbol.toPrimitive](hint: string): never {
    const what = hint === "string" ? "a string (template literal or concatenation)" : "a number or boolean";
    throw new FlexAttnError(
      `a traced ${this.dtype} value was converted to ${what}; inside a mod, values are symbolic: ${ARITHMETIC_HINT}`,
    );
  }
  valueOf(): never { return this[Symbol.toPrimitive]("number"); }
  toString(): never { return this[Symbol.toPrimitive]("string"); }
  toJSON(): never { return this[Symbol.toPrimitive]("string"); }
}

export function isValue(x: unknown): x is Value {
  return x instanceof Value;
}

/** The builder shared by the operands; numbers take the builder of their partner. */
function builderOf(...xs: ValueLike[]): GraphBuilder {
  let b: GraphBuilder | undefined;
  for (const x of xs) {
    if (x instanceof Value) {
      if (b && b !== x.builder) throw new FlexAttnError("a traced value from another mod was used; values cannot cross traces");
      b = x.builder;
      b.notePassedOn(x.id);
    }
  }
  return b ?? activeBuilder("a flexattn function");
}

function describe(x: ValueLike): string {
  return x instanceof Value ? `a ${x.dtype} value` : `${typeof x} ${String(x)}`;
}

/** Integer literals that fit i32 become i32 constants; anything else is f32. */
function isI32Literal(x: number): boolean {
  return Number.isInteger(x) && x >= -2147483648 && x <= 2147483647;
}

/** Lift a JS literal: booleans to bool, integers in range to i32, other numbers to f32. */
export function lift(b: GraphBuilder, x: ValueLike): number {
  if (x instanceof Value) {
    b.notePassedOn(x.id);
    return x.id;
  }
  if (typeof x === "boolean") return b.constant("bool", x ? 1 : 0);
  if (typeof x !== "number") {
    throw new FlexAttnError(`expected a traced value, number or boolean, got ${x === null ? "null" : typeof x}`);
  }
  return b.constant(isI32Literal(x) ? "i32" : "f32", x);
}

function typeOf(x: ValueLike): DType | undefined {
  return x instanceof Value ? x.dtype : typeof x === "boolean" ? "bool" : undefined;
}

/** Bring two numeric operands to one type: i32 meets f32 as f32 (PyTorch's promotion). */
function numericPair(op: string, x: ValueLike, y: ValueLike, forceFloat = false): [GraphBuilder, number, number, DType] {
  const b = builderOf(x, y);
  for (const v of [x, y]) {
    if (typeOf(v) === "bool") {
      throw new FlexAttnError(
        `${op}() got ${describe(v)}: booleans are not numbers here; use toI32(cond) or where(cond, a, b)`,
      );
    }
    if (!(v instanceof Value) && typeof v !== "number") {
      throw new FlexAttnError(`${op}() expected a traced value or a number, got ${v === null ? "null" : typeof v}`);
    }
  }
  const isFloat = (v: ValueLike) =>
    v instanceof Value ? v.dtype === "f32" : !isI32Literal(v as number);
  const t: DType = forceFloat || isFloat(x) || isFloat(y) ? "f32" : "i32";
  const operand = (v: ValueLike) =>
    v instanceof Value ? (t === "f32" ? b.unary("toF32", v.id) : v.id) : b.constant(t, v as number);
  return [b, operand(x), operand(y), t];
}

function arith(op: BinaryOp, x: ValueLike, y: ValueLike): Value {
  const [b, a, c] = numericPair(op, x, y, op === "div");
  return new Value(b, b.binary(op, a, c));
}

function compare(op: BinaryOp, x: ValueLike, y: ValueLike): Value {
  if ((op === "eq" || op === "ne") && typeOf(x) === "bool" && typeOf(y) === "bool") {
    const b = builderOf(x, y);
    return new Value(b, b.binary(op, lift(b, x), lift(b, y)));
  }
  const [b, a, c] = numericPair(op, x, y);
  return new Value(b, b.binary(op, a, c));
}

function logic(op: BinaryOp, x: ValueLike, y: ValueLike): Value {
  const b = builderOf(x, y);
  for (const v of [x, y]) {
    if (typeOf(v) !== "bool") {
      throw new FlexAttnError(`${op}() needs booleans, got ${describe(v)}; compare first, e.g. q.ge(kv)`);
    }
  }
  return new Value(b, b.binary(op, lift(b, x), lift(b, y)));
}

export function unaryOp(op: UnaryOp, x: ValueLike): Value {
  const b = builderOf(x);
  const t = typeOf(x);
  if (op === "not") {
    if (t !== "bool") throw new FlexAttnError(`not() needs a boolean, got ${describe(x)}`);
    return new Value(b, b.unary("not", lift(b, x)));
  }
  if (op === "toF32" || op === "toI32") {
    if (typeof x === "number") return new Value(b, b.constant(op === "toI32" ? "i32" : "f32", op === "toI32" ? f32ToI32(x) : x));
    return new Value(b, b.unary(op, lift(b, x)));
  }
  if (t === "bool") throw new FlexAttnError(`${op}() got a boolean; use toI32(cond) or where(cond, a, b)`);
  let id = lift(b, x);
  if (op !== "neg" && op !== "abs") id = b.unary("toF32", id);
  return new Value(b, b.unary(op, id));
}

/** where(cond, a, b): a where cond holds, else b. Branches are promoted like arithmetic. */
export function where(cond: ValueLike, a: ValueLike, c: ValueLike): Value {
  const b = builderOf(cond, a, c);
  if (typeOf(cond) !== "bool") throw new FlexAttnError(`where() needs a boolean condition, got ${describe(cond)}`);
  const condId = lift(b, cond);
  if (typeOf(a) === "bool" || typeOf(c) === "bool") {
    if (typeOf(a) !== "bool" || typeOf(c) !== "bool") {
      throw new FlexAttnError("where() branches must both be booleans or both numbers");
    }
    return new Value(b, b.where(condId, lift(b, a), lift(b, c)));
  }
  const [, x, y] = numericPair("where", a, c);
  return new Value(b, b.where(condId, x, y));
}

export const min = (a: ValueLike, b: ValueLike): Value => arith("min", a, b);
export const max = (a: ValueLike, b: ValueLike): Value => arith("max", a, b);
export const floorDiv = (a: ValueLike, b: ValueLike): Value => arith("floorDiv", a, b);
export const mod = (a: ValueLike, b: ValueLike): Value => arith("mod", a, b);
export const abs = (x: ValueLike): Value => unaryOp("abs", x);
export const exp = (x: ValueLike): Value => unaryOp("exp", x);
export const exp2 = (x: ValueLike): Value => unaryOp("exp2", x);
export const log = (x: ValueLike): Value => unaryOp("log", x);
export const log2 = (x: ValueLike): Value => unaryOp("log2", x);
export const sqrt = (x: ValueLike): Value => unaryOp("sqrt", x);
export const tanh = (x: ValueLike): Value => unaryOp("tanh", x);
export const sigmoid = (x: ValueLike): Value => unaryOp("sigmoid", x);
/** i32 or bool → f32. */
export const toF32 = (x: ValueLike): Value => unaryOp("toF32", x);
/** f32 → i32 truncates toward zero (saturating, NaN → 0); bool → 0 or 1. */
export const toI32 = (x: ValueLike): Value => unaryOp("toI32", x);
