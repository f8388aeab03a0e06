"""A small numpy emulation of the part of triton.language the generated kernels use, so CI (no torch, no triton,
no GPU) can execute them: `install()` puts stand-in `triton` / `triton.language` modules in sys.modules before a
generated module is imported; `@triton.jit` functions then run program by program, `kernel[grid](*args, **kw)`.

Values are numpy arrays wrapped in V (operators with Triton's broadcasting); pointers are P (a flat numpy array and
element offsets). Arithmetic runs in the arrays' own dtypes (int32 / int64 / float32, bool for masks); tl.dot sums
in float64 and rounds to float32, so results match a float32 GPU kernel to rounding, not bitwise.
"""
import sys
import types

import numpy as np

F32, I32, I64, I1 = np.float32, np.int32, np.int64, np.bool_


class DType:
    def __init__(self, name, np_type):
        self.name, self.np = name, np_type

    @property
    def element_ty(self):
        return self


def _np(x):
    if isinstance(x, V):
        return x.a
    if isinstance(x, DType):
        raise TypeError("a dtype is not a value")
    return x


def _wrap(a):
    return V(np.asarray(a))


def _pyscalar(a, other):
    """Python scalars take the other operand's type (Triton's weak typing)."""
    if isinstance(other, (bool, int, float)) and not isinstance(other, np.ndarray):
        if isinstance(other, float) and a.dtype.kind in "iub":
            return np.float32(other)
        return np.asarray(other, dtype=a.dtype) if a.dtype.kind != "b" else other
    return _np(other)


class V:
    __array_priority__ = 100

    def __init__(self, a):
        self.a = np.asarray(a)

    # shape / dtype
    @property
    def shape(self):
        return self.a.shape

    @property
    def dtype(self):
        k = self.a.dtype
        return {np.dtype(F32): float32, np.dtype(I32): int32, np.dtype(I64): int64, np.dtype(I1): int1,
                np.dtype(np.float16): float16}[k]

    def to(self, dt, **_):
        if isinstance(dt, DType):
            return V(self.a.astype(dt.np))
        raise TypeError(dt)

    def __index__(self):
        return int(self.a)

    def __int__(self):
        return int(self.a)

    def __float__(self):
        return float(self.a)

    def __bool__(self):
        return bool(self.a)

    def __getitem__(self, idx):
        return V(self.a[idx])

    def _bin(self, other, f, rev=False):
        b = _pyscalar(self.a, other)
        with np.errstate(all="ignore"):
            r = f(b, self.a) if rev else f(self.a, b)
        return V(r)

    def __add__(self, o): return self._bin(o, np.add)
    def __radd__(self, o): return self._bin(o, np.add, True)
    def __sub__(self, o): return self._bin(o, np.subtract)
    def __rsub__(self, o): return self._bin(o, np.subtract, True)
    def __mul__(self, o): return self._bin(o, np.multiply)
    def __rmul__(self, o): return self._bin(o, np.multiply, True)

    def __truediv__(self, o):
        return self._bin(o, lambda x, y: np.true_divide(x, y).astype(F32))

    def __rtruediv__(self, o):
        return self._bin(o, lambda x, y: np.true_divide(x, y).astype(F32), True)

    def __floordiv__(self, o):  # C semantics: truncate toward zero
        return self._bin(o, lambda x, y: (np.trunc(np.true_divide(x, np.where(y == 0, 1, y)))).astype(np.result_type(x, y)))

    def __rfloordiv__(self, o):
        return self._bin(o, lambda x, y: (np.trunc(np.true_divide(x, np.where(y == 0, 1, y)))).astype(np.result_type(x, y)), True)

    def __mod__(self, o):  # C semantics: the dividend's sign
        return self._bin(o, lambda x, y: np.fmod(x, np.where(y == 0, 1, y)))

    def __rmod__(self, o):
        return self._bin(o, lambda x, y: np.fmod(x, np.where(y == 0, 1, y)), True)

    def __lt__(self, o): return self._bin(o, np.less)
    def __le__(self, o): return self._bin(o, np.less_equal)
    def __gt__(self, o): return self._bin(o, np.greater)
    def __ge__(self, o): return self._bin(o, np.greater_equal)
    def __eq__(self, o): return self._bin(o, np.equal)
    def __ne__(self, o): return self._bin(o, np.not_equal)
    def __and__(self, o): return self._bin(o, np.bitwise_and)
    def __rand__(self, o): return self._bin(o, np.bitwise_and, True)
    def __or__(self, o): return self._bin(o, np.bitwise_or)
    def __ror__(self, o): return self._bin(o, np.bitwise_or, True)
    def __neg__(self): return V(-self.a)
    def __invert__(self): return V(~self.a)
    __hash__ = None


class P:
    """A pointer (or a block of pointers): a flat array and element offsets."""

    def __init__(self, base, off=0):
        self.base, self.off = base, np.asarray(off, dtype=I64)

    @property
    def dtype(self):
        return types.SimpleNamespace(element_ty=V(self.base[:0]).dtype)

    def __add__(self, o):
        return P(self.base, self.off + np.asarray(_np(o), dtype=I64))

    __radd__ = __add__

    def __getitem__(self, idx):
        return P(self.base, self.off[idx])


float32, int32, int64, int1, float16 = DType("fp32", F32), DType("int32", I32), DType("int64", I64), DType("int1", I1), DType("fp16", np.float16)
bfloat16 = float16  # numpy has no bf16: tests use f32 / f16 kernels


class constexpr:  # only used as an annotation
    pass


_pid = [0, 0, 0]
_grid = [1, 1, 1]


def program_id(axis):
    return V(np.int32(_pid[axis]))


def num_programs(axis):
    return V(np.int32(_grid[axis]))


def arange(lo, hi):
    return V(np.arange(int(lo), int(hi), dtype=I32))


def zeros(shape, dtype):
    return V(np.zeros([int(s) for s in shape], dtype=dtype.np))


def full(shape, value, dtype):
    return V(np.full([int(s) for s in shape], value, dtype=dtype.np))


def load(ptr, mask=None, other=None):
    off = ptr.off
    m = np.ones(off.shape, bool) if mask is None else np.broadcast_to(_np(mask), np.broadcast_shapes(off.shape, np.shape(_np(mask))))
    off = np.broadcast_to(off, m.shape)
    safe = np.where(m, off, 0)
    if (m & ((off < 0) | (off >= ptr.base.size))).any():
        raise IndexError("tl.load out of bounds")
    vals = ptr.base[safe]
    if mask is not None:
        vals = np.where(m, vals, np.asarray(0 if other is None else other).astype(ptr.base.dtype))
    return V(vals)


def store(ptr, value, mask=None):
    off = ptr.off
    val = np.asarray(_np(value))
    shape = np.broadcast_shapes(off.shape, val.shape, np.shape(_np(mask)) if mask is not None else ())
    off = np.broadcast_to(off, shape)
    val = np.broadcast_to(val, shape).astype(ptr.base.dtype)
    m = np.ones(shape, bool) if mask is None else np.broadcast_to(_np(mask), shape)
    if (m & ((off < 0) | (off >= ptr.base.size))).any():
        raise IndexError("tl.store out of bounds")
    ptr.base[off[m]] = val[m]


def dot(a, b, acc=None, input_precision=None, **_):
    r = (_np(a).astype(np.float64) @ _np(b).astype(np.float64)).astype(F32)
    return V(r if acc is None else _np(acc) + r)


def trans(x):
    return V(np.swapaxes(_np(x), -1, -2))


def where(c, a, b):
    a_, b_ = _np(a), _np(b)
    if isinstance(a, V) and not isinstance(b, V):
        b_ = _pyscalar(a_, b)
    if isinstance(b, V) and not isinstance(a, V):
        a_ = _pyscalar(b_, a)
    return V(np.where(_np(c), a_, b_))


def broadcast_to(x, shape):
    return V(np.broadcast_to(_np(x), [int(s) for s in shape]).copy())


def _reduce(f, x, axis):
    a = _np(x)
    return V(f(a) if axis is None else f(a, axis=axis))


def sum(x, axis=None):  # noqa: A001
    return _reduce(lambda a, **k: np.sum(a.astype(np.float64) if a.dtype == F32 else a, **k).astype(a.dtype), x, axis)


def max(x, axis=None):  # noqa: A001
    return _reduce(np.max, x, axis)


def min(x, axis=None):  # noqa: A001
    return _reduce(np.min, x, axis)


class PropagateNan:
    ALL = "all"


def maximum(a, b, propagate_nan=None):
    return V(np.maximum(_np(a), _np(b)))


def minimum(a, b, propagate_nan=None):
    return V(np.minimum(_np(a), _np(b)))


def _unary(f):
    def g(x):
        with np.errstate(all="ignore"):
            return V(f(_np(x)).astype(_np(x).dtype))
    return g


exp, exp2, log, log2, abs, floor = (_unary(f) for f in (np.exp, np.exp2, np.log, np.log2, np.abs, np.floor))  # noqa: A001
sqrt_rn = _unary(np.sqrt)


def sigmoid(x):
    return V((1 / (1 + np.exp(-_np(x)))).astype(F32))


def gather(src, index, axis):
    """tl.gather: index has src's rank and shape except along axis; out-of-range indices are an error here."""
    a, i = _np(src), _np(index)
    if i.ndim != a.ndim or any(i.shape[d] != a.shape[d] for d in range(a.ndim) if d != axis):
        raise ValueError(f"tl.gather: index shape {i.shape} does not match source shape {a.shape} off axis {axis}")
    if ((i < 0) | (i >= a.shape[axis])).any():
        raise IndexError("tl.gather index out of range")
    return V(np.take_along_axis(a, i.astype(np.int64), axis=axis))


def static_range(*bounds):
    return range(*(int(b) for b in bounds))


def debug_barrier():
    pass


def cdiv(a, b):
    return -(-int(a) // int(b))


math = types.SimpleNamespace(exp2=exp2, log2=log2, exp=exp, log=log)


def _argument(a):
    """A launch argument as the kernel sees it: tensors as pointers, ints as int32, floats as float32."""
    if hasattr(a, "as_pointer"):
        return a.as_pointer()
    if isinstance(a, np.ndarray):
        return P(a.reshape(-1))
    if isinstance(a, (bool, np.bool_)):
        return a
    if isinstance(a, (int, np.integer)):
        return V(np.asarray(a, dtype=I32))
    if isinstance(a, float):
        return V(np.float32(a))
    return a


class _Kernel:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *a, **kw):  # a @triton.jit helper called from a kernel
        return self.fn(*a, **kw)

    def __getitem__(self, grid):
        grid = tuple(grid) + (1,) * (3 - len(grid))

        def launch(*args, num_warps=None, num_stages=None, **kw):
            args = [_argument(a) for a in args]
            _grid[:] = grid
            for z in range(grid[2]):
                for y in range(grid[1]):
                    for x in range(grid[0]):
                        _pid[:] = [x, y, z]
                        self.fn(*args, **kw)
        return launch


def jit(fn=None, **_):
    if fn is None:
        return jit
    return _Kernel(fn)


def install():
    """Register the stand-ins as `triton` and `triton.language` (and triton.language.extra.libdevice)."""
    tl = sys.modules[__name__]
    triton = types.ModuleType("triton")
    triton.jit, triton.cdiv, triton.language = jit, cdiv, tl
    triton.testing = types.SimpleNamespace(do_bench=None)
    extra = types.ModuleType("triton.language.extra")
    extra.libdevice = types.SimpleNamespace(tanh=_unary(np.tanh))
    sys.modules.update({"triton": triton, "triton.language": tl, "triton.language.extra": extra, "triton.testing": triton.testing})
    return triton
