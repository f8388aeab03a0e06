"""Shared helpers for the Triton device harness: loading generated modules and exported data."""
import base64
import importlib.util
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATED = os.path.join(HERE, "generated")

_NP = {"f32": np.float32, "bf16": np.int16, "f16": np.int16, "i32": np.int32, "f64": np.float64}
_TORCH = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16, "i32": torch.int32}


def load_module(path, name=None):
    name = name or "fa_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def decode(b64, dtype):
    """A base64 typed array → a flat torch tensor (f16/bf16 arrive as raw bits)."""
    arr = np.frombuffer(base64.b64decode(b64), dtype=_NP[dtype]).copy()
    t = torch.from_numpy(arr)
    if dtype in ("bf16", "f16"):
        t = t.view(_TORCH[dtype])
    return t


def tensor_from(j, device):
    flat = decode(j["data"], j["dtype"]).to(device)
    return torch.as_strided(flat, j["shape"], j["strides"])


def tables_from(j, device):
    Bm, Hm, QB, KVB = j["Bm"], j["Hm"], j["QB"], j["KVB"]
    rows = (Bm, Hm, QB)
    return (
        decode(j["kvNumBlocks"], "i32").view(rows).to(device),
        decode(j["kvIndices"], "i32").view(*rows, KVB).to(device),
        decode(j["fullKvNumBlocks"], "i32").view(rows).to(device),
        decode(j["fullKvIndices"], "i32").view(*rows, KVB).to(device),
    )


def buffers_from(items, device):
    return {b["name"]: decode(b["data"], b["dtype"]).view(*b["shape"]).to(device) for b in items}


def max_rel_error(got, ref):
    """max |got - ref| / max(1, max |ref|) over elements where both are finite; counts NaN mismatches."""
    got = got.double()
    ref = ref.double()
    both_nan = torch.isnan(got) & torch.isnan(ref)
    bad = int((torch.isnan(got) ^ torch.isnan(ref)).sum())
    ok = ~(torch.isnan(got) | torch.isnan(ref))
    finite_ref = ref[torch.isfinite(ref)]
    scale = max(1.0, float(finite_ref.abs().max())) if finite_ref.numel() else 1.0
    same_inf = (got == ref) & torch.isinf(ref)
    diff_inf = ok & ~same_inf & (torch.isinf(got) | torch.isinf(ref))
    bad += int(diff_inf.sum())
    sel = ok & ~same_inf & ~diff_inf
    err = float(((got - ref).abs()[sel]).max()) / scale if sel.any() else 0.0
    del both_nan
    return err, bad


def lse_error(got, ref):
    """max |got - ref| / max(1, |ref|) elementwise (as the TS checker), plus mismatched non-finite entries."""
    got = got.double()
    ref = ref.double()
    same = (got == ref) | (torch.isnan(got) & torch.isnan(ref))
    nonfinite = ~same & (~torch.isfinite(got) | ~torch.isfinite(ref))
    sel = ~same & ~nonfinite
    err = float(((got - ref).abs() / ref.abs().clamp(min=1.0))[sel].max()) if sel.any() else 0.0
    return err, int(nonfinite.sum())


TORCH_MOD_HELPERS = '''
def _floordiv(a, b):
    safe = torch.where(b == 0, torch.ones_like(b), b)
    return torch.where(b == 0, torch.zeros_like(a), torch.div(a, safe, rounding_mode="floor"))

def _mod(a, b):
    safe = torch.where(b == 0, torch.ones_like(b), b)
    return torch.where(b == 0, torch.zeros_like(a), torch.remainder(a, safe))

def _f32_to_i32(x):
    c = x.clamp(-2147483648.0, 2147483520.0).to(torch.int32)
    c = torch.where(x >= 2147483648.0, torch.full_like(c, 2147483647), c)
    return torch.where(torch.isnan(x), torch.zeros_like(c), c)

def _gather1(buf, i):
    n = buf.shape[0]
    ok = (i >= 0) & (i < n)
    return torch.where(ok, buf[i.clamp(0, n - 1)], torch.zeros((), dtype=buf.dtype, device=buf.device))

def _gather2(buf, i, j):
    r, c = buf.shape
    ok = (i >= 0) & (i < r) & (j >= 0) & (j < c)
    return torch.where(ok, buf[i.clamp(0, r - 1), j.clamp(0, c - 1)], torch.zeros((), dtype=buf.dtype, device=buf.device))
'''


def torch_mod(source, bufs, q_offset, kv_offset, device):
    """Instantiate a mod rendered by triton-torch-mods.ts."""
    if source is None:
        return None
    scope = {"torch": torch}
    exec(TORCH_MOD_HELPERS, scope)
    exec(source, scope)
    return scope["make"](bufs, q_offset, kv_offset, device)


class warm_only:
    """Within this context the module's launcher compiles its kernel (Triton warmup) instead of
    running it; under triton.AsyncCompileMode the compiles run in parallel threads."""

    def __init__(self, mod):
        self.mod = mod

    def __enter__(self):
        kernel = self.kernel = self.mod._flexattn_fwd_kernel

        class _Warm:
            def __getitem__(self, grid):
                return lambda *a, **kw: kernel.warmup(*a, grid=grid, **kw)

        self.mod._flexattn_fwd_kernel = _Warm()
        return self

    def __exit__(self, *exc):
        self.mod._flexattn_fwd_kernel = self.kernel
        return False
