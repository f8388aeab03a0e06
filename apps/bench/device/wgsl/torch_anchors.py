"""PyTorch f32 anchors for the WGSL benchmark, on the same GPU in the same call.

SDPA with the memory-efficient backend (noop, causal) and flex_attention under torch.compile
with IEEE f32 matmuls for every variant. Shapes and variants mirror apps/bench/src/wgsl-bench.ts
(document layouts are read from the docs-N.json files it writes). Usage: torch_anchors.py OUT_DIR
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import triton.testing
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from f32_flex import compiled_f32_flex  # noqa: E402

OUT = sys.argv[1]
BUDGET_S = float(os.environ.get("ANCHOR_BUDGET_S", "220"))
flex = compiled_f32_flex()
dev = "cuda"


def variants(n, heads):
    lengths = json.load(open(os.path.join(OUT, f"docs-{n}.json")))
    docs = torch.repeat_interleave(torch.arange(len(lengths), device=dev), torch.tensor(lengths, device=dev))
    slopes = torch.tensor([2 ** (-8 * (h + 1) / heads) for h in range(heads)], device=dev)
    causal = lambda b, h, q, kv: q >= kv
    return {
        "noop": (None, None),
        "causal": (causal, None),
        "sliding-window-1024": (lambda b, h, q, kv: (q >= kv) & (q - kv <= 1024), None),
        "prefix-lm": (lambda b, h, q, kv: (kv < n // 4) | (q >= kv), None),
        "document-causal": (lambda b, h, q, kv: (docs[q] == docs[kv]) & (q >= kv), None),
        "alibi-causal": (causal, lambda s, b, h, q, kv: s + slopes[h] * (kv - q)),
        "softcap-causal": (causal, lambda s, b, h, q, kv: 30 * torch.tanh(s / 30)),
    }


def bench(fn):
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


cases = []
for d in (64, 128):
    cases += [("causal", 4096, d), ("noop", 4096, d)]
for d in (64, 128):
    cases += [(v, 4096, d) for v in ("sliding-window-1024", "prefix-lm", "document-causal", "alibi-causal", "softcap-causal")]
for d in (64, 128):
    cases += [("causal", 1024, d), ("noop", 1024, d)]

rows = []
t_start = time.time()
print(torch.__version__, torch.cuda.get_device_name(), flush=True)
for variant, n, d in cases:
    if time.time() - t_start > BUDGET_S:
        rows.append({"variant": variant, "n": n, "d": d, "skipped": "time budget"})
        continue
    batch, heads = 16384 // n, 16
    mask_mod, score_mod = variants(n, heads)[variant]
    q, k, v = (torch.randn(batch, heads, n, d, device=dev, dtype=torch.float32) for _ in range(3))
    bm = create_block_mask(mask_mod, None, None, n, n, device=dev, BLOCK_SIZE=128) if mask_mod else None
    density = 1.0 if bm is None else 1 - bm.sparsity() / 100
    flops = 4 * batch * heads * n * n * d * density
    row = {"variant": variant, "n": n, "batch": batch, "heads": heads, "d": d, "density": density}
    try:
        t0 = time.time()
        ms = bench(lambda: flex(q, k, v, score_mod=score_mod, block_mask=bm))
        row.update(flex_ms=ms, flex_tflops=flops / ms / 1e9, flex_seconds=time.time() - t0)
    except Exception as e:  # report, keep going
        row["flex_error"] = repr(e)[:300]
    if variant in ("noop", "causal"):
        try:
            with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
                ms = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=variant == "causal"))
            row.update(sdpa_eff_ms=ms, sdpa_eff_tflops=flops / ms / 1e9)
        except Exception as e:
            row["sdpa_error"] = repr(e)[:300]
    rows.append(row)
    print(json.dumps(row), flush=True)
    json.dump({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "rows": rows}, open(os.path.join(OUT, "torch-anchors.json"), "w"), indent=1)
    del q, k, v
    torch.cuda.empty_cache()
