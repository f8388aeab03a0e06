/**
 * The CUDA renderer: one C++ expression per IR op with the evaluator's exact semantics (the half-input
 * kernels may divide by a constant through its reciprocal: reciprocalDivision).
 * i32 arithmetic goes through unsigned to wrap without undefined behaviour; f32 arithmetic uses
 * the _rn intrinsics so nvcc never contracts a mod's a*b+c into an FMA.
 */
import { type BinaryOp, type DType, type ExprRenderer, type UnaryOp, constantReciprocal } from "@flexattn/ir";

const CTYPE: Record<DType, string> = { i32: "int", f32: "float", bool: "bool" };

export function cudaFloat(x: number): string {
  if (Number.isNaN(x)) return "__int_as_float(0x7fc00000)";
  if (x === Infinity) return "__int_as_float(0x7f800000)";
  if (x === -Infinity) return "__int_as_float(0xff800000)";
  const s = Math.fround(x).toPrecision(9);
  return /[.e]/.test(s) ? `${s}f` : `${s}.0f`;
}

function cudaInt(x: number): string {
  return x === -2147483648 ? "(-2147483647 - 1)" : String(x);
}

/** Device helpers the rendered expressions call. */
export const CUDA_MOD_PRELUDE = `
__device__ __forceinline__ int fa_add(int a, int b) { return (int)((unsigned)a + (unsigned)b); }
__device__ __forceinline__ int fa_sub(int a, int b) { return (int)((unsigned)a - (unsigned)b); }
__device__ __forceinline__ int fa_mul(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
__device__ __forceinline__ int fa_neg(int a) { return (int)(0u - (unsigned)a); }
__device__ __forceinline__ int fa_abs(int a) { return a < 0 ? fa_neg(a) : a; }
// Python floor division; x / 0 = 0 and INT_MIN / -1 wraps, as in the IR evaluator.
__device__ __forceinline__ int fa_floordiv(int a, int b) {
  if (b == 0) return 0;
  if (b == -1) return fa_neg(a);
  int q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
__device__ __forceinline__ int fa_mod(int a, int b) {
  if (b == 0 || b == -1) return 0;
  int r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
__device__ __forceinline__ float fa_ffloordiv(float a, float b) { return floorf(__fdiv_rn(a, b)); }
__device__ __forceinline__ float fa_fmod(float a, float b) { return __fsub_rn(a, __fmul_rn(floorf(__fdiv_rn(a, b)), b)); }
// f32 -> i32: truncate, saturate, NaN -> 0 (cvt.rzi.s32.f32 does exactly this).
__device__ __forceinline__ int fa_f2i(float x) { return __float2int_rz(x); }
__device__ __forceinline__ float fa_sigmoid(float x) { return __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-x))); }
// The SFU's tanh (options.approxTanh): one instruction, absolute error about 2^-11.
__device__ __forceinline__ float fa_tanh_approx(float x) { float y; asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
`;

export interface CudaRendererOptions {
  /** A mod's tanh through the SFU's tanh.approx.f32 (options.approxTanh). */
  approxTanh?: boolean;
  /**
   * `x / c` for an f32 constant c as `x · (1/c)` (constantReciprocal): the half-input kernels take it,
   * whose scores are f16/bf16 products; the f32 kernel keeps IEEE division, the evaluator's exact result.
   */
  reciprocalDivision?: boolean;
}

export function cudaRenderer(inputs: Record<string, string>, bufferName: (slot: number) => string, o: CudaRendererOptions = {}): ExprRenderer {
  /** f32 constants by their rendered text, so `x / c` can find c. */
  const f32Constants = new Map<string, number>();
  const f32Constant = (v: number) => {
    const text = cudaFloat(v);
    f32Constants.set(text, v);
    return text;
  };
  return {
    constant: (v, t) => (t === "bool" ? (v ? "true" : "false") : t === "i32" ? cudaInt(Number(v)) : f32Constant(Number(v))),
    input: (name) => inputs[name],
    load: (spec, slot, [i, j]) => {
      const buf = bufferName(slot);
      if (spec.shape.length === 1) return `((unsigned)(${i}) < ${spec.shape[0]}u ? ${buf}[${i}] : 0)`;
      const [rows, cols] = spec.shape;
      return `((unsigned)(${i}) < ${rows}u && (unsigned)(${j}) < ${cols}u ? ${buf}[(${i}) * ${cols} + (${j})] : 0)`;
    },
    unary: (op: UnaryOp, x: string, t: DType) => (op === "tanh" && o.approxTanh ? `fa_tanh_approx(${x})` : unary(op, x, t)),
    binary: (op: BinaryOp, a: string, b: string, t: DType) => {
      const c = op === "div" && o.reciprocalDivision ? f32Constants.get(b) : undefined;
      const reciprocal = c === undefined ? undefined : constantReciprocal(c);
      return reciprocal === undefined ? binary(op, a, b, t) : `__fmul_rn(${a}, ${cudaFloat(reciprocal)})`;
    },
    where: (c, a, b) => `(${c} ? ${a} : ${b})`,
    declare: (name, t, expr) => `const ${CTYPE[t]} ${name} = ${expr};`,
  };
}

function unary(op: UnaryOp, x: string, t: DType): string {
  switch (op) {
    case "neg": return t === "i32" ? `fa_neg(${x})` : `(-(${x}))`;
    case "not": return `(!${x})`;
    case "abs": return t === "i32" ? `fa_abs(${x})` : `fabsf(${x})`;
    case "exp": return `expf(${x})`;
    case "exp2": return `exp2f(${x})`;
    case "log": return `logf(${x})`;
    case "log2": return `log2f(${x})`;
    case "sqrt": return `__fsqrt_rn(${x})`;
    case "tanh": return `tanhf(${x})`;
    case "sigmoid": return `fa_sigmoid(${x})`;
    case "toF32": return t === "bool" ? `((${x}) ? 1.0f : 0.0f)` : `__int2float_rn(${x})`;
    case "toI32": return t === "bool" ? `((${x}) ? 1 : 0)` : t === "f32" ? `fa_f2i(${x})` : x;
  }
}

const COMPARE: Partial<Record<BinaryOp, string>> = { lt: "<", le: "<=", gt: ">", ge: ">=", eq: "==", ne: "!=" };

function binary(op: BinaryOp, a: string, b: string, t: DType): string {
  const int = t === "i32";
  if (COMPARE[op]) return `(${a} ${COMPARE[op]} ${b})`;
  switch (op) {
    case "add": return int ? `fa_add(${a}, ${b})` : `__fadd_rn(${a}, ${b})`;
    case "sub": return int ? `fa_sub(${a}, ${b})` : `__fsub_rn(${a}, ${b})`;
    case "mul": return int ? `fa_mul(${a}, ${b})` : `__fmul_rn(${a}, ${b})`;
    case "div": return `__fdiv_rn(${a}, ${b})`;
    case "floorDiv": return int ? `fa_floordiv(${a}, ${b})` : `fa_ffloordiv(${a}, ${b})`;
    case "mod": return int ? `fa_mod(${a}, ${b})` : `fa_fmod(${a}, ${b})`;
    // NaN-propagating like Math.min / Math.max.
    case "min": return int ? `min(${a}, ${b})` : `((${a}) != (${a}) || (${b}) != (${b}) ? __int_as_float(0x7fc00000) : fminf(${a}, ${b}))`;
    case "max": return int ? `max(${a}, ${b})` : `((${a}) != (${a}) || (${b}) != (${b}) ? __int_as_float(0x7fc00000) : fmaxf(${a}, ${b}))`;
    case "and": return `(${a} && ${b})`;
    case "or": return `(${a} || ${b})`;
    default: throw new Error(`CUDA renderer: unhandled op ${op}`);
  }
}
