"""PyTorch f32 anchors for the WGSL backward (packages/webgpu/scripts/backward-device.ts), on the same GPU in the same
call: flex_attention under torch.compile, IEEE f32 matmuls, causal attention with a learnable [2N - 1]
relative-position bias (a gradient for the table) and with the same bias computed from q - kv, batch 1, 8 heads,
N 1k/4k, d 64/128. Times the forward, and forward + backward (torch.autograd.grad of q, k, v and the table), each the
median of triton.testing.do_bench; backward = the difference. Usage: torch_backward_anchors.py OUT_DIR
"""
import json
import os
import sys

import torch
import triton.testing
from torch.nn.attention.flex_attention import create_block_mask

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from f32_flex import compiled_f32_flex  # noqa: E402

OUT = sys.argv[1]
flex = compiled_f32_flex()
dev = "cuda"
HEADS = 8


def ms(fn):
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")


def table_bias(t, n):
    """The learnable relative-position bias: a closure over the table, so flex_attention differentiates it."""
    def score(s, b, h, qi, kv):
        return s + t[qi - kv + n - 1]
    return score


def computed_bias(s, b, h, qi, kv):
    return s + (qi - kv).float() * -0.01


rows = []
for n in (1024, 4096):
    block_mask = create_block_mask(lambda b, h, q, kv: q >= kv, None, None, n, n, device=dev)
    for d in (64, 128):
        g = torch.Generator(device=dev).manual_seed(n + d)
        q, k, v, dout = (torch.randn((1, HEADS, n, d), generator=g, device=dev) for _ in range(4))
        table = torch.randn(2 * n - 1, generator=g, device=dev)
        for learnable in (True, False):
            inputs = [t.clone().requires_grad_() for t in (q, k, v)] + ([table.clone().requires_grad_()] if learnable else [])
            score = table_bias(inputs[3], n) if learnable else computed_bias
            fwd = lambda: flex(*inputs[:3], score_mod=score, block_mask=block_mask)  # noqa: E731
            both = lambda: torch.autograd.grad(fwd(), inputs, dout)  # noqa: E731
            forward_ms, fwd_bwd_ms = ms(fwd), ms(both)
            row = {"n": n, "d": d, "heads": HEADS, "learnable": learnable, "flex_forward_ms": forward_ms,
                   "flex_forward_backward_ms": fwd_bwd_ms, "flex_backward_ms": fwd_bwd_ms - forward_ms}
            rows.append(row)
            print(json.dumps(row), flush=True)
json.dump({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "rows": rows},
          open(os.path.join(OUT, "torch-backward-anchors.json"), "w"), indent=1)
