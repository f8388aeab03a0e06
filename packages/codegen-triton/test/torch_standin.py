"""A numpy stand-in for the torch names a generated module touches, so its forward and backward run on the CPU
without torch, triton or a GPU (backward_module.py, forward_module.py): strided tensors over flat storage (kernels
write through views), the autograd Function base and the few ops of the launcher and the table transposition.
Importing it registers `torch` and the triton_emulator.py stand-ins in sys.modules; load() then imports a module.

Every float tensor the module allocates (torch.empty, empty_like, new_empty) starts NaN, so an element a kernel never
writes stays NaN and fails the comparison with the reference.
"""
import contextlib
import importlib.util
import os
import sys
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import triton_emulator  # noqa: E402

DEVICE = types.SimpleNamespace(type="cuda", index=0)
NP = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int64, "bool": np.bool_, "float64": np.float64}


class T:
    """A strided tensor over flat numpy storage (so kernels can write through views)."""

    def __init__(self, base, shape, strides, offset=0, dtype=None):
        self.base, self.shape, self._strides, self.offset = base, tuple(shape), tuple(strides), offset
        self.dtype = dtype or {np.dtype(v): k for k, v in NP.items()}[base.dtype]
        self.device, self.requires_grad, self._version, self._ctx = DEVICE, False, 0, None

    @staticmethod
    def of(a, dtype=None):
        # ascontiguousarray makes a 0-d array 1-d: keep the shape (t.all().tolist() must be a bool, as in torch).
        a = np.ascontiguousarray(a).reshape(np.shape(a))
        st = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
        return T(a.reshape(-1), a.shape, st, 0, dtype)

    @property
    def a(self):
        it = self.base.itemsize
        return np.lib.stride_tricks.as_strided(self.base[self.offset:], self.shape, [s * it for s in self._strides])

    def as_pointer(self):
        return triton_emulator.P(self.base, self.offset)

    def dim(self):
        return len(self.shape)

    def numel(self):
        return int(np.prod(self.shape))

    def stride(self, i=None):
        return self._strides if i is None else self._strides[i]

    def is_contiguous(self):
        return self._strides == T.of(np.zeros(self.shape)).stride()

    def element_size(self):
        return self.base.itemsize

    def data_ptr(self):
        return id(self.base) + self.offset

    def contiguous(self):
        return T.of(self.a.copy(), self.dtype)

    def detach(self):
        return T(self.base, self.shape, self._strides, self.offset, self.dtype)

    def requires_grad_(self, flag=True):
        self.requires_grad = flag
        return self

    def new_empty(self, shape, dtype=None):
        return empty(shape, dtype=dtype)

    def expand(self, *shape):
        return T.of(np.broadcast_to(self.a, shape).copy(), self.dtype)

    def view(self, *shape):
        return T.of(self.a.reshape(*shape), self.dtype)

    def long(self):
        return T.of(self.a.astype(np.int64))

    def to(self, dtype):
        return T.of(self.a.astype(NP[dtype]), dtype)

    def zero_(self):
        self.a[...] = 0
        return self

    def fill_(self, v):
        self.a[...] = v
        return self

    def transpose(self, i, j):
        return T.of(np.swapaxes(self.a, i, j))

    def sum(self, dim, dtype=None):
        return T.of(self.a.sum(axis=dim).astype(NP[dtype or self.dtype]), dtype or self.dtype)

    def scatter_(self, dim, index, value):
        np.put_along_axis(self.a, index.a, value, axis=dim)
        return self

    def __getitem__(self, i):
        return T.of(np.asarray(self.a[i]), None)

    def _op(self, other, f):
        return T.of(np.asarray(f(self.a, other.a if isinstance(other, T) else other)))

    __eq__ = lambda self, o: self._op(o, np.equal)  # noqa: E731
    __or__ = lambda self, o: self._op(o, np.logical_or)  # noqa: E731
    __add__ = lambda self, o: self._op(o, np.add)  # noqa: E731
    __lt__ = lambda self, o: self._op(o, np.less)  # noqa: E731
    __gt__ = lambda self, o: self._op(o, np.greater)  # noqa: E731
    __hash__ = object.__hash__

    def __invert__(self):
        return T.of(~self.a)

    def all(self):
        return T.of(np.asarray(self.a.all()))

    def any(self):
        return T.of(np.asarray(self.a.any()))

    def tolist(self):
        return self.a.tolist()


def empty(shape, dtype="float32", device=None):
    """Floats come poisoned with NaN: an element a kernel never writes stays NaN."""
    dt = NP[dtype]
    return T.of(np.full(shape, np.nan, dt) if np.issubdtype(dt, np.floating) else np.zeros(shape, dt), dtype)


class Function:
    @classmethod
    def apply(cls, *args):
        ctx = types.SimpleNamespace(needs_input_grad=tuple(isinstance(a, T) and a.requires_grad for a in args),
                                    mark_non_differentiable=lambda *t: None)
        ctx.save_for_backward = lambda *t: setattr(ctx, "saved_tensors", t)
        outs = cls.forward(ctx, *args)
        for o in outs:
            o._ctx = (cls, ctx)
        return outs


torch = types.ModuleType("torch")
for name in ("bfloat16", "float16", "float32", "int32", "int64", "bool"):
    setattr(torch, name, name)
torch.Tensor = T
torch.autograd = types.SimpleNamespace(Function=Function)
GRAD_ENABLED = [True]
torch.is_grad_enabled = lambda: GRAD_ENABLED[0]
torch.empty = empty
torch.zeros = lambda shape, dtype="float32", device=None: T.of(np.zeros(shape, NP[dtype]), dtype)
torch.full = lambda shape, value, dtype="float32", device=None: T.of(np.full(shape, value, NP[dtype]), dtype)
torch.zeros_like = lambda t: T.of(np.zeros(t.shape, t.base.dtype), t.dtype)
torch.empty_like = lambda t: empty(t.shape, t.dtype)
torch.arange = lambda n, device=None, dtype=None: T.of(np.arange(n, dtype=NP[dtype or "int64"]))
torch.stack = lambda ts: T.of(np.stack([t.a for t in ts]))
torch.where = lambda c, a, b: T.of(np.where(c.a, a.a if isinstance(a, T) else a, b.a if isinstance(b, T) else b))
torch.argsort = lambda t, dim, descending=False, stable=False: T.of(
    np.argsort(-t.a if descending else t.a, axis=dim, kind="stable"))
torch.version = types.SimpleNamespace(hip=None)
torch.cuda = types.SimpleNamespace(device=lambda d: contextlib.nullcontext(), get_device_name=lambda i: "Stand-in GPU",
                                   current_device=lambda: 0, get_device_capability=lambda d=None: (9, 0))
triton = triton_emulator.install()
triton.testing.do_bench = lambda fn, **kw: 1.0
sys.modules["torch"] = torch


def load(path, name="generated_module"):
    """Import a generated module (its own name per file, so several can be loaded in one process)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
