"""flex_attention f32 (torch.compile, IEEE) for causal and softcap-causal, d=64, N=4096, B=4, H=16:
the anchor for wgsl-tanh-probe.ts in the same device call. Usage: softcap_anchor.py OUT_DIR"""
import json
import sys

import torch
import triton.testing
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

torch.backends.cuda.matmul.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
torch._dynamo.config.cache_size_limit = 1000
flex = torch.compile(flex_attention, dynamic=False)
n, B, H, d = 4096, 4, 16, 64
q, k, v = (torch.randn(B, H, n, d, device="cuda") for _ in range(3))
causal = lambda b, h, qi, kv: qi >= kv
bm = create_block_mask(causal, None, None, n, n, device="cuda")
density = 1 - bm.sparsity() / 100
rows = []
for name, score in (("causal", None), ("softcap-causal", lambda s, b, h, qi, kv: 30 * torch.tanh(s / 30))):
    fn = lambda: flex(q, k, v, score_mod=score, block_mask=bm)
    fn()
    torch.cuda.synchronize()
    ms = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
    tf = 4 * B * H * n * n * d * density / (ms * 1e-3) / 1e12
    rows.append(dict(variant=name, impl="flex_attention f32 (compiled)", ms=ms, tflops=tf, density=density))
    print(name, f"{ms:.3f} ms", f"{tf:.2f} TFLOP/s", flush=True)
json.dump(dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, rows=rows), open(f"{sys.argv[1]}/softcap-anchor.json", "w"), indent=1)
