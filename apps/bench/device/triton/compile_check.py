"""Compile generated kernels for sm_90a on a machine without a GPU (Triton's own ptxas) and report
registers, spills, shared memory and compile time — static facts that need no device time.

    python3 compile_check.py generated/bench/bench.json [--filter NAME] [--tma] [--config BM,BN,W,S ...]

--tma compiles each entry's tmaModule with USE_TMA=True (the tensor-descriptor path; the launcher
would pick the pointer path here, with no GPU).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from common import GENERATED, load_module

TARGET = GPUTarget("cuda", 90, 32)
_TY = {torch.bfloat16: "*bf16", torch.float16: "*fp16", torch.float32: "*fp32", torch.int32: "*i32"}


class _Recorder:
    def __init__(self):
        self.calls = []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((grid, args, kwargs))


def record_launch(mod, q, k, v, tables, bufs):
    kernel = mod._flexattn_fwd_kernel
    rec = _Recorder()
    mod._flexattn_fwd_kernel = rec
    os.environ["TRITON_INTERPRET"] = "1"  # lets the launcher accept non-CUDA (meta) tensors
    try:
        mod.flex_attention(q, k, v, *tables, **bufs)
    finally:
        del os.environ["TRITON_INTERPRET"]
        mod._flexattn_fwd_kernel = kernel
    return kernel, rec.calls[0]


def compile_recorded(kernel, call):
    grid, args, kwargs = call
    names = kernel.arg_names
    values = list(args) + [kwargs[n] for n in names[len(args):]]
    signature, constexprs, attrs = {}, {}, {}
    for i, (name, val) in enumerate(zip(names, values)):
        if i in kernel.constexprs:
            signature[name] = "constexpr"
            constexprs[(i,)] = val
        elif isinstance(val, torch.Tensor):
            signature[name] = _TY[val.dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(val, bool) or (isinstance(val, int) and val == 1):
            signature[name] = "constexpr"
            constexprs[(i,)] = val
        elif isinstance(val, int):
            signature[name] = "i32"
            if val % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = "fp32"
    opts = dict(num_warps=kwargs["num_warps"], num_stages=kwargs["num_stages"])
    t0 = time.time()
    c = triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=TARGET, options=opts)
    dt = time.time() - t0
    return c, dt


def ptxas_report(ptx):
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    out = subprocess.run([ptxas, "-v", "-arch=sm_90a", f.name, "-o", os.devnull], capture_output=True, text=True).stderr
    os.unlink(f.name)
    regs = re.search(r"Used (\d+) registers", out)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", out)
    return dict(regs=int(regs.group(1)) if regs else None, spill_stores=int(spill.group(1)) if spill else None,
                spill_loads=int(spill.group(2)) if spill else None)


def check_entry(e, config=None, tma=False):
    bench = os.path.join(GENERATED, "bench")
    mod = load_module(os.path.join(bench, e["tmaModule"] if tma else e["module"]))
    if config:
        mod.CONFIG = dict(BLOCK_M=config[0], BLOCK_N=config[1], num_warps=config[2], num_stages=config[3])
    meta = torch.device("meta")
    B, H, N, D = 1, e["H"], e["N"], e["D"]
    q, k, v = (torch.empty((B, H, N, D), dtype=mod.DTYPE, device=meta) for _ in range(3))
    tb = json.load(open(os.path.join(bench, "tables", e["tables"])))["tables"]
    rows = (tb["Bm"], tb["Hm"], tb["QB"])
    tables = (torch.empty(rows, dtype=torch.int32, device=meta), torch.empty(*rows, tb["KVB"], dtype=torch.int32, device=meta)) * 2
    bufs = {name: torch.empty(shape, dtype=dt, device=meta) for name, dt, shape in mod.BUFFERS}
    kernel, call = record_launch(mod, q, k, v, tables, bufs)
    if tma:
        call[2]["USE_TMA"] = True
    c, dt = compile_recorded(kernel, call)
    rep = ptxas_report(c.asm["ptx"])
    wgmma = c.asm["ptx"].count("wgmma.mma_async")
    return dict(variant=e["variant"], D=e["D"], N=e["N"], config=mod.CONFIG, tma=tma, compile_s=round(dt, 2),
                shared=c.metadata.shared, wgmma=wgmma, **rep)


if __name__ == "__main__":
    manifest = json.load(open(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1].endswith(".json") else os.path.join(GENERATED, "bench", "bench.json")))
    filt = sys.argv[sys.argv.index("--filter") + 1] if "--filter" in sys.argv else None
    tma = "--tma" in sys.argv
    configs = [tuple(int(x) for x in a.split(",")) for a in sys.argv[sys.argv.index("--config") + 1:]
               if not a.startswith("--")] if "--config" in sys.argv else [None]
    seen = set()
    for e in manifest["entries"]:
        if filt and filt not in f'{e["variant"]}_d{e["D"]}_n{e["N"]}':
            continue
        if (e["module"], e["N"]) in seen:
            continue
        seen.add((e["module"], e["N"]))
        for cfg in configs:
            try:
                print(json.dumps(check_entry(e, cfg, tma)), flush=True)
            except Exception as ex:
                print(json.dumps(dict(variant=e["variant"], D=e["D"], config=cfg, error=repr(ex)[:400])), flush=True)
