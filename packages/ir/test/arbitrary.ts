/** fast-check generators of random mod expressions, shared by property tests. */
import fc from "fast-check";
import { type Value, abs, floorDiv, max, min, mod, where, type CapturedBuffer } from "@flexattn/ir";

export type IntExpr =
  | { k: "var"; v: "b" | "h" | "q" | "kv" }
  | { k: "const"; v: number }
  | { k: "bin"; op: "add" | "sub" | "mul" | "floorDiv" | "mod" | "min" | "max"; a: IntExpr; b: IntExpr }
  | { k: "un"; op: "abs" | "neg"; a: IntExpr }
  | { k: "where"; c: BoolExpr; a: IntExpr; b: IntExpr }
  | { k: "load"; i: IntExpr };
export type BoolExpr =
  | { k: "cmp"; op: "lt" | "le" | "gt" | "ge" | "eq" | "ne"; a: IntExpr; b: IntExpr }
  | { k: "logic"; op: "and" | "or"; a: BoolExpr; b: BoolExpr }
  | { k: "not"; a: BoolExpr };

const constArb = fc.oneof(fc.integer({ min: -40, max: 40 }), fc.constantFrom(0, 1, -1, 2147483647, -2147483648, 1 << 30));

export const exprArbs = fc.letrec<{ int: IntExpr; bool: BoolExpr }>((tie) => ({
  int: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.record({ k: fc.constant("var" as const), v: fc.constantFrom("b" as const, "h" as const, "q" as const, "kv" as const) }),
    fc.record({ k: fc.constant("const" as const), v: constArb }),
    fc.record({
      k: fc.constant("bin" as const),
      op: fc.constantFrom("add" as const, "sub" as const, "mul" as const, "floorDiv" as const, "mod" as const, "min" as const, "max" as const),
      a: tie("int"),
      b: tie("int"),
    }),
    fc.record({ k: fc.constant("un" as const), op: fc.constantFrom("abs" as const, "neg" as const), a: tie("int") }),
    fc.record({ k: fc.constant("where" as const), c: tie("bool"), a: tie("int"), b: tie("int") }),
    fc.record({ k: fc.constant("load" as const), i: tie("int") }),
  ),
  bool: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.record({
      k: fc.constant("cmp" as const),
      op: fc.constantFrom("lt" as const, "le" as const, "gt" as const, "ge" as const, "eq" as const, "ne" as const),
      a: tie("int"),
      b: tie("int"),
    }),
    fc.record({ k: fc.constant("logic" as const), op: fc.constantFrom("and" as const, "or" as const), a: tie("bool"), b: tie("bool") }),
    fc.record({ k: fc.constant("not" as const), a: tie("bool") }),
  ),
}));

export interface Vars { b: Value; h: Value; q: Value; kv: Value }

export function buildInt(e: IntExpr, v: Vars, buf: CapturedBuffer): Value | number {
  switch (e.k) {
    case "var": return v[e.v];
    case "const": return e.v;
    case "un": {
      const a = buildInt(e.a, v, buf);
      return typeof a === "number" ? (e.op === "abs" ? Math.abs(a) | 0 : -a | 0) : e.op === "abs" ? abs(a) : a.neg();
    }
    case "where": return where(buildBool(e.c, v, buf), buildInt(e.a, v, buf), buildInt(e.b, v, buf));
    case "load": {
      const i = buildInt(e.i, v, buf);
      return buf.at(typeof i === "number" ? v.q.mul(0).add(i) : i);
    }
    case "bin": {
      const a = buildInt(e.a, v, buf);
      const b = buildInt(e.b, v, buf);
      const av = typeof a === "number" ? v.q.mul(0).add(a) : a;
      switch (e.op) {
        case "floorDiv": return floorDiv(av, b);
        case "mod": return mod(av, b);
        case "min": return min(av, b);
        case "max": return max(av, b);
        default: return av[e.op](b);
      }
    }
  }
}

export function buildBool(e: BoolExpr, v: Vars, buf: CapturedBuffer): Value {
  switch (e.k) {
    case "cmp": {
      const a = buildInt(e.a, v, buf);
      const av = typeof a === "number" ? v.q.mul(0).add(a) : a;
      return av[e.op](buildInt(e.b, v, buf));
    }
    case "logic": return buildBool(e.a, v, buf)[e.op](buildBool(e.b, v, buf));
    case "not": return buildBool(e.a, v, buf).not();
  }
}
