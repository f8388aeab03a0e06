"""flex_attention as both anchor scripts run it: IEEE f32 matmuls (no TF32) under torch.compile, with dynamo's
recompile limits raised (every variant and shape is a new closure: past the limit flex silently falls back to eager)."""
import torch
from torch.nn.attention.flex_attention import flex_attention


def compiled_f32_flex():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    for name in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 1000)
    return torch.compile(flex_attention, dynamic=False)
