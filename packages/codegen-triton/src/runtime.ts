/**
 * Python/Triton helpers that generated kernels call. Each reproduces one op of the IR's
 * semantics (packages/ir/src/semantics.ts) where Triton's own operator differs: Triton's `//`
 * and `%` truncate toward zero (C), division by zero is undefined, f32 → i32 casts are
 * undefined out of range. A module includes only the helpers its mods use.
 */

export type HelperName = "floordiv" | "mod" | "f32_to_i32" | "tanh" | "tanh_approx" | "gather1" | "gather2";

/** The Python name of a helper inside generated modules. */
export const helperName = (h: HelperName): string => `_fa_${h}`;

const HELPERS: Record<HelperName, string> = {
  floordiv: `@triton.jit
def _fa_floordiv(a, b):
    # Python floor division on i32: a // 0 == 0 and INT_MIN // -1 wraps to INT_MIN.
    safe = tl.where((b == 0) | (b == -1), 1, b)
    q = a // safe  # Triton truncates toward zero
    q = q - (((a % safe) != 0) & ((a < 0) != (safe < 0))).to(tl.int32)
    return tl.where(b == 0, 0, tl.where(b == -1, 0 - a, q))`,
  mod: `@triton.jit
def _fa_mod(a, b):
    # Python modulo on i32: the result takes the divisor's sign; a % 0 == 0.
    safe = tl.where((b == 0) | (b == -1), 1, b)
    r = a % safe  # Triton's remainder takes the dividend's sign
    r = tl.where((r != 0) & ((r < 0) != (safe < 0)), r + safe, r)
    return tl.where(b == 0, 0, r)`,
  f32_to_i32: `@triton.jit
def _fa_f32_to_i32(x):
    # Truncate toward zero, saturate at the i32 range, NaN -> 0 (a bare cast is undefined there).
    c = tl.minimum(tl.maximum(x, -2147483648.0), 2147483520.0)
    i = tl.where(x >= 2147483648.0, 2147483647, c.to(tl.int32))
    return tl.where(x != x, 0, i)`,
  tanh: `@triton.jit
def _fa_tanh(x):
    return libdevice.tanh(x)`,
  tanh_approx: `@triton.jit
def _fa_tanh_approx(x):
    # The SFU's tanh (PTX tanh.approx.f32): one instruction instead of libdevice's ~20, with an
    # absolute error up to about 2^-10.99 (see the README); opt-in via options.approxTanh.
    return tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=f,f", [x], dtype=tl.float32, is_pure=True, pack=1)`,
  gather1: `@triton.jit
def _fa_gather1(ptr, i, n: tl.constexpr):
    # Guarded load of a captured 1-D buffer: indices outside [0, n) read 0.
    ok = (i >= 0) & (i < n)
    return tl.load(ptr + tl.where(ok, i, 0), mask=ok, other=0)`,
  gather2: `@triton.jit
def _fa_gather2(ptr, i, j, rows: tl.constexpr, cols: tl.constexpr):
    # Guarded load of a captured row-major 2-D buffer: out-of-range (i, j) read 0.
    ok = (i >= 0) & (i < rows) & (j >= 0) & (j < cols)
    return tl.load(ptr + tl.where(ok, i * cols + j, 0), mask=ok, other=0)`,
};

const ORDER: HelperName[] = ["floordiv", "mod", "f32_to_i32", "tanh", "tanh_approx", "gather1", "gather2"];

/** Python source of the helpers used, in a fixed order. */
export function helperSource(used: ReadonlySet<HelperName>): string[] {
  return ORDER.filter((h) => used.has(h)).map((h) => HELPERS[h]);
}
