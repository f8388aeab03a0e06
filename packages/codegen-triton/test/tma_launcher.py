"""Runs the launch-time TMA decision of a module generated with options.tma (used by tma.test.ts),
without torch, triton or a GPU: small stand-ins for the few torch/triton names the module touches
at import and in _use_tma / _ensure_tma_allocator.

    python3 tma_launcher.py MODULE.py [MODULE.py ...]

Prints one line per failed expectation; no output means all held.
"""
import contextvars
import importlib.util
import os
import sys
import types

# ---- stand-ins ----
torch = types.ModuleType("torch")
for name in ("bfloat16", "float16", "float32", "int32"):
    setattr(torch, name, name)
torch.Tensor = object
torch.version = types.SimpleNamespace(hip=None)
torch.autograd = types.SimpleNamespace(Function=object)  # the module subclasses it (its backward)
torch.is_grad_enabled = lambda: False
CAPABILITY = [(9, 0)]
torch.cuda = types.SimpleNamespace(get_device_capability=lambda device=None: CAPABILITY[0])

triton = types.ModuleType("triton")
triton.jit = lambda fn: fn
triton.cdiv = lambda a, b: -(-a // b)
installed = []
triton.set_allocator = installed.append
tl = types.ModuleType("triton.language")
tl.constexpr = object
tl.make_tensor_descriptor = object()
triton.language = tl
allocation = types.ModuleType("triton.runtime._allocation")


class NullAllocator:
    def __call__(self, size, alignment, stream):
        raise RuntimeError("no allocator")


allocation.NullAllocator = NullAllocator
allocation._allocator = contextvars.ContextVar("_allocator", default=NullAllocator())
runtime = types.ModuleType("triton.runtime")
runtime._allocation = allocation
triton.runtime = runtime
extra = types.ModuleType("triton.language.extra")
extra.libdevice = types.SimpleNamespace()
sys.modules.update({"torch": torch, "triton": triton, "triton.language": tl, "triton.runtime": runtime,
                    "triton.runtime._allocation": allocation, "triton.language.extra": extra})


class T:
    """A tensor as _use_tma sees it."""

    def __init__(self, shape, strides=None, ptr=1 << 20, es=2, device="cuda"):
        self.shape = tuple(shape)
        if strides is None:
            strides, acc = [], 1
            for n in reversed(shape):
                strides.insert(0, acc)
                acc *= n
        self._strides = tuple(strides)
        self._ptr = ptr
        self._es = es
        self.device = types.SimpleNamespace(type=device)

    def stride(self, i=None):
        return self._strides if i is None else self._strides[i]

    def element_size(self):
        return self._es

    def data_ptr(self):
        return self._ptr


def check(path):
    installed.clear()
    allocation._allocator = contextvars.ContextVar("_allocator", default=NullAllocator())
    spec = importlib.util.spec_from_file_location("generated", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    es = {"bfloat16": 2, "float16": 2, "float32": 4}[mod.DTYPE]
    dqk, dv = mod.QK_HEAD_DIM, mod.V_HEAD_DIM
    fails = []

    def expect(label, want, q=None, k=None, v=None, out=None, bm=64, bn=64):
        B, H, L = 2, 4, 100
        q = q or T((B, H, L, dqk), es=es)
        k = k or T((B, H // 2, L + 3, dqk), es=es)
        v = v or T((B, H // 2, L + 3, dv), es=es)
        got = mod._use_tma(q, k, v, out, bm, bn)
        if got is not want:
            fails.append(f"{path}: {label}: _use_tma gave {got}, expected {want}")

    def widths_ok(d):
        return (d * es) % 16 == 0

    both = widths_ok(dqk) and widths_ok(dv)
    expect("contiguous q/k/v, GQA, ragged lengths", both)
    expect("contiguous out", both, out=T((2, 4, 100, dv), es=es))
    expect("tiles of 256", both, bm=256, bn=128)
    expect("a tile of 512 rows", False, bm=512)
    expect("q base 8 bytes off", False, q=T((2, 4, 100, dqk), ptr=(1 << 20) + 8, es=es))
    expect("out base 8 bytes off", False, out=T((2, 4, 100, dv), ptr=(1 << 20) + 8, es=es))
    expect("k row stride not a multiple of 16 bytes", False,
           k=T((2, 2, 103, dqk), strides=(2 * 103 * (dqk + 1), 103 * (dqk + 1), dqk + 1, 1), es=es))
    pad = 16 // es  # one 16-byte step of padding per row keeps everything aligned
    if both:
        expect("padded rows (row stride a multiple of 16 bytes)", True,
               k=T((2, 2, 103, dqk), strides=(2 * 103 * (dqk + pad), 103 * (dqk + pad), dqk + pad, 1), es=es))
        expect("BSHD layout", True, q=T((2, 4, 100, dqk), strides=(100 * 4 * dqk, dqk, 4 * dqk, 1), es=es))
        expect("k/v heads broadcast with stride 0", True, k=T((2, 2, 103, dqk), strides=(103 * dqk, 0, dqk, 1), es=es))
        expect("overlapping rows", False, v=T((2, 2, 103, dv), strides=(103 * dv, 0, 0, 1), es=es))
    expect("batch stride not a multiple of 16 bytes", False,
           q=T((2, 4, 100, dqk), strides=(4 * 100 * dqk + 1, 100 * dqk, dqk, 1), es=es))
    expect("head dim not unit-stride", False, q=T((2, 4, 100, dqk), strides=(4 * 100 * dqk * 2, 100 * dqk * 2, dqk * 2, 2), es=es))
    expect("CPU tensors", False, q=T((2, 4, 100, dqk), device="cpu", es=es))
    CAPABILITY[0] = (8, 0)
    expect("compute capability 8.0", False)
    CAPABILITY[0] = (10, 0)
    expect("compute capability 10.0", both)
    CAPABILITY[0] = (9, 0)
    torch.version.hip = "6.2"
    expect("ROCm", False)
    torch.version.hip = None
    os.environ["TRITON_INTERPRET"] = "1"
    expect("TRITON_INTERPRET=1", False)
    del os.environ["TRITON_INTERPRET"]
    saved = tl.make_tensor_descriptor
    del tl.make_tensor_descriptor
    expect("a Triton without tl.make_tensor_descriptor", False)
    tl.make_tensor_descriptor = saved
    mod.TMA = False
    expect("module switch TMA = False", False)
    mod.TMA = True
    if mod.uses_tma(T((2, 4, 100, dqk), es=es), T((2, 2, 100, dqk), es=es), T((2, 2, 100, dv), es=es)) is not both:
        fails.append(f"{path}: uses_tma disagrees with _use_tma")

    # The allocator: installed when none is set, left alone when the caller set one.
    mod._ensure_tma_allocator()
    if installed != [mod._tma_alloc]:
        fails.append(f"{path}: no allocator set: expected _tma_alloc to be installed, got {installed}")
    installed.clear()
    allocation._allocator.set(lambda size, alignment, stream: None)
    mod._ensure_tma_allocator()
    if installed:
        fails.append(f"{path}: a caller's allocator (ContextVar) was replaced")
    allocation._allocator = NullAllocator()  # older Triton: a plain module global
    mod._ensure_tma_allocator()
    if installed != [mod._tma_alloc]:
        fails.append(f"{path}: older Triton, no allocator: expected _tma_alloc to be installed")
    installed.clear()
    allocation._allocator = lambda size, alignment, stream: None
    mod._ensure_tma_allocator()
    if installed:
        fails.append(f"{path}: older Triton: a caller's allocator was replaced")
    return fails


if __name__ == "__main__":
    bad = []
    for p in sys.argv[1:]:
        try:
            bad += check(p)
        except Exception as e:  # an import or call error is a failure too
            bad.append(f"{p}: {e!r}")
    print("\n".join(bad))
