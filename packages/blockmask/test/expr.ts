/** Random mask expressions for property tests: a small typed AST, its fast-check generator and its tracer. */
import fc from "fast-check";
import { abs, buffer, exp, floorDiv, max, min, mod, sqrt, tanh, toF32, toI32, where, log } from "@flexattn/ir";
import type { CapturedBuffer, MaskMod, Value } from "@flexattn/ir";

export type IntOp = "add" | "sub" | "mul" | "floorDiv" | "mod" | "min" | "max";
export type CmpOp = "lt" | "le" | "gt" | "ge" | "eq" | "ne";
export type IntExpr =
  | { k: "var"; name: "b" | "h" | "q" | "kv" }
  | { k: "const"; v: number }
  | { k: "bin"; op: IntOp; a: IntExpr; b: IntExpr }
  | { k: "abs"; a: IntExpr }
  | { k: "load"; i: IntExpr; wrap: boolean }
  | { k: "load2"; j: IntExpr }
  | { k: "where"; c: BoolExpr; a: IntExpr; b: IntExpr }
  | { k: "fromFloat"; a: FloatExpr };
export type FloatOp = "add" | "sub" | "mul" | "div" | "min" | "max";
export type FloatExpr =
  | { k: "toF32"; a: IntExpr }
  | { k: "fconst"; v: number }
  | { k: "fbin"; op: FloatOp; a: FloatExpr; b: FloatExpr }
  | { k: "fun"; f: "exp" | "tanh" | "sqrt" | "log"; a: FloatExpr };
export type BoolExpr =
  | { k: "cmp"; op: CmpOp; a: IntExpr; b: IntExpr }
  | { k: "fcmp"; op: CmpOp; a: FloatExpr; b: FloatExpr }
  | { k: "and" | "or"; a: BoolExpr; b: BoolExpr }
  | { k: "not"; a: BoolExpr }
  | { k: "bconst"; v: boolean };

const INT_OPS: IntOp[] = ["add", "sub", "mul", "floorDiv", "mod", "min", "max"];
const CMP_OPS: CmpOp[] = ["lt", "le", "gt", "ge", "eq", "ne"];
const FLOAT_OPS: FloatOp[] = ["add", "sub", "mul", "div", "min", "max"];

/** Boolean expressions over q, kv, b, h; `floats` adds f32 arithmetic and math functions. */
export function boolExprArb(floats: boolean): fc.Arbitrary<BoolExpr> {
  const depth = { maxDepth: 6, depthSize: "medium", depthIdentifier: "expr", withCrossShrink: true } as const;
  const tree = fc.letrec<{ int: IntExpr; bool: BoolExpr; float: FloatExpr }>((tie) => ({
    int: fc.oneof(
      depth,
      { arbitrary: fc.constantFrom("q", "kv", "q", "kv", "b", "h").map((name) => ({ k: "var", name }) as IntExpr), weight: 6 },
      { arbitrary: fc.integer({ min: -10, max: 40 }).map((v) => ({ k: "const", v }) as IntExpr), weight: 4 },
      { arbitrary: fc.record({ k: fc.constant("bin"), op: fc.constantFrom(...INT_OPS), a: tie("int"), b: tie("int") }) as fc.Arbitrary<IntExpr>, weight: 6 },
      { arbitrary: fc.record({ k: fc.constant("abs"), a: tie("int") }) as fc.Arbitrary<IntExpr>, weight: 1 },
      { arbitrary: fc.record({ k: fc.constant("load"), i: tie("int"), wrap: fc.boolean() }) as fc.Arbitrary<IntExpr>, weight: 2 },
      { arbitrary: fc.record({ k: fc.constant("load2"), j: tie("int") }) as fc.Arbitrary<IntExpr>, weight: 1 },
      { arbitrary: fc.record({ k: fc.constant("where"), c: tie("bool"), a: tie("int"), b: tie("int") }) as fc.Arbitrary<IntExpr>, weight: 1 },
      ...(floats ? [{ arbitrary: fc.record({ k: fc.constant("fromFloat"), a: tie("float") }) as fc.Arbitrary<IntExpr>, weight: 1 }] : []),
    ),
    float: fc.oneof(
      depth,
      { arbitrary: fc.record({ k: fc.constant("toF32"), a: tie("int") }) as fc.Arbitrary<FloatExpr>, weight: 4 },
      { arbitrary: fc.constantFrom(-2.5, 0, 0.5, 3, 1e30, -Infinity, Infinity, NaN).map((v) => ({ k: "fconst", v }) as FloatExpr), weight: 2 },
      { arbitrary: fc.record({ k: fc.constant("fbin"), op: fc.constantFrom(...FLOAT_OPS), a: tie("float"), b: tie("float") }) as fc.Arbitrary<FloatExpr>, weight: 3 },
      { arbitrary: fc.record({ k: fc.constant("fun"), f: fc.constantFrom("exp", "tanh", "sqrt", "log"), a: tie("float") }) as fc.Arbitrary<FloatExpr>, weight: 2 },
    ),
    bool: fc.oneof(
      depth,
      { arbitrary: fc.record({ k: fc.constant("cmp"), op: fc.constantFrom(...CMP_OPS), a: tie("int"), b: tie("int") }) as fc.Arbitrary<BoolExpr>, weight: 6 },
      ...(floats ? [{ arbitrary: fc.record({ k: fc.constant("fcmp"), op: fc.constantFrom(...CMP_OPS), a: tie("float"), b: tie("float") }) as fc.Arbitrary<BoolExpr>, weight: 4 }] : []),
      { arbitrary: fc.record({ k: fc.constantFrom("and", "or"), a: tie("bool"), b: tie("bool") }) as fc.Arbitrary<BoolExpr>, weight: 4 },
      { arbitrary: fc.record({ k: fc.constant("not"), a: tie("bool") }) as fc.Arbitrary<BoolExpr>, weight: 1 },
      { arbitrary: fc.boolean().map((v) => ({ k: "bconst", v }) as BoolExpr), weight: 1 },
    ),
  }));
  return tree.bool;
}

export interface ExprBuffers {
  /** 1-D i32 buffer. */
  flat: CapturedBuffer;
  /** 2-D [2, n] i32 buffer, row = b. */
  rows: CapturedBuffer;
}

export function makeBuffers(flat: Int32Array, rows: Int32Array): ExprBuffers {
  return {
    flat: buffer(flat, { name: "data" }),
    rows: buffer(rows, { name: "perBatch", shape: [2, rows.length / 2] }),
  };
}

/** The mask mod that computes `e`. */
export function toMask(e: BoolExpr, bufs: ExprBuffers): MaskMod {
  return (b, h, q, kv) => {
    const vars = { b, h, q, kv };
    const int = (x: IntExpr): Value | number => {
      switch (x.k) {
        case "var": return vars[x.name];
        case "const": return x.v;
        case "abs": return abs(int(x.a));
        case "bin": {
          const f = { add: (p: Value | number, r: Value | number) => toI32(p).add(r), sub: (p: Value | number, r: Value | number) => toI32(p).sub(r),
            mul: (p: Value | number, r: Value | number) => toI32(p).mul(r), floorDiv, mod, min, max }[x.op];
          return f(int(x.a), int(x.b));
        }
        case "load": {
          const i = int(x.i);
          return bufs.flat.at(x.wrap ? mod(i, bufs.flat.shape[0] + 2) : toI32(i));
        }
        case "load2": return bufs.rows.at(b, toI32(int(x.j)));
        case "where": return where(bool(x.c), int(x.a), int(x.b));
        case "fromFloat": return toI32(float(x.a));
      }
    };
    const float = (x: FloatExpr): Value | number => {
      switch (x.k) {
        case "toF32": return toF32(int(x.a));
        case "fconst": return x.v;
        case "fun": return { exp, tanh, sqrt, log }[x.f](float(x.a));
        case "fbin": {
          const a = toF32(float(x.a));
          const r = float(x.b);
          return { add: () => a.add(r), sub: () => a.sub(r), mul: () => a.mul(r), div: () => a.div(r), min: () => min(a, r), max: () => max(a, r) }[x.op]();
        }
      }
    };
    const bool = (x: BoolExpr): Value | boolean => {
      switch (x.k) {
        case "bconst": return x.v;
        case "not": { const a = bool(x.a); return typeof a === "boolean" ? !a : a.not(); }
        case "and": case "or": {
          const a = bool(x.a);
          const c = bool(x.b);
          // A traced side goes through the traced operation: the tracer refuses dropped comparisons.
          if (typeof a === "boolean") return typeof c === "boolean" ? (x.k === "and" ? a && c : a || c) : c[x.k](a);
          return a[x.k](c);
        }
        case "cmp": return toI32(int(x.a))[x.op](int(x.b));
        case "fcmp": return toF32(float(x.a))[x.op](float(x.b));
      }
    };
    return bool(e);
  };
}
