"""Measure the error of the approximate tanh (PTX tanh.approx.f32, options.approxTanh) on the
device against float64 tanh, over a dense sweep of inputs."""
import glob
import os

import torch
import triton
import triton.language as tl

from common import GENERATED, load_module


_approx = None  # the generated module's _fa_tanh_approx, bound before the first launch


@triton.jit
def _kernel(X, Y, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(X + offs, mask=offs < n)
    tl.store(Y + offs, _approx(x), mask=offs < n)


def measure(log):
    global _approx
    path = sorted(glob.glob(os.path.join(GENERATED, "bench", "softcap_causal_approx_*.py")))[0]
    _approx = load_module(path)._fa_tanh_approx
    kernel = _kernel

    x = torch.cat([torch.linspace(-12, 12, 1 << 22, device="cuda"), torch.linspace(-1e-3, 1e-3, 1 << 16, device="cuda")])
    y = torch.empty_like(x)
    kernel[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), BLOCK=1024)
    ref = torch.tanh(x.double())
    abs_err = (y.double() - ref).abs()
    rel = abs_err / ref.abs().clamp(min=1e-30)
    res = dict(tanh_approx_max_abs=float(abs_err.max()), tanh_approx_max_abs_log2=float(torch.log2(abs_err.max())),
               tanh_approx_max_rel=float(rel[ref.abs() > 1e-6].max()),
               softcap30_max_abs=float(30 * abs_err.max()))
    log(str(res))
    return res
