"""Runs a generated module forward and backward on the CPU, without torch, triton or a GPU (used by backward.test.ts):
a numpy stand-in for the torch names the module touches (strided tensors over flat storage, the autograd Function
base, the few ops of its launcher and table transposition) and triton_emulator.py for the kernels.

    python3 backward_module.py MODULE.py CASE.json

CASE.json: the problem, q / k / v / dout (values, shape, strides), the kv tables, the captured buffers, which of them
require grad, the float64 reference gradients and a tolerance. Checks, one printed line per failure:
  - flex_attention(...) with requires_grad records a FlexAttentionFunction (and without it, does not);
  - its backward's dq / dk / dv / buffer gradients match the reference (outputs are allocated NaN-poisoned, so an
    unwritten element fails) and are bitwise equal over two runs;
  - the q-direction tables the module computes are the transpose of the kv tables;
  - argument errors: out= under autograd, a mask-mod buffer that requires grad.
"""
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import triton_emulator  # noqa: E402

FAILURES = []


def expect(cond, what):
    if not cond:
        FAILURES.append(what)


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
        a = np.ascontiguousarray(a)
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


def load(path):
    spec = importlib.util.spec_from_file_location("generated_bwd", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tensor(j):
    dt = {"f32": "float32", "f16": "float16"}[j["dtype"]]
    base = np.asarray(j["data"], NP[dt])
    return T(base, j["shape"], j["strides"], 0, dt)


def rel_err(got, ref, scale=None):
    got, ref = np.asarray(got, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    scale = np.abs(ref if scale is None else np.asarray(scale, np.float64)).max(initial=0.0)
    nan = int(np.isnan(got).sum())
    return (float(np.abs(got - ref).max(initial=0.0)) / max(scale, 1e-6) if not nan else float("inf")), nan


def main():
    mod_path, case_path = sys.argv[1:3]
    os.environ["FLEXATTN_CACHE_DIR"] = tempfile.mkdtemp(prefix="flexattn-bwd-test-")
    case = json.load(open(case_path))
    mod = load(mod_path)
    p = case["problem"]
    q, k, v, dout = (tensor(case[n]) for n in ("q", "k", "v", "dout"))
    tb = case["tables"]
    rows = (tb["Bm"], tb["Hm"], tb["QB"])
    tables = (T.of(np.asarray(tb["kvNumBlocks"], np.int32).reshape(rows)), T.of(np.asarray(tb["kvIndices"], np.int32).reshape(*rows, tb["KVB"])),
              T.of(np.asarray(tb["fullKvNumBlocks"], np.int32).reshape(rows)), T.of(np.asarray(tb["fullKvIndices"], np.int32).reshape(*rows, tb["KVB"])))
    bufs = {b["name"]: T.of(np.asarray(b["data"], NP["int32" if b["dtype"] == "i32" else "float32"]).reshape(b["shape"])) for b in case["buffers"]}
    kw = dict(scale=p["scale"], q_offset=p["qOffset"], kv_offset=p["kvOffset"])
    name = case["name"]

    # Without requires_grad: the plain forward, no autograd record.
    out = mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=False)
    expect(out._ctx is None, f"{name}: no autograd record without requires_grad")

    # The q-direction tables are the transpose of the kv tables.
    qt = mod.q_tables(tables)
    for (num, idx), (qnum, qidx) in (((tables[0], tables[1]), (qt[0], qt[1])), ((tables[2], tables[3]), (qt[2], qt[3]))):
        dense = np.zeros((tb["Bm"], tb["Hm"], tb["QB"], tb["KVB"]), bool)
        for bb, hh, r in np.ndindex(*rows):
            dense[bb, hh, r, idx.a[bb, hh, r, :num.a[bb, hh, r]]] = True
        for bb, hh, c in np.ndindex(tb["Bm"], tb["Hm"], tb["KVB"]):
            want = np.nonzero(dense[bb, hh, :, c])[0]
            got = qidx.a[bb, hh, c, :qnum.a[bb, hh, c]]
            if not np.array_equal(want, got):
                FAILURES.append(f"{name}: q table column {(bb, hh, c)} lists {got.tolist()}, expected {want.tolist()}")
                break
    expect(mod.q_tables(tables) is qt, f"{name}: q_tables is cached for unchanged tables")

    # Under autograd: a FlexAttentionFunction record, then its backward twice.
    for t in (q, k, v):
        t.requires_grad_(True)
    for n in case["gradBuffers"]:
        bufs[n].requires_grad_(True)
    out, lse = mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=True)
    expect(out._ctx is not None and out._ctx[0] is mod.FlexAttentionFunction, f"{name}: requires_grad records a FlexAttentionFunction")
    cls, ctx = out._ctx
    runs = [cls.backward(ctx, dout, None) for _ in range(2)]
    grads = runs[0]
    expect(len(grads) == 6 + len(mod.BUFFERS) and all(g is None for g in grads[:3]), f"{name}: backward returns one entry per forward input")
    ref = case["ref"]
    for label, got, want in (("dq", grads[3], ref["dq"]), ("dk", grads[4], ref["dk"]), ("dv", grads[5], ref["dv"])):
        err, nan = rel_err(got.a, want)
        expect(nan == 0, f"{name}: {label} has {nan} NaN (unwritten) elements")
        expect(err <= case["tolerance"], f"{name}: {label} error {err:.2e} > {case['tolerance']}")
    names = [s[0] for s in mod.BUFFERS]
    for g in ref["buffers"]:
        got = grads[6 + names.index(g["name"])]
        err, nan = rel_err(got.a, g["grad"], g["absSum"])
        expect(nan == 0 and err <= case["tolerance"], f"{name}: gradient of {g['name']} error {err:.2e} (NaN {nan})")
    for i, (a, b) in enumerate(zip(*runs)):
        if a is not None:
            expect(np.array_equal(a.a, b.a), f"{name}: backward output {i} differs between two runs")
    for i, spec in enumerate(mod.BUFFERS):
        if spec[0] not in case["gradBuffers"]:
            expect(grads[6 + i] is None, f"{name}: {spec[0]} (no requires_grad) gets no gradient")

    # Buffers that do not require grad: no gradient for them (their accumulation is switched off), the same dq.
    if case["gradBuffers"]:
        for n in case["gradBuffers"]:
            bufs[n].requires_grad_(False)
        out = mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=False)
        cls, ctx = out._ctx
        frozen = cls.backward(ctx, dout, None)
        expect(all(g is None for g in frozen[6:]), f"{name}: buffers without requires_grad get no gradient")
        expect(np.array_equal(frozen[3].a, grads[3].a), f"{name}: dq does not depend on which buffers require grad")
        for n in case["gradBuffers"]:
            bufs[n].requires_grad_(True)

    # Errors a caller can make.
    try:
        mod.flex_attention(q, k, v, *tables, **bufs, **kw, out=empty(out.shape, out.dtype), return_lse=False)
        FAILURES.append(f"{name}: out= under autograd is accepted")
    except ValueError as e:
        expect("out=" in str(e), f"{name}: the out= error names it ({e})")
    for n in mod.MASK_BUFFERS:
        if bufs[n].dtype == "float32":
            bufs[n].requires_grad_(True)
            try:
                mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=False)
                FAILURES.append(f"{name}: a mask-mod buffer that requires grad is accepted")
            except ValueError as e:
                expect("mask mod" in str(e), f"{name}: the mask-buffer error says why ({e})")
            bufs[n].requires_grad_(False)
    GRAD_ENABLED[0] = False
    out = mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=False)
    expect(out._ctx is None, f"{name}: no autograd record with grad disabled")
    GRAD_ENABLED[0] = True
    print("\n".join(FAILURES))


if __name__ == "__main__":
    main()
