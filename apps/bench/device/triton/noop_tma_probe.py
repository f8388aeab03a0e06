"""Probe: does a tensor-descriptor (TMA) dense kernel beat flex_attention where our pointer kernel
does not (noop, N=16k, d=128, bf16)? Interleaved rounds of do_bench medians."""
import json, math, os, sys, statistics
import torch, triton, triton.language as tl
from triton.testing import do_bench
from triton.tools.tensor_descriptor import TensorDescriptor

sys.path.insert(0, sys.argv[1])  # folder of the generated noop module
import importlib.util
spec = importlib.util.spec_from_file_location("ours", sys.argv[2])
ours = importlib.util.module_from_spec(spec); spec.loader.exec_module(ours)


@triton.jit
def _fwd_tma(desc_q, desc_k, desc_v, desc_o, N, scale_log2,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    row0 = bh * N
    q = desc_q.load([row0 + pid_m * BLOCK_M, 0])
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    for start_n in range(0, N, BLOCK_N):
        k = desc_k.load([row0 + start_n, 0])
        qk = tl.dot(q, k.T)
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * scale_log2)
        p = tl.math.exp2(qk * scale_log2 - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = desc_v.load([row0 + start_n, 0])
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_ij
    acc = acc / l_i[:, None]
    desc_o.store([row0 + pid_m * BLOCK_M, 0], acc.to(desc_o.dtype))


def tma_attention(q, k, v, cfg):
    BM, BN, w, s = cfg
    B, H, N, D = q.shape
    o = torch.empty_like(q)
    dq = TensorDescriptor.from_tensor(q.view(-1, D), [BM, D])
    dk = TensorDescriptor.from_tensor(k.view(-1, D), [BN, D])
    dv = TensorDescriptor.from_tensor(v.view(-1, D), [BN, D])
    do = TensorDescriptor.from_tensor(o.view(-1, D), [BM, D])
    _fwd_tma[(N // BM, B * H)](dq, dk, dv, do, N, 1.4426950408889634 / math.sqrt(D), BLOCK_M=BM, BLOCK_N=BN, D=D,
                               num_warps=w, num_stages=s)
    return o


torch._dynamo.config.cache_size_limit = 1000
from torch.nn.attention.flex_attention import flex_attention
flex = torch.compile(flex_attention, dynamic=False)
rows = []
for (B, H, N, D) in [(1, 16, 16384, 128), (4, 16, 4096, 128)]:
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = [torch.randn((B, H, N, D), generator=g, device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    ref = flex(q, k, v)
    fns = {"flex": lambda: flex(q, k, v), "ours(default)": lambda: ours.flex_attention(q, k, v)}
    for cfg in [(128, 64, 8, 3), (128, 64, 8, 4), (128, 128, 8, 2), (128, 128, 8, 3)]:
        fns[f"tma{cfg}"] = (lambda c: (lambda: tma_attention(q, k, v, c)))(cfg)
    for name, fn in list(fns.items()):
        try:
            out = fn(); torch.cuda.synchronize()
            err = float((out.float() - ref.float()).abs().max())
            if err > 0.05:
                print(f"{name}: disagrees with flex (max abs {err:.3g})"); fns.pop(name)
        except Exception as e:
            print(f"{name}: failed {repr(e)[:300]}"); fns.pop(name)
    times = {n: [] for n in fns}
    for r in range(3):
        for n, fn in fns.items():
            times[n].append(do_bench(fn, warmup=25, rep=100, return_mode="median"))
    flops = 4 * B * H * N * N * D
    base = statistics.median(times["flex"])
    for n, ts in times.items():
        ms = statistics.median(ts)
        row = dict(B=B, H=H, N=N, D=D, kernel=n, ms=ms, tflops=flops / ms / 1e9, vs_flex=base / ms)
        rows.append(row)
        print(json.dumps(row))
json.dump(dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__, rows=rows),
          open(os.path.join(os.environ.get("OUT", "/tmp"), "triton-noop-probe.json"), "w"), indent=1)
