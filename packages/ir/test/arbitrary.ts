/**
 * fast-check generators of random mask and score mods: the IR property tests (properties.test.ts)
 * and the end-to-end fuzz tests (packages/flexattn/test/fuzz.test.ts) share them.
 *
 * Masks: i32 expressions over b, h, q, kv, constants, add/sub/mul/floorDiv/mod/min/max/abs/neg,
 * where, loads from a random Int32Array buffer (1-D or 2-D), comparisons (also of loads from
 * Float32Array buffers, 1-D and 2-D, against constants), exact float arithmetic (dyadic values on
 * a small grid, so fused or reassociated f32 arithmetic cannot flip a comparison), and/or/not,
 * and the andMasks / orMasks / notMask combinators of @flexattn/masks.
 *
 * Score mods: float expressions that stay continuous in the score (no comparison, floor or
 * f32 → i32 of a score-dependent value: the kernels' f32 dot products differ from the float64
 * reference in the last bits, so a discontinuity would flip and fail for no bug) and bounded in
 * magnitude (a score of 1e6 has an absolute f32 rounding error far above any tolerance).
 * Index arithmetic enters through toF32(clamp(i32 expr)), the f32 buffers (1-D and 2-D) through
 * loads, transcendental functions (tanh, sigmoid, exp, exp2, log, sqrt) on bounded arguments, and
 * `where(cond, -Infinity, x)` masks through the score.
 */
import fc from "fast-check";
import {
  type CapturedBuffer, type Value, abs, exp, exp2, floorDiv, log, max, min, mod, sigmoid, sqrt, tanh, toF32, toI32, where,
} from "@flexattn/ir";
import { andMasks, notMask, orMasks } from "@flexattn/masks";

export type IntExpr =
  | { k: "var"; v: "b" | "h" | "q" | "kv" }
  | { k: "const"; v: number }
  | { k: "bin"; op: "add" | "sub" | "mul" | "floorDiv" | "mod" | "min" | "max"; a: IntExpr; b: IntExpr }
  | { k: "un"; op: "abs" | "neg"; a: IntExpr }
  | { k: "where"; c: BoolExpr; a: IntExpr; b: IntExpr }
  | { k: "load"; i: IntExpr; j: IntExpr }
  | { k: "ftoi"; i: IntExpr; c: number }
  | { k: "b2i"; c: BoolExpr };
export type BoolExpr =
  | { k: "cmp"; op: "lt" | "le" | "gt" | "ge" | "eq" | "ne"; a: IntExpr; b: IntExpr }
  | { k: "fcmp"; op: "lt" | "ge"; i: IntExpr; c: number }
  | { k: "band"; lo: number; hi: number; div: number }
  | { k: "doc"; causal: boolean }
  | { k: "bconst"; v: boolean }
  | { k: "bwhere"; c: BoolExpr; a: BoolExpr; b: BoolExpr }
  | { k: "logic"; op: "and" | "or"; a: BoolExpr; b: BoolExpr }
  | { k: "not"; a: BoolExpr }
  /** toF32(clamp(i, ±64))·s + fmat[r, c] compared with c: float arithmetic in a mask, exact in f32. */
  | { k: "farith"; op: "lt" | "ge"; i: IntExpr; s: number; r: IntExpr; c: IntExpr; t: number }
  /** The combinators of @flexattn/masks on sub-masks (traced through their own mask functions). */
  | { k: "masks"; op: "and" | "or"; parts: BoolExpr[] }
  | { k: "notMask"; a: BoolExpr };
export type FloatExpr =
  | { k: "score" }
  | { k: "fconst"; v: number }
  | { k: "idx"; e: IntExpr; lo: number; hi: number; s: number }
  | { k: "fload"; i: IntExpr }
  /** The 2-D f32 buffer. */
  | { k: "fload2"; i: IntExpr; j: IntExpr }
  | { k: "fun"; op: "tanh" | "sigmoid" | "abs" | "neg" | "expTanh" | "expClamp" | "exp2Clamp" | "logAbs" | "sqrtAbs"; a: FloatExpr }
  | { k: "fbin"; op: "add" | "sub" | "min" | "max" | "mulTanh" | "mul" | "divSoft"; a: FloatExpr; b: FloatExpr }
  | { k: "fscale"; op: "mul" | "div"; c: number; a: FloatExpr }
  | { k: "fwhere"; c: BoolExpr; a: FloatExpr; b: FloatExpr };

/** A score mod: an optional `where(cond, -inf, ·)` around a bounded float expression. */
export interface ScoreExpr {
  body: FloatExpr;
  negInf: BoolExpr | null;
}

const smallInt = fc.integer({ min: -40, max: 40 });
const constArb = fc.oneof(
  { weight: 6, arbitrary: smallInt },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, -1, 2, 3, 16, 2147483647, -2147483648, 1 << 30, -(1 << 30)) },
);
const cmpOp = fc.constantFrom("lt" as const, "le" as const, "gt" as const, "ge" as const, "eq" as const, "ne" as const);

export const exprArbs = fc.letrec<{ int: IntExpr; bool: BoolExpr; float: FloatExpr }>((tie) => ({
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
    fc.record({ k: fc.constant("load" as const), i: tie("int"), j: tie("int") }),
    // f32 → i32 (truncating, saturating) of a float-buffer value: exact, it never involves the score.
    fc.record({ k: fc.constant("ftoi" as const), i: tie("int"), c: fc.constantFrom(1, 7.5, -3.25, 0.5, 3e9, -1e10) }),
    fc.record({ k: fc.constant("b2i" as const), c: tie("bool") }),
  ),
  bool: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.record({ k: fc.constant("cmp" as const), op: cmpOp, a: tie("int"), b: tie("int") }),
    fc.record({ k: fc.constant("fcmp" as const), op: fc.constantFrom("lt" as const, "ge" as const), i: tie("int"), c: fc.constantFrom(-1, -0.25, 0, 0.5, 1.5) }),
    // Structured leaves, as real masks are: windows / chunks (floorDiv(q, d) - floorDiv(kv, d) in [lo, hi]) and documents.
    fc.record({ k: fc.constant("band" as const), lo: fc.integer({ min: -30, max: 10 }), hi: fc.integer({ min: -10, max: 30 }), div: fc.constantFrom(1, 1, 3, 16, 24) }),
    fc.record({ k: fc.constant("doc" as const), causal: fc.boolean() }),
    fc.record({ k: fc.constant("bconst" as const), v: fc.boolean() }),
    fc.record({ k: fc.constant("bwhere" as const), c: tie("bool"), a: tie("bool"), b: tie("bool") }),
    fc.record({ k: fc.constant("logic" as const), op: fc.constantFrom("and" as const, "or" as const), a: tie("bool"), b: tie("bool") }),
    fc.record({ k: fc.constant("not" as const), a: tie("bool") }),
    fc.record({
      k: fc.constant("farith" as const), op: fc.constantFrom("lt" as const, "ge" as const), i: tie("int"),
      s: fc.constantFrom(0.5, -0.25, 1, 0.125), r: tie("int"), c: tie("int"), t: fc.constantFrom(-1, -0.375, 0, 0.5, 2.25),
    }),
    fc.record({ k: fc.constant("masks" as const), op: fc.constantFrom("and" as const, "or" as const), parts: fc.array(tie("bool"), { minLength: 1, maxLength: 3 }) }),
    fc.record({ k: fc.constant("notMask" as const), a: tie("bool") }),
  ),
  float: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.record({ k: fc.constant("score" as const) }),
    fc.record({ k: fc.constant("fconst" as const), v: fc.constantFrom(-3, -1, -0.5, 0, 0.25, 1, 2.5) }),
    fc.record({
      k: fc.constant("idx" as const),
      e: tie("int"),
      lo: fc.integer({ min: -24, max: 0 }),
      hi: fc.integer({ min: 0, max: 24 }),
      s: fc.constantFrom(0.5, 0.125, -0.25, 1, 0.1),
    }),
    fc.record({ k: fc.constant("fload" as const), i: tie("int") }),
    fc.record({ k: fc.constant("fload2" as const), i: tie("int"), j: tie("int") }),
    fc.record({
      k: fc.constant("fun" as const),
      op: fc.constantFrom(
        "tanh" as const, "sigmoid" as const, "abs" as const, "neg" as const, "expTanh" as const, "expClamp" as const,
        "exp2Clamp" as const, "logAbs" as const, "sqrtAbs" as const,
      ),
      a: tie("float"),
    }),
    fc.record({
      k: fc.constant("fbin" as const),
      op: fc.constantFrom("add" as const, "sub" as const, "min" as const, "max" as const, "mulTanh" as const, "mul" as const, "divSoft" as const),
      a: tie("float"),
      b: tie("float"),
    }),
    fc.record({ k: fc.constant("fscale" as const), op: fc.constantFrom("mul" as const, "div" as const), c: fc.constantFrom(0.5, -2, 3, 1.5, 30), a: tie("float") }),
    fc.record({ k: fc.constant("fwhere" as const), c: tie("bool"), a: tie("float"), b: tie("float") }),
  ),
}));

/** Score expressions that use the score most of the time (a constant score is legal but dull). */
export const scoreArb: fc.Arbitrary<ScoreExpr> = fc.record({
  body: fc.oneof(
    { weight: 3, arbitrary: exprArbs.float.map((e): FloatExpr => ({ k: "fbin", op: "add", a: { k: "score" }, b: e })) },
    { weight: 2, arbitrary: exprArbs.float },
  ),
  // A `where(cond, -inf, ·)` around the score in one mod of three.
  negInf: fc.oneof({ weight: 2, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: exprArbs.bool }),
});

export interface Vars { b: Value; h: Value; q: Value; kv: Value }
/** i32 (1-D or 2-D), f32 1-D, f32 2-D. */
export interface Buffers { ibuf: CapturedBuffer; fbuf: CapturedBuffer; fmat: CapturedBuffer }

const lift = (v: Vars, x: Value | number): Value => (typeof x === "number" ? v.q.mul(0).add(x) : x);

/**
 * A load index: expressions as they are (out-of-range elements read 0), constants folded into
 * [0, n) — a constant outside is provably out of range, which the library rightly refuses.
 */
const index = (v: Vars, x: Value | number, n: number): Value => lift(v, typeof x === "number" ? (((x % n) + n) % n) : x);

export function buildInt(e: IntExpr, v: Vars, bufs: Buffers): Value | number {
  switch (e.k) {
    case "var": return v[e.v];
    case "const": return e.v;
    case "un": {
      const a = buildInt(e.a, v, bufs);
      return typeof a === "number" ? (e.op === "abs" ? Math.abs(a) | 0 : -a | 0) : e.op === "abs" ? abs(a) : a.neg();
    }
    case "where": return where(buildBool(e.c, v, bufs), buildInt(e.a, v, bufs), buildInt(e.b, v, bufs));
    case "load": {
      const [rows, cols] = bufs.ibuf.shape;
      const i = index(v, buildInt(e.i, v, bufs), rows);
      return cols === undefined ? bufs.ibuf.at(i) : bufs.ibuf.at(i, index(v, buildInt(e.j, v, bufs), cols));
    }
    case "b2i": return toI32(buildBool(e.c, v, bufs));
    case "ftoi": return toI32(bufs.fbuf.at(index(v, buildInt(e.i, v, bufs), bufs.fbuf.shape[0])).mul(e.c));
    case "bin": {
      const av = lift(v, buildInt(e.a, v, bufs));
      const b = buildInt(e.b, v, bufs);
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

export function buildBool(e: BoolExpr, v: Vars, bufs: Buffers): Value {
  switch (e.k) {
    case "cmp": return lift(v, buildInt(e.a, v, bufs))[e.op](buildInt(e.b, v, bufs));
    case "fcmp": return bufs.fbuf.at(index(v, buildInt(e.i, v, bufs), bufs.fbuf.shape[0]))[e.op](e.c);
    case "band": {
      const d = e.div === 1 ? v.q.sub(v.kv) : floorDiv(v.q, e.div).sub(floorDiv(v.kv, e.div));
      return d.ge(e.lo).and(d.le(e.hi));
    }
    case "doc": {
      // Document ids: the i32 buffer read at q and kv (its first row when it is 2-D).
      const at = (i: Value) => (bufs.ibuf.shape.length === 1 ? bufs.ibuf.at(i) : bufs.ibuf.at(0, i));
      const same = at(v.q).eq(at(v.kv));
      return e.causal ? same.and(v.kv.le(v.q)) : same;
    }
    case "bconst": return e.v ? v.q.eq(v.q) : v.q.ne(v.q); // folded to a constant by the tracer
    case "farith": {
      const x = toF32(max(min(lift(v, buildInt(e.i, v, bufs)), 64), -64)).mul(e.s);
      return x.add(fmatAt(e.r, e.c, v, bufs))[e.op](e.t);
    }
    case "masks": {
      const parts = e.parts.map((p) => (b: Value, h: Value, q: Value, kv: Value) => buildBool(p, { b, h, q, kv }, bufs));
      return asValue(v, (e.op === "and" ? andMasks : orMasks)(...parts)(v.b, v.h, v.q, v.kv));
    }
    case "notMask": return asValue(v, notMask((b, h, q, kv) => buildBool(e.a, { b, h, q, kv }, bufs))(v.b, v.h, v.q, v.kv));
    case "bwhere": return where(buildBool(e.c, v, bufs), buildBool(e.a, v, bufs), buildBool(e.b, v, bufs));
    case "logic": return buildBool(e.a, v, bufs)[e.op](buildBool(e.b, v, bufs));
    case "not": return buildBool(e.a, v, bufs).not();
  }
}

/** A combinator's result may be a JS boolean (constant masks fold): lift it. */
const asValue = (v: Vars, r: Value | number | boolean): Value => (typeof r === "boolean" ? (r ? v.q.eq(v.q) : v.q.ne(v.q)) : (r as Value));

function fmatAt(r: IntExpr, c: IntExpr, v: Vars, bufs: Buffers): Value {
  const [rows, cols] = bufs.fmat.shape;
  return bufs.fmat.at(index(v, buildInt(r, v, bufs), rows), index(v, buildInt(c, v, bufs), cols));
}

/** Build a float expression and return its value with a bound on its magnitude. */
export function buildFloat(e: FloatExpr, s: Value, v: Vars, bufs: Buffers, scoreBound: number): { x: Value; bound: number } {
  const rec = (a: FloatExpr) => buildFloat(a, s, v, bufs, scoreBound);
  switch (e.k) {
    case "score": return { x: s, bound: scoreBound };
    case "fconst": return { x: toF32(v.q.mul(0)).add(e.v), bound: Math.abs(e.v) };
    case "idx": {
      const i = lift(v, buildInt(e.e, v, bufs));
      return { x: toF32(max(min(i, e.hi), e.lo)).mul(e.s), bound: Math.max(-e.lo, e.hi) * Math.abs(e.s) };
    }
    case "fload": return { x: bufs.fbuf.at(index(v, buildInt(e.i, v, bufs), bufs.fbuf.shape[0])), bound: 2 };
    case "fload2": return { x: fmatAt(e.i, e.j, v, bufs), bound: 2 };
    case "fun": {
      const a = rec(e.a);
      switch (e.op) {
        case "tanh": return { x: tanh(a.x), bound: 1 };
        case "sigmoid": return { x: sigmoid(a.x), bound: 1 };
        case "abs": return { x: abs(a.x), bound: a.bound };
        case "neg": return { x: a.x.neg(), bound: a.bound };
        case "expTanh": return { x: exp(tanh(a.x).mul(2)), bound: Math.exp(2) };
        case "expClamp": return { x: exp(min(max(a.x, -4), 3)), bound: Math.exp(3) };
        case "exp2Clamp": return { x: exp2(min(max(a.x, -4), 4)), bound: 16 };
        // Arguments kept away from the poles (log 0, sqrt's infinite slope at 0).
        case "logAbs": return { x: log(abs(a.x).add(1)), bound: Math.log(a.bound + 1) };
        case "sqrtAbs": return { x: sqrt(abs(a.x).add(1)), bound: Math.sqrt(a.bound + 1) };
      }
      break;
    }
    case "fbin": {
      const a = rec(e.a);
      const b = rec(e.b);
      switch (e.op) {
        case "add": return { x: a.x.add(b.x), bound: a.bound + b.bound };
        case "sub": return { x: a.x.sub(b.x), bound: a.bound + b.bound };
        case "min": return { x: min(a.x, b.x), bound: Math.max(a.bound, b.bound) };
        case "max": return { x: max(a.x, b.x), bound: Math.max(a.bound, b.bound) };
        case "mulTanh": return { x: a.x.mul(tanh(b.x)), bound: a.bound };
        case "mul": return { x: a.x.mul(b.x), bound: a.bound * b.bound };
        case "divSoft": return { x: a.x.div(abs(b.x).add(1)), bound: a.bound };
      }
      break;
    }
    case "fscale": {
      const a = rec(e.a);
      return e.op === "mul" ? { x: a.x.mul(e.c), bound: a.bound * Math.abs(e.c) } : { x: a.x.div(e.c), bound: a.bound / Math.abs(e.c) };
    }
    case "fwhere": {
      const a = rec(e.a);
      const b = rec(e.b);
      return { x: where(buildBool(e.c, v, bufs), a.x, b.x), bound: Math.max(a.bound, b.bound) };
    }
  }
  throw new Error("unreachable");
}

/** Largest magnitude a score mod may produce (see the file comment). */
export const SCORE_LIMIT = 30;

/** The score mod of a ScoreExpr: scaled down to SCORE_LIMIT when its bound is larger. */
export function buildScore(e: ScoreExpr, s: Value, v: Vars, bufs: Buffers, scoreBound: number): Value {
  const { x, bound } = buildFloat(e.body, s, v, bufs, scoreBound);
  const scaled = bound > SCORE_LIMIT ? x.mul(SCORE_LIMIT / bound) : x;
  return e.negInf ? where(buildBool(e.negInf, v, bufs), -Infinity, scaled) : scaled;
}
