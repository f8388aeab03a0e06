/**
 * The WGSL renderer: one WGSL expression per IR op with exactly the evaluator's semantics
 * (packages/ir/src/semantics.ts). WGSL already wraps i32 + - * and never traps, but its
 * integer division truncates and its f32 → i32 conversion and min/max leave NaN undefined,
 * so those go through the small helpers in WGSL_MOD_PRELUDE.
 *
 * WGSL has no literal for ±inf or NaN (a constant expression that overflows is a compile
 * error), so non-finite constants are read from runtime values the emitter provides.
 *
 * WGSL lets an implementation assume values are finite, and shader compilers (Mesa's NIR on
 * llvmpipe, and others without `precise`) reassociate f32 arithmetic, contract a*b+c to an fma
 * and fold x*0 to 0, so a mod such as (kv*0.1)*10 == kv or s + ((kv + 2^24) - 2^24) would not
 * compute what the evaluator does. Each f32 + - * / result and each f32 zero constant therefore
 * goes through fa_exact: an identity (xor with a zero the compiler cannot see, derived from the
 * uniform +inf) that no rewrite can look through. What remains is in README.md.
 */
import type { BinaryOp, BufferSpec, DType, ExprRenderer, InputName, UnaryOp } from "@flexattn/ir";

export const WGSL_TYPE: Record<DType, string> = { i32: "i32", f32: "f32", bool: "bool" };

/** Runtime expressions for the non-finite f32 values. */
export interface WgslSpecials {
  posInf: string;
  negInf: string;
  nan: string;
}

export interface WgslRendererOptions {
  /** WGSL expression for each input the graph may read (score, b, h, q, kv). */
  inputs: Partial<Record<InputName, string>>;
  /** Word offset (a WGSL u32 expression) of captured buffer `slot` in the packed buffer. */
  bufferBase: (slot: number) => string;
  specials: WgslSpecials;
  /**
   * How tanh is computed. "exp" (the config default): 1 − 2/(exp(2x) + 1), which saturates and
   * propagates NaN by itself with no selects (absolute error about 1e-7 near 0), so softcap runs
   * faster than with the guarded builtin. "guarded": the builtin, saturated
   * beyond |x| > 10 and NaN passed through explicitly. Unset means "guarded".
   */
  tanh?: "guarded" | "exp";
}

/**
 * Helpers the rendered expressions call. Loads read `fa_cap: array<u32>` (all captured
 * buffers packed as 32-bit words, f32 as bits); out-of-range indices read 0.
 */
export const WGSL_MOD_PRELUDE = /* wgsl */ `
fn fa_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
// Python floor division on i32: x / 0 = 0, INT_MIN / -1 wraps to INT_MIN.
fn fa_floordiv(a: i32, b: i32) -> i32 {
  if (b == 0) { return 0i; }
  if (b == -1i) { return 0i - a; }
  let q = a / b;
  let r = a - q * b;
  return select(q, q - 1i, r != 0i && ((r < 0i) != (b < 0i)));
}
// Python modulo on i32: the sign of the divisor; x mod 0 = 0.
fn fa_mod(a: i32, b: i32) -> i32 {
  if (b == 0i || b == -1i) { return 0i; }
  let r = a % b;
  return select(r, r + b, r != 0i && ((r < 0i) != (b < 0i)));
}
// f32 -> i32: truncate toward zero, saturate, NaN -> 0.
fn fa_f2i(x: f32) -> i32 {
  if (fa_isnan(x)) { return 0i; }
  if (x >= 2147483648.0f) { return 2147483647i; }
  if (x <= -2147483648.0f) { return -2147483647i - 1i; }
  return i32(x);
}
// IEEE-style min/max as Math.min/max: NaN wins, min(0, -0) = -0, max(0, -0) = 0.
fn fa_fmin(a: f32, b: f32) -> f32 {
  let m = select(min(a, b), bitcast<f32>(bitcast<u32>(a) | bitcast<u32>(b)), a == b);
  return select(m, a + b, fa_isnan(a) || fa_isnan(b));
}
fn fa_fmax(a: f32, b: f32) -> f32 {
  let m = select(max(a, b), bitcast<f32>(bitcast<u32>(a) & bitcast<u32>(b)), a == b);
  return select(m, a + b, fa_isnan(a) || fa_isnan(b));
}
// tanh saturates to ±1 in f32 beyond |x| = 9.1; some drivers compute it as a ratio of
// exponentials that overflows to NaN, and llvmpipe returns -1 for tanh(NaN).
fn fa_tanh(x: f32) -> f32 { return select(select(tanh(x), sign(x), abs(x) > 10.0f), x, fa_isnan(x)); }
fn fa_tanh_exp(x: f32) -> f32 { return 1.0f - 2.0f / (exp(2.0f * x) + 1.0f); }
fn fa_sigmoid(x: f32) -> f32 { return 1.0f / (1.0f + exp(-x)); }
// The identity, opaque to the compiler: z is 0 at run time but not a compile-time constant.
fn fa_exact(x: f32, z: u32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ z); }
`;

/** The guarded captured-buffer loads; needs a binding named `fa_cap`. */
export const WGSL_LOAD_PRELUDE = /* wgsl */ `
fn fa_word(base: u32, i: i32, ok: bool) -> u32 { return select(0u, fa_cap[base + u32(select(0i, i, ok))], ok); }
fn fa_ld_i32(base: u32, n: i32, i: i32) -> i32 { return bitcast<i32>(fa_word(base, i, i >= 0i && i < n)); }
fn fa_ld_f32(base: u32, n: i32, i: i32) -> f32 { return bitcast<f32>(fa_word(base, i, i >= 0i && i < n)); }
fn fa_ld2_i32(base: u32, rows: i32, cols: i32, i: i32, j: i32) -> i32 {
  return bitcast<i32>(fa_word(base, i * cols + j, i >= 0i && i < rows && j >= 0i && j < cols));
}
fn fa_ld2_f32(base: u32, rows: i32, cols: i32, i: i32, j: i32) -> f32 {
  return bitcast<f32>(fa_word(base, i * cols + j, i >= 0i && i < rows && j >= 0i && j < cols));
}
`;

const f32Bits = new Uint32Array(1);
const f32View = new Float32Array(f32Bits.buffer);

/** A WGSL f32 expression for a finite or non-finite value (non-finite ones need `specials`). */
export function wgslFloat(x: number, specials?: WgslSpecials): string {
  if (!Number.isFinite(x)) {
    if (!specials) throw new Error(`wgslFloat: ${x} needs a runtime constant`);
    return Number.isNaN(x) ? specials.nan : x > 0 ? specials.posInf : specials.negInf;
  }
  f32View[0] = x;
  const bits = f32Bits[0];
  const v = f32View[0];
  // -0 and subnormals: exact bits (decimal literals of subnormals are not portable).
  if (Object.is(v, -0) || (v !== 0 && Math.abs(v) < 1.1754943508222875e-38)) {
    return `bitcast<f32>(0x${bits.toString(16).padStart(8, "0")}u)`;
  }
  if (!Number.isFinite(v)) {
    // Rounds to ±inf in f32.
    if (!specials) throw new Error(`wgslFloat: ${x} overflows f32 and needs a runtime constant`);
    return v > 0 ? specials.posInf : specials.negInf;
  }
  let s = String(v);
  if (!/[.e]/.test(s)) s += ".0";
  return v < 0 ? `(${s}f)` : `${s}f`;
}

export function wgslInt(x: number): string {
  if (x === -2147483648) return "(-2147483647i - 1i)";
  return x < 0 ? `(${x}i)` : `${x}i`;
}

/** f32 ops a compiler may rewrite (reassociate, contract, fold) into something else. */
const REWRITABLE_F32 = new Set<BinaryOp>(["add", "sub", "mul", "div"]);

export function wgslRenderer(o: WgslRendererOptions): ExprRenderer {
  // 0 at run time (the uniform +inf's bits xor its own pattern), unknown to the compiler.
  const exact = (x: string) => `fa_exact(${x}, bitcast<u32>(${o.specials.posInf}) ^ 0x7f800000u)`;
  const f32Constant = (v: number) => (v === 0 ? exact(wgslFloat(v, o.specials)) : wgslFloat(v, o.specials));
  return {
    constant: (v, t) => (t === "bool" ? (v ? "true" : "false") : t === "i32" ? wgslInt(Number(v)) : f32Constant(Number(v))),
    input: (name) => {
      const e = o.inputs[name];
      if (e === undefined) throw new Error(`WGSL renderer: no expression for input ${name}`);
      return e;
    },
    load: (spec: BufferSpec, slot, [i, j]) => {
      const base = o.bufferBase(slot);
      if (spec.shape.length === 1) return `fa_ld_${spec.dtype}(${base}, ${spec.shape[0]}i, ${i})`;
      return `fa_ld2_${spec.dtype}(${base}, ${spec.shape[0]}i, ${spec.shape[1]}i, ${i}, ${j})`;
    },
    unary: (op, x, t) => (op === "tanh" && o.tanh === "exp" ? `fa_tanh_exp(${x})` : unary(op, x, t)),
    binary: (op, a, b, t) => (t === "f32" && REWRITABLE_F32.has(op) ? exact(binary(op, a, b, t)) : binary(op, a, b, t)),
    where: (c, a, b) => `select(${b}, ${a}, ${c})`,
    declare: (name, t, expr) => `let ${name}: ${WGSL_TYPE[t]} = ${expr};`,
  };
}

function unary(op: UnaryOp, x: string, t: DType): string {
  switch (op) {
    case "neg": return t === "i32" ? `(0i - ${x})` : `(-${x})`;
    case "not": return `(!${x})`;
    case "abs": return `abs(${x})`; // abs(INT_MIN) = INT_MIN in WGSL, as in the evaluator
    case "exp": return `exp(${x})`;
    case "exp2": return `exp2(${x})`;
    case "log": return `log(${x})`;
    case "log2": return `log2(${x})`;
    case "sqrt": return `sqrt(${x})`;
    case "tanh": return `fa_tanh(${x})`;
    case "sigmoid": return `fa_sigmoid(${x})`;
    case "toF32": return t === "bool" ? `select(0.0f, 1.0f, ${x})` : t === "i32" ? `f32(${x})` : x;
    case "toI32": return t === "bool" ? `select(0i, 1i, ${x})` : t === "f32" ? `fa_f2i(${x})` : x;
  }
}

const OPERATOR: Partial<Record<BinaryOp, string>> = {
  add: "+", sub: "-", mul: "*", lt: "<", le: "<=", gt: ">", ge: ">=", eq: "==", ne: "!=", and: "&&", or: "||",
};

function binary(op: BinaryOp, a: string, b: string, t: DType): string {
  const int = t === "i32";
  const infix = OPERATOR[op];
  if (infix) return `(${a} ${infix} ${b})`;
  switch (op) {
    case "div": return `(${a} / ${b})`;
    case "floorDiv": return int ? `fa_floordiv(${a}, ${b})` : `floor(${a} / ${b})`;
    case "mod": return int ? `fa_mod(${a}, ${b})` : `(${a} - floor(${a} / ${b}) * ${b})`;
    case "min": return int ? `min(${a}, ${b})` : `fa_fmin(${a}, ${b})`;
    case "max": return int ? `max(${a}, ${b})` : `fa_fmax(${a}, ${b})`;
    default: throw new Error(`WGSL renderer: unhandled op ${op}`);
  }
}
