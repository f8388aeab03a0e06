"""Runs a generated CUDA module's Python (config resolution, tuning, kernel choice and launch) without a GPU: stand-ins
for the torch and cupy names the module touches, a numpy-backed tensor, kernels that record their launches instead of
running, and CUDA events that report set timings per kernel. Used by module.test.ts.

    python3 module_runtime.py MODULE.py

Prints one line per failed expectation; no output means all held.
"""
import contextlib
import ctypes
import importlib.util
import io
import os
import sys
import tempfile
import types
import warnings

import numpy as np

FAILURES = []


def expect(cond, what):
    if not cond:
        FAILURES.append(what)


# ---- stand-ins ----
DEVICE = types.SimpleNamespace(type="cuda", index=0)
CAPABILITY = [(9, 0)]
LAUNCHES = []  # (kernel source, grid, block, shared_mem)
LAUNCH_ARGS = []  # the kernel arguments of each launch
TMA_MAPS = []  # (data type, rank, dims, strides, box, element strides, interleave, swizzle, l2, fill) per encoded map
TMA_STATUS = [0]  # what the stand-in cuTensorMapEncodeTiled returns
COMPILED = []  # (source, options) of every NVRTC compile
MS = {}  # kernel source -> ms per launch the stand-in events report
CURRENT = [None]  # the source of the last launch (what an event pair times)


class T:
    """A tensor as the module's checks and launcher see it."""

    def __init__(self, shape, dtype="bfloat16"):
        self.a = np.zeros(shape, np.float32)
        self.shape, self.dtype, self.device, self.requires_grad = tuple(shape), dtype, DEVICE, False

    def dim(self):
        return len(self.shape)

    def stride(self, i=None):
        st = tuple(int(np.prod(self.shape[d + 1:])) for d in range(len(self.shape)))  # contiguous, as torch reports
        return st if i is None else st[i]

    def numel(self):
        return self.a.size

    def is_contiguous(self):
        return True

    def data_ptr(self):
        return 16 * id(self) + getattr(self, "offset", 0)  # 16-byte aligned, as CUDA allocations are, unless offset

    def element_size(self):
        return 4 if self.dtype in ("float32", "int32") else 2

    def clone(self, memory_format=None):
        return T(self.shape, self.dtype)

    def new_empty(self, shape, dtype=None):
        return T(shape, dtype or self.dtype)

    def zero_(self):
        return self

    def fill_(self, _):
        return self

    def expand(self, *shape):
        return T(shape, self.dtype)

    def contiguous(self):
        return self


class Event:
    def __init__(self, enable_timing=False):
        self.source = None

    def record(self):
        self.source = CURRENT[0]

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return 10 * MS.get(end.source, 5.0)  # the timer launches 10 times between its events


torch = types.ModuleType("torch")
for name in ("bfloat16", "float16", "float32", "int32"):
    setattr(torch, name, name)
torch.Tensor = T
torch.contiguous_format = "contiguous_format"
torch.empty = lambda shape, dtype=None, device=None: T(shape, dtype)
torch.zeros = torch.empty
torch.full = lambda shape, value, dtype=None, device=None: T(shape, dtype)
torch.arange = lambda n, dtype=None, device=None: T((n,), dtype)
torch.empty_like = lambda t: T(t.shape, t.dtype)
torch.zeros_like = torch.empty_like
torch.cuda = types.SimpleNamespace(
    get_device_capability=lambda d=None: CAPABILITY[0], get_device_name=lambda d=None: "Stand-in GPU", current_device=lambda: 0,
    current_stream=lambda d=None: types.SimpleNamespace(cuda_stream=0), synchronize=lambda d=None: None, Event=Event)


class Function:
    """A compiled kernel: launching records the launch."""

    def __init__(self, code):
        self.code = code
        self.max_dynamic_shared_size_bytes = 0

    def __call__(self, grid, block, args, shared_mem=0):
        CURRENT[0] = self.code
        LAUNCHES.append((self.code, grid, block, shared_mem))
        LAUNCH_ARGS.append(args)


class RawModule:
    def __init__(self, code=None, options=(), path=None):
        if path is not None:
            raise AssertionError("the test hides nvcc: there are no cubins")
        COMPILED.append((code, options))
        self.code = code

    def get_function(self, entry):
        return Function(self.code)


cupy = types.ModuleType("cupy")
cupy.RawModule = RawModule
cupy.cuda = types.SimpleNamespace(Device=lambda i: contextlib.nullcontext(), ExternalStream=lambda s: contextlib.nullcontext())
sys.modules.update({"torch": torch, "cupy": cupy})


def encode_tensor_map(map_ptr, data_type, rank, address, dims, strides, box, element_strides, interleave, swizzle, l2, fill):
    """The stand-in cuTensorMapEncodeTiled: records what a map would describe."""
    TMA_MAPS.append((data_type, rank, tuple(dims[:rank]), tuple(strides[:rank - 1]), tuple(box[:rank]), tuple(element_strides[:rank]),
                     interleave, swizzle, l2, fill))
    return TMA_STATUS[0]


def load(path):
    spec = importlib.util.spec_from_file_location("generated_cuda", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.shutil = types.SimpleNamespace(which=lambda name: None)  # no nvcc: NVRTC through the stand-in cupy
    mod._tma_encode[:] = [encode_tensor_map]  # no CUDA driver here
    return mod


def check_tma(mod, q, k, v, bufs, launched):
    """A TMA kernel gets one argument after the ABI's: the three maps, which describe q, k and v as they are."""
    tma = [n for n, kern in mod.KERNELS.items() if kern["tma"]]
    if not tma:
        return
    name, kern = tma[0], mod.KERNELS[tma[0]]
    plain = next(n for n, kern in mod.KERNELS.items() if not kern["tma"])
    TMA_MAPS.clear()
    LAUNCH_ARGS.clear()
    launched(config=plain)
    abi_args = len(LAUNCH_ARGS[-1])
    expect(not TMA_MAPS, "a kernel without TMA builds no tensor map")
    launched(config=name)
    args = LAUNCH_ARGS[-1]
    expect(len(args) == abi_args + 1, f"the TMA kernel takes the maps after the ABI's {abi_args} arguments ({len(args)})")
    maps = args[-1]
    expect(isinstance(maps, np.ndarray) and maps.size == 1 and maps.itemsize == 3 * mod._TMA_MAP_BYTES,
           "the maps go by value, as one 384-byte argument")
    expect(maps.__array_interface__["data"][0] % 64 == 0, "the maps are 64-byte aligned")
    data_type = {"bfloat16": 9, "float16": 6}[mod.DTYPE]
    for (name_, t, rows), got in zip((("q", q, kern["block_m"]), ("k", k, kern["block_n"]), ("v", v, kern["block_n"])), TMA_MAPS):
        B, H, L, D = t.shape
        want = (data_type, 4, (D, L, H, B), (2 * D, 2 * L * D, 2 * H * L * D), (64, rows, 1, 1), (1, 1, 1, 1), 0, 3, 2, 0)
        expect(got == want, f"the map of {name_}: {got}, expected {want}")
    expect(len(TMA_MAPS) == 3, f"three maps per launch ({len(TMA_MAPS)})")
    # A layout no map describes (here a start 2 bytes past alignment) is copied, and the copy is said once, not per call.
    k.offset = 2
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            for _ in range(2):
                TMA_MAPS.clear()
                launched(config=name)
                expect(LAUNCH_ARGS[-1][-1] is not None and len(TMA_MAPS) == 3, "a copied operand still gets its map")
        said = [str(w.message) for w in seen if "copied to a contiguous tensor" in str(w.message)]
        expect(len(said) == 1 and said[0].startswith("flexattn: k (strides"), f"one warning naming k for its copy: {said}")
    finally:
        k.offset = 0
    # A map the driver refuses is an error that names the tensor, not a launch on a bad map.
    TMA_STATUS[0] = 1
    try:
        refused(RuntimeError, "cuTensorMapEncodeTiled refused q", "a refused tensor map", mod.flex_attention, q, k, v, **bufs, config=name)
    finally:
        TMA_STATUS[0] = 0
    # No CUDA driver to encode with: an explicit TMA config is refused with the reason.
    mod._tma_encode[:] = []
    real_cdll = ctypes.CDLL
    ctypes.CDLL = lambda path: (_ for _ in ()).throw(OSError(f"{path}: cannot open shared object file"))
    try:
        refused(ValueError, "cuTensorMapEncodeTiled", "a TMA kernel without a CUDA driver", mod.flex_attention, q, k, v, **bufs, config=name)
    finally:
        ctypes.CDLL = real_cdll
        mod._tma_encode[:] = [encode_tensor_map]


def refused(error, text, what, fn, *args, **kwargs):
    """Expect fn(*args, **kwargs) to raise `error` with `text` in its message."""
    try:
        quiet(fn, *args, **kwargs)
        FAILURES.append(f"{what}: no error")
    except error as e:
        expect(text in str(e), f"{what}: the error says why ({e})")


def quiet(fn, *args, **kwargs):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        return fn(*args, **kwargs), err.getvalue()


def main():
    mod = load(sys.argv[1])
    os.environ["FLEXATTN_CACHE_DIR"] = tempfile.mkdtemp(prefix="flexattn-cuda-tune-")
    os.environ["FLEXATTN_CACHE"] = tempfile.mkdtemp(prefix="flexattn-cuda-bin-")
    names = list(mod.KERNELS)
    expect(len(names) >= 3, f"the module carries several kernels ({names})")
    expect(mod.CONFIG == {"name": names[0]} and mod.CANDIDATES[0] == mod.CONFIG, "CONFIG is the first kernel and the first candidate")
    expect(mod.check_config(names[1]) == {"name": names[1]} and mod.check_config({"name": names[1]}) == {"name": names[1]},
           "a config is a kernel name or dict(name=...)")
    for bad in ("nope", {"name": "nope"}, {"BLOCK_M": 64}, 3):
        try:
            mod.check_config(bad)
            FAILURES.append(f"check_config accepts {bad!r}")
        except ValueError as e:
            expect(names[0] in str(e), f"the refusal of {bad!r} lists the kernel names ({e})")

    B, H, L = 2, 4, 256
    q, k, v = T((B, H, L, mod.QK_HEAD_DIM), mod.DTYPE), T((B, H, L, mod.QK_HEAD_DIM), mod.DTYPE), T((B, H, L, mod.V_HEAD_DIM), mod.DTYPE)
    bufs = {name: T(shape, dtype) for name, dtype, shape in mod.BUFFERS}

    def launched(**kw):
        LAUNCHES.clear()
        result, err = quiet(mod.flex_attention, q, k, v, **bufs, **kw)
        return result, LAUNCHES[-1], err

    def kernel_of(code):
        return next(n for n, kern in mod.KERNELS.items() if kern["source"] == code)

    # Cubins of the same spec from other code (an older flexattn, or the spec hash alone) are never loaded:
    # the stand-in RawModule refuses a path, so loading one fails the call.
    major, minor = CAPABILITY[0]
    arch = f"{major}{minor}{'a' if major >= 9 else ''}"
    for kern in mod.KERNELS.values():
        for stale in (f"cuda-{kern['spec_hash']}-sm{arch}.cubin", f"cuda-{kern['spec_hash']}-{'0' * 16}-sm{arch}.cubin"):
            open(os.path.join(os.environ["FLEXATTN_CACHE"], stale), "wb").close()

    # Untuned: the default kernel, with its own launch shape.
    _, (code, grid, block, smem), _ = launched()
    first = mod.KERNELS[names[0]]
    expect(kernel_of(code) == names[0], "an untuned call runs the default kernel")
    expect(grid == (-(-L // first["block_m"]), H, B) and block == (first["threads"],) and smem == first["smem"],
           f"the default kernel's grid, threads and shared memory ({grid}, {block}, {smem})")
    expect(mod.last_config()["source"] == "default", "last_config says default")

    # An explicit config runs that kernel.
    _, (code, grid, block, smem), _ = launched(config=names[2])
    kern = mod.KERNELS[names[2]]
    expect(kernel_of(code) == names[2] and grid[0] == -(-L // kern["block_m"]) and smem == kern["smem"], "config= runs its kernel")
    expect(mod.last_config()["source"] == "explicit", "last_config says explicit")

    # Tuning times every kernel into scratch outputs, picks the fastest and caches it; the next call uses the cache.
    MS.clear()
    MS[mod.KERNELS[names[-1]]["source"]] = 1.0
    _, (code, _, _, _), err = launched(autotune=True)
    expect(kernel_of(code) == names[-1] and mod.last_config()["source"] == "tuned", f"autotune picks the fastest ({mod.last_config()})")
    expect(f"candidate 1/{len(names)}" in err, "tuning prints progress")
    _, (code, _, _, _), _ = launched()
    expect(kernel_of(code) == names[-1] and mod.last_config()["source"] == "cache", "the next call uses the cached pick")
    MS.clear()
    MS[mod.KERNELS[names[1]]["source"]] = 0.5
    pick, _ = quiet(mod.tune, q, k, v, **bufs)
    expect(pick == {"name": names[1]}, f"tune() re-times and returns the new pick ({pick})")

    check_tma(mod, q, k, v, bufs, launched)

    # Nothing to compute (no keys, or no queries): no launch.
    LAUNCHES.clear()
    mod.flex_attention(q, T((B, H, 0, mod.QK_HEAD_DIM), mod.DTYPE), T((B, H, 0, mod.V_HEAD_DIM), mod.DTYPE), **bufs)
    mod.flex_attention(T((B, H, 0, mod.QK_HEAD_DIM), mod.DTYPE), k, v, **bufs)
    expect(not LAUNCHES, "an empty problem launches nothing")

    # A wgmma default on a GPU that is not compute capability 9.0: the first kernel that runs there, reported.
    if first["kernel"] == "wgmma":
        runnable = next((n for n in names if mod.KERNELS[n]["kernel"] != "wgmma"), None)
        expect(runnable is not None, "a wgmma module also carries kernels for other GPUs")
        mod._disk_entries, mod._kernels = {}, {}
        CAPABILITY[0] = (8, 0)
        try:
            _, (code, _, _, _), _ = launched(autotune=False)
            last = mod.last_config()
            expect(kernel_of(code) == runnable and "cannot run" in last.get("fallback", ""),
                   f"an A100-class GPU runs {runnable} instead of the wgmma default ({last})")
            try:
                mod.flex_attention(q, k, v, **bufs, config=names[0])
                FAILURES.append("an explicit wgmma config on compute capability 8.0 is accepted")
            except ValueError as e:
                expect("compute capability 9.0" in str(e), f"the refusal says why ({e})")
        finally:
            CAPABILITY[0] = (9, 0)
    expect(all(opts[-1] == "--gpu-architecture=sm_90a" for code, opts in COMPILED if mod.KERNELS[kernel_of(code)]["kernel"] == "wgmma"),
           "NVRTC compiles wgmma kernels for sm_90a")
    print("\n".join(FAILURES))


if __name__ == "__main__":
    main()
