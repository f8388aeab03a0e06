"""A numpy stand-in for the torch names a generated module touches, so its forward and backward run on the CPU
without torch, triton or a GPU (backward_module.py, forward_module.py): the autograd Function base and the few ops
of the launcher and the table transposition, over numpy_tensor.py's strided tensors (kernels write through views).
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
from numpy_tensor import NP, T, empty  # noqa: E402 (NP, T and empty are imported from here too)


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
