"""The numpy stand-in for torch.Tensor that the CPU checks of generated Triton modules share: a strided tensor over
flat numpy storage (kernels write through views), its dtype a torch name. No side effects: torch_standin.py builds
its `torch` on it and installs the Triton emulator; tuning_module.py subclasses it (fake data_ptr, counted reads).
"""
import types

import numpy as np

DEVICE = types.SimpleNamespace(type="cuda", index=0)
NP = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int64, "bool": np.bool_, "float64": np.float64}


class T:
    """A strided tensor over flat numpy storage (so kernels can write through views). Methods make their results
    with self.of, so a subclass's overrides (tuning_module's counted tolist) hold for every tensor derived from it."""

    def __init__(self, base, shape, strides, offset=0, dtype=None):
        self.base, self.shape, self._strides, self.offset = base, tuple(shape), tuple(strides), offset
        self.dtype = dtype or {np.dtype(v): k for k, v in NP.items()}[base.dtype]
        self.device, self.requires_grad, self._version, self._ctx = DEVICE, False, 0, None

    @classmethod
    def of(cls, a, dtype=None):
        # ascontiguousarray makes a 0-d array 1-d: keep the shape (t.all().tolist() must be a bool, as in torch).
        a = np.ascontiguousarray(a).reshape(np.shape(a))
        st = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
        return cls(a.reshape(-1), a.shape, st, 0, dtype)

    @property
    def a(self):
        it = self.base.itemsize
        return np.lib.stride_tricks.as_strided(self.base[self.offset:], self.shape, [s * it for s in self._strides])

    def as_pointer(self):
        import triton_emulator  # only the emulator calls this (torch_standin installs it), so not imported up front
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
        return self.of(self.a.copy(), self.dtype)

    def detach(self):
        return type(self)(self.base, self.shape, self._strides, self.offset, self.dtype)

    def requires_grad_(self, flag=True):
        self.requires_grad = flag
        return self

    def new_empty(self, shape, dtype=None):
        return empty(shape, dtype=dtype)

    def expand(self, *shape):
        return self.of(np.broadcast_to(self.a, shape).copy(), self.dtype)

    def view(self, *shape):
        return self.of(self.a.reshape(*shape), self.dtype)

    def long(self):
        return self.of(self.a.astype(np.int64))

    def to(self, dtype):
        return self.of(self.a.astype(NP[dtype]), dtype)

    def zero_(self):
        self.a[...] = 0
        return self

    def fill_(self, v):
        self.a[...] = v
        return self

    def transpose(self, i, j):
        return self.of(np.swapaxes(self.a, i, j))

    def sum(self, dim, dtype=None):
        return self.of(self.a.sum(axis=dim).astype(NP[dtype or self.dtype]), dtype or self.dtype)

    def scatter_(self, dim, index, value):
        np.put_along_axis(self.a, index.a, value, axis=dim)
        return self

    def __getitem__(self, i):
        return self.of(np.asarray(self.a[i]), None)

    def _op(self, other, f):
        return self.of(np.asarray(f(self.a, other.a if isinstance(other, T) else other)))

    __eq__ = lambda self, o: self._op(o, np.equal)  # noqa: E731
    __or__ = lambda self, o: self._op(o, np.logical_or)  # noqa: E731
    __add__ = lambda self, o: self._op(o, np.add)  # noqa: E731
    __lt__ = lambda self, o: self._op(o, np.less)  # noqa: E731
    __gt__ = lambda self, o: self._op(o, np.greater)  # noqa: E731
    __hash__ = object.__hash__

    def __invert__(self):
        return self.of(~self.a)

    def all(self):
        return self.of(np.asarray(self.a.all()))

    def any(self):
        return self.of(np.asarray(self.a.any()))

    def tolist(self):
        return self.a.tolist()


def empty(shape, dtype="float32", device=None):
    """Floats come poisoned with NaN: an element a kernel never writes stays NaN."""
    dt = NP[dtype]
    return T.of(np.full(shape, np.nan, dt) if np.issubdtype(dt, np.floating) else np.zeros(shape, dt), dtype)
