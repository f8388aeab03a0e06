/**
 * The generated Python module for PyTorch users: .cu sources inside, one per config it carries
 * (the spec's own first, then its target's next best guesses), each compiled on first use (nvcc
 * when it is on PATH, else NVRTC through CuPy) and cached by spec hash and GPU.
 * `flex_attention(q, k, v, <BlockMask tables>, *, <captured buffers>, scale, return_lse, q_offset,
 * kv_offset, out, config, autotune)` has the Triton module's signature and argument checks, and
 * resolves its config the same way (explicit > tuning cache > tuning now > shipped > default,
 * @flexattn/autotune's Python runtime): with several configs it tunes on first use per problem
 * bucket, the way the Triton module does.
 */
import { pythonTuningRuntime } from "@flexattn/autotune";
import { FlexAttnError } from "@flexattn/ir";
import {
  type KernelArtifact, type KernelConfig, type KernelSpec, capturedBuffers, kernelAbi, PYTHON_FLEX_ATTENTION_ARGS, pythonInputChecks,
} from "@flexattn/template";
import { generateCuda } from "./backend.js";
import { DEFAULT_DYNAMIC_SHARED_LIMIT, cudaConfigCandidates, cudaConfigName, cudaOptions, cudaTarget } from "./options.js";
import { TMA_MAP, tmaModeArgs } from "./wgmma.js";

const TORCH_DTYPE = { f32: "torch.float32", f16: "torch.float16", bf16: "torch.bfloat16" } as const;

/** Configs a module carries unless told: enough to hold the best of a measured table's few winners. */
export const DEFAULT_MODULE_CONFIGS = 4;


export interface CudaModuleOptions {
  /** How many configs the module carries and tunes over: the spec's own first (default 4; 1 gives a one-kernel module). */
  readonly configs?: number;
}

const isPyName = (s: string) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(s);

/**
 * The configs a module carries: the spec's own, then the candidates of its target (sm_90a when the
 * spec's kernel is wgmma, else sm_80), each once. A wgmma module with room for two or more keeps
 * the sm_80 default as its last, so it still runs on a GPU that is not compute capability 9.0.
 */
export function cudaModuleConfigs(spec: KernelSpec, count = DEFAULT_MODULE_CONFIGS): KernelConfig[] {
  if (!Number.isInteger(count) || count < 1) throw new FlexAttnError(`a CUDA module carries at least one config; got configs: ${count}`);
  const wgmma = (c: KernelConfig) => cudaOptions(c, spec.dtype).kernel === "wgmma";
  // The caller's choice of numerics (the approximate tanh) holds for every kernel the module may tune to.
  const approxTanh = cudaOptions(spec.config, spec.dtype).approxTanh;
  const numerics = (c: KernelConfig): KernelConfig => (approxTanh ? { ...c, options: { ...c.options, approxTanh: true } } : c);
  const seen = new Set<string>();
  const configs = [spec.config, ...cudaConfigCandidates(spec, spec.sparseBlock, spec, wgmma(spec.config) ? cudaTarget("sm_90a") : undefined).map(numerics)]
    .filter((c) => {
      const name = cudaConfigName(c, spec.dtype);
      return !seen.has(name) && seen.add(name);
    })
    .slice(0, count);
  if (count > 1 && configs.every(wgmma)) {
    const sm80 = numerics(cudaConfigCandidates(spec, spec.sparseBlock, spec)[0]);
    configs.splice(Math.min(configs.length, count - 1), 1, sm80);
  }
  return configs;
}

/** How each kernel argument is passed from Python, in ABI order (names bound in _Call.launch). */
function launchArgs(spec: KernelSpec, pyNames: Map<string, string>): string {
  const scalar: Record<string, string> = {
    batch: "B", q_heads: "Hq", kv_heads: "Hkv", q_len: "Lq", kv_len: "Lkv",
    sparse_b: "Bm", sparse_h: "Hm", sparse_q_blocks: "QB", sparse_kv_blocks: "KVB", q_offset: "q_offset", kv_offset: "kv_offset",
  };
  return kernelAbi(spec)
    .map((a) => {
      if (a.kind === "tensor") return `_ptr(${pyNames.get(a.name) ?? a.name})`;
      if (a.name === "scale") return "np.float32(scale)";
      const stride = /^stride_(q|k|v|out)_([bhs])$/.exec(a.name);
      if (stride) return `np.int32(${stride[1]}.stride(${"bhs".indexOf(stride[2])}))`;
      return `np.int32(${scalar[a.name]})`;
    })
    .join(",\n                ");
}

/** One KERNELS entry: a config's source and launch shape. */
function kernelEntry(spec: KernelSpec, artifact: KernelArtifact): string {
  if (artifact.source.includes('"""') || artifact.source.includes("\\")) {
    throw new FlexAttnError("internal: the generated CUDA source cannot be embedded in a raw Python string");
  }
  const { kernel, tma } = cudaOptions(artifact.config, spec.dtype);
  return `    ${JSON.stringify(cudaConfigName(artifact.config, spec.dtype))}: dict(
        spec_hash=${JSON.stringify(artifact.specHash)}, kernel=${JSON.stringify(kernel)}, block_m=${artifact.config.blockM},
        block_n=${artifact.config.blockN}, tma=${tma ? "True" : "False"}, threads=${artifact.launch.threadsPerProgram}, smem=${artifact.launch.sharedMemoryBytes ?? 0},
        source=r"""${artifact.source}"""),`;
}

export function cudaPythonModule(spec: KernelSpec, artifact: KernelArtifact = generateCuda(spec), options: CudaModuleOptions = {}): string {
  if (cudaConfigName(artifact.config, spec.dtype) !== cudaConfigName(spec.config, spec.dtype)) {
    throw new FlexAttnError(`cudaPythonModule: the artifact was generated for ${cudaConfigName(artifact.config, spec.dtype)}, the spec asks for ${cudaConfigName(spec.config, spec.dtype)}`);
  }
  const artifacts = [artifact, ...cudaModuleConfigs(spec, options.configs).slice(1).map((config) => generateCuda({ ...spec, config }))];
  const buffers = capturedBuffers(spec).map((b, i) => {
    const buf = b.graph.buffers[b.slot];
    return { abi: b.name, py: isPyName(b.name) ? b.name : `buffer_${i}`, dtype: buf.dtype, shape: [...buf.shape] };
  });
  const pyNames = new Map(buffers.map((b) => [b.abi, b.py]));
  const kw = buffers.length ? `*, ${buffers.map((b) => b.py).join(", ")}, ` : "*, ";
  const bufDict = buffers.map((b) => `${JSON.stringify(b.py)}: ${b.py}`).join(", ");
  const bufSpecs = buffers.map((b) => `    (${JSON.stringify(b.py)}, ${b.dtype === "i32" ? "torch.int32" : "torch.float32"}, (${b.shape.join(", ")},)),`);
  const bufLocals = buffers.map((b, i) => `        ${b.py} = self.bufs[${i}]`).join("\n");
  const names = artifacts.map((a) => cudaConfigName(a.config, spec.dtype));
  return `"""FlexAttention forward, CUDA kernels generated by flexattn (@flexattn/codegen-cuda). Do not edit.

Needs torch and cupy (for NVRTC, or nvcc on PATH). A kernel compiles on first use and its binary is
cached by spec hash, source digest and GPU in $FLEXATTN_CACHE (default ~/.cache/flexattn). Usage:

    import this_module as fa
    out = fa.flex_attention(q, k, v, kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices,
                            <captured buffers as keyword arguments>, return_lse=False)

dtype ${spec.dtype}, head dims qk ${spec.qkHeadDim} / v ${spec.vHeadDim}, BlockMask block ${spec.sparseBlock.join("x")};
kernels (the default first): ${names.join("; ")}.
"""
import contextlib
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

try:
    import fcntl
except ImportError:  # not on Windows: the tuning cache is then written without a lock
    fcntl = None

import numpy as np
import torch

__all__ = ["flex_attention", "tune", "export_tuning", "load_tuning", "last_config", "problem_bucket", "dense_block_mask",
           "DTYPE", "QK_HEAD_DIM", "V_HEAD_DIM", "SPARSE_BLOCK", "BUFFERS", "CONFIG", "CANDIDATES", "KERNELS"]

SPEC_HASH = ${JSON.stringify(artifact.specHash)}  # the default kernel's: names this module in the tuning cache
DTYPE = ${TORCH_DTYPE[spec.dtype]}
QK_HEAD_DIM = ${spec.qkHeadDim}
V_HEAD_DIM = ${spec.vHeadDim}
SPARSE_BLOCK = (${spec.sparseBlock[0]}, ${spec.sparseBlock[1]})  # BlockMask block size [q, kv]
RETURN_LSE_DEFAULT = ${spec.returnLse ? "True" : "False"}
ENTRY = ${JSON.stringify(artifact.entry)}
# Captured buffers (keyword arguments of flex_attention): name, dtype, shape.
BUFFERS = (${buffers.length ? `\n${bufSpecs.join("\n")}\n` : ""})

# The kernels this module carries, one per config, the default first: name -> spec hash, kernel kind (wgmma needs
# compute capability 9.0, mma 8.0+, simt any), rows per program, threads, dynamic shared memory, the .cu source.
KERNELS = {
${artifacts.map((a) => kernelEntry(spec, a)).join("\n")}
}
CONFIG = dict(name=${JSON.stringify(names[0])})  # the default
CANDIDATES = tuple(dict(name=name) for name in KERNELS)  # what the tuner times, the default first
SHIPPED = {}  # tuned picks shipped for known GPUs: none yet for CUDA


# ---- config shape: a config names one of KERNELS ----

def config_text(c):
    return c["name"]


def config_well_formed(c):
    return isinstance(c, dict) and isinstance(c.get("name"), str)


def check_config(c, what="config"):
    """c (a kernel name, or dict(name=...)) as a config of this module, or a ValueError listing the names."""
    name = c if isinstance(c, str) else c.get("name") if isinstance(c, dict) and set(c) == {"name"} else None
    if name not in KERNELS:
        raise ValueError(f"{what} must name one of this module's kernels ({', '.join(map(repr, KERNELS))}), as the "
                         f"name or dict(name=...); got {c!r}")
    return {"name": name}
${pythonTuningRuntime("cuda")}
${pythonInputChecks()}

# ---- kernels ----

class _CannotRun(Exception):
    """This GPU cannot run the kernel: its architecture is not the one the kernel needs."""


_kernels = {}


def _cache_dir():
    d = os.environ.get("FLEXATTN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "flexattn")
    os.makedirs(d, exist_ok=True)
    return d


def _compile(device, name):
    """A kernel for a device: a cached cubin, else nvcc into the cache, else NVRTC through CuPy (cached by CuPy)."""
    import cupy
    kern = KERNELS[name]
    major, minor = torch.cuda.get_device_capability(device)
    gpu = _device_name(device)
    # mma.sync, ldmatrix and cp.async need sm_80; wgmma needs sm_90a, which only compute capability 9.0 runs.
    if kern["kernel"] == "wgmma" and (major, minor) != (9, 0):
        raise _CannotRun(f"{name} uses wgmma (sm_90a) and runs on compute capability 9.0 GPUs (H100/H200) only; {gpu} "
                         f"is {major}.{minor}")
    if kern["kernel"] == "mma" and major < 8:
        raise _CannotRun(f"{name} needs a GPU of compute capability 8.0 or newer; {gpu} is {major}.{minor}")
    arch = f"{major}{minor}{'a' if major >= 9 else ''}"
    # Named by the source's digest too: another flexattn version may emit other code for the same spec.
    digest = hashlib.sha256(kern["source"].encode()).hexdigest()[:16]
    cubin = os.path.join(_cache_dir(), f"cuda-{kern['spec_hash']}-{digest}-sm{arch}.cubin")
    with cupy.cuda.Device(device.index if device.index is not None else torch.cuda.current_device()):
        if not os.path.exists(cubin) and shutil.which("nvcc"):
            with tempfile.TemporaryDirectory() as tmp:
                src = os.path.join(tmp, "kernel.cu")
                with open(src, "w") as f:
                    f.write(kern["source"])
                r = subprocess.run(["nvcc", "-O3", f"-gencode=arch=compute_{arch},code=sm_{arch}", "-cubin", src, "-o", src + ".cubin"],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError(f"nvcc failed to compile the flexattn kernel {name} ({kern['spec_hash']}):\\n{r.stderr[-4000:]}")
                os.replace(src + ".cubin", cubin)
        nvrtc_options = ("--std=c++17",) + (("--gpu-architecture=sm_90a",) if kern["kernel"] == "wgmma" else ())
        module = cupy.RawModule(path=cubin) if os.path.exists(cubin) else cupy.RawModule(code=kern["source"], options=nvrtc_options)
        fn = module.get_function(ENTRY)
        if kern["smem"] > ${DEFAULT_DYNAMIC_SHARED_LIMIT}:
            fn.max_dynamic_shared_size_bytes = kern["smem"]
    return fn


def _kernel(device, name):
    key = (device.index if device.index is not None else torch.cuda.current_device(), name)
    if key not in _kernels:
        _kernels[key] = _compile(device, name)
    return _kernels[key]


def _ptr(t):
    return np.uint64(t.data_ptr())


# ---- tensor maps for the kernels that load through TMA (kernel "wgmma", tma=True) ----

_TMA_MAP_BYTES = ${TMA_MAP.bytes}
_TMA_DATA_TYPE = ${spec.dtype === "f32" ? 0 : TMA_MAP.dataType[spec.dtype]}  # CUtensorMapDataType of DTYPE
_tma_encode = []


def _tma_encoder():
    """cuTensorMapEncodeTiled of the CUDA driver (CUDA 12+), through ctypes."""
    if not _tma_encode:
        import ctypes
        try:
            fn = ctypes.CDLL("nvcuda.dll" if os.name == "nt" else "libcuda.so.1").cuTensorMapEncodeTiled
        except (OSError, AttributeError) as e:
            raise _CannotRun(f"the TMA kernels need cuTensorMapEncodeTiled from the CUDA driver (CUDA 12 or newer): {e}")
        fn.restype = ctypes.c_int
        _tma_encode.append(fn)
    return _tma_encode[0]


def _tma_copy(name, t, why):
    """A contiguous copy of t for a tensor map (made on the call's stream, so it outlives the launch in the caching
    allocator's order); the copy costs a pass over t on every call, which is said once per tensor and reason."""
    _warn_once(("tma-copy", name, why), f"flexattn: {name} (strides {t.stride()}) is copied to a contiguous tensor on every call of "
               f"this TMA kernel: {why}. Pass {name} contiguous, or pick a config without tma.")
    return t.clone(memory_format=torch.contiguous_format)


def _tma_operand(name, t):
    """t when a tensor map can describe it (16-byte aligned start, 16-byte multiple strides, unit last stride), else a
    contiguous copy."""
    es = t.element_size()
    aligned = t.data_ptr() % 16 == 0 and t.stride(3) == 1
    strides_ok = all(n == 1 or (s > 0 and s * es % 16 == 0) for n, s in zip(t.shape[:3], t.stride()[:3]))
    if aligned and strides_ok:
        return t
    return _tma_copy(name, t, "a tensor map needs a 16-byte aligned start, strides that are multiples of 16 bytes and a unit last stride")


def _tma_encode_map(address, t, box_rows):
    """Encode the map of t (a [batch, heads, rows, dim] tensor) at address; the driver's CUresult."""
    import ctypes
    u64, u32 = ctypes.c_uint64, ctypes.c_uint32
    B, H, L, D = t.shape
    es = t.element_size()
    # Dims innermost first; a dim of extent 1 gets the contiguous stride (its own may be anything).
    extents = (D * es, L * D * es, H * L * D * es)
    strides = [s * es if n > 1 else c for n, s, c in zip((L, H, B), (t.stride(2), t.stride(1), t.stride(0)), extents)]
    return _tma_encoder()(ctypes.c_void_p(address), _TMA_DATA_TYPE, ${TMA_MAP.rank}, ctypes.c_void_p(t.data_ptr()), (u64 * 4)(D, L, H, B),
                          (u64 * 3)(*strides), (u32 * 4)(${TMA_MAP.boxColumns}, box_rows, 1, 1), (u32 * 4)(1, 1, 1, 1), ${tmaModeArgs()})


def _tma_maps(kern, q, k, v):
    """The kernel's last argument, the tensor maps of q, k and v (${TMA_MAP.bytes} bytes each, ${TMA_MAP.align}-byte aligned) over [batch, heads,
    rows, dim] with a box of ${TMA_MAP.boxColumns} columns × the tile's rows, the 128-byte swizzle and zero fill; and the tensors they
    describe (a copy where the driver takes no map of the caller's layout), to be kept alive until the launch."""
    raw = np.zeros(3 * _TMA_MAP_BYTES + ${TMA_MAP.align}, dtype=np.uint8)
    start = -raw.ctypes.data % ${TMA_MAP.align}
    maps = raw[start:start + 3 * _TMA_MAP_BYTES]
    described = []
    for i, (name, t, box_rows) in enumerate((("q", q, kern["block_m"]), ("k", k, kern["block_n"]), ("v", v, kern["block_n"]))):
        t = _tma_operand(name, t)
        status = _tma_encode_map(maps.ctypes.data + i * _TMA_MAP_BYTES, t, box_rows)
        if status != 0 and not t.is_contiguous():
            t = _tma_copy(name, t, f"the driver maps no tensor of this layout (CUresult {status})")
            status = _tma_encode_map(maps.ctypes.data + i * _TMA_MAP_BYTES, t, box_rows)
        if status != 0:
            raise RuntimeError(f"cuTensorMapEncodeTiled refused {name} (shape {tuple(t.shape)}, strides {t.stride()}): CUresult {status}")
        described.append(t)
    return maps.view(np.dtype((np.void, 3 * _TMA_MAP_BYTES))), described


def _tables(tables, B, Hq, Lq, Lkv, device):
    """The four tables to launch with: dense ones for no mask, zero full tables when only partial ones are given."""
    if all(t is None for t in tables):
        return dense_block_mask(Lq, Lkv, device)
    kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices = _check_block_tables(tables, B, Hq, Lq, device)
    if full_kv_num_blocks is None:
        full_kv_num_blocks, full_kv_indices = torch.zeros_like(kv_num_blocks), torch.zeros_like(kv_indices)
    return kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices


class _Call:
    """One checked call: launch(name, out, lse) runs one of KERNELS on it; result() is what flex_attention returns."""

    def __init__(self, q, k, v, out, lse, return_lse):
        self.q, self.k, self.v, self.out, self.lse, self.return_lse = q, k, v, out, lse, return_lse
        self.tables, self.bufs, self.scale, self.q_offset, self.kv_offset = None, (), 1.0, 0, 0
        self.B, self.Hq, self.Lq = q.shape[0], q.shape[1], q.shape[2]
        self.Hkv, self.Lkv = k.shape[1], k.shape[2]

    def result(self):
        return (self.out, self.lse) if self.return_lse else self.out

    def launch(self, name, out=None, lse=None):
        import cupy
        kern = KERNELS[name]
        q, k, v = self.q, self.k, self.v
        out = self.out if out is None else out
        lse = self.lse if lse is None else lse
        kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices = self.tables
${bufLocals}
        B, Hq, Hkv, Lq, Lkv = self.B, self.Hq, self.Hkv, self.Lq, self.Lkv
        Bm, Hm, QB, KVB = kv_indices.shape
        scale, q_offset, kv_offset = self.scale, self.q_offset, self.kv_offset
        fn = _kernel(q.device, name)
        # TMA kernels read q, k and v through tensor maps (of copies where a map cannot describe the caller's layout).
        maps, keep_alive = _tma_maps(kern, q, k, v) if kern["tma"] else (None, ())  # noqa: F841 (held past the launch)
        extra = (maps,) if kern["tma"] else ()
        with cupy.cuda.ExternalStream(torch.cuda.current_stream(q.device).cuda_stream):
            fn(((Lq + kern["block_m"] - 1) // kern["block_m"], Hq, B), (kern["threads"],), (
                ${launchArgs(spec, pyNames)},
                *extra,
            ), shared_mem=kern["smem"])


def _prepare(q, k, v, tables, buffers, scale, return_lse, q_offset, kv_offset, out):
    """Check a call's arguments (ValueErrors that name the bad one) and gather them into a _Call; an empty problem
    gets its (trivial) output here and tables None."""
    _check_tensor("q", q, DTYPE, 4)
    device = q.device
    if device.type != "cuda":
        _fail(f"q is on {device}; this CUDA kernel needs CUDA tensors")
    B, Hq, Lq, Hkv, Lkv = _check_qkv(q, k, v)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if max(t.stride()[:3]) >= 2 ** 31:
            _fail(f"{name} has strides {t.stride()}; the kernel takes 32-bit strides")
    if B > 65535 or Hq > 65535:
        _fail(f"batch ({B}) and query heads ({Hq}) must each be at most 65535 (CUDA grid limit)")
    scale = _check_scalars(scale, q_offset, kv_offset)
    bufs = tuple(_check_buffer(spec[0], buffers.get(spec[0]), spec, device) for spec in BUFFERS)
    out = _output(out, B, Hq, Lq, device)
    if return_lse and not RETURN_LSE_DEFAULT:
        _fail("this kernel was generated without the LSE output; generate it with returnLse to get one")
    # A kernel generated with the LSE output always writes it.
    lse = torch.empty((B, Hq, Lq), dtype=torch.float32, device=device) if RETURN_LSE_DEFAULT else out.new_empty((1,), dtype=torch.float32)
    call = _Call(q, k, v, out, lse, return_lse)
    if _trivial(call):
        return call
    call.tables = _tables(tables, B, Hq, Lq, Lkv, device)
    call.bufs, call.scale, call.q_offset, call.kv_offset = bufs, scale, int(q_offset), int(kv_offset)
    return call


def _timer(call):
    """How the tuner times a config on the call's tensors: CUDA events around repeated launches into scratch
    outputs (tuning never writes the caller's out); the median of 5 groups of 10, in ms per launch."""
    scratch = []

    def bench(c):
        if not scratch:
            scratch.extend((torch.empty_like(call.out), torch.empty_like(call.lse)))
        run = lambda: call.launch(c["name"], *scratch)  # noqa: E731
        run()
        torch.cuda.synchronize(call.q.device)
        groups = []
        for _ in range(5):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                run()
            end.record()
            end.synchronize()
            groups.append(start.elapsed_time(end) / 10)
        return sorted(groups)[2]

    return bench


def _launch_resolved(call, config, autotune):
    """Launch the call with the kernel resolve_config picks; one this GPU cannot run (wgmma on a GPU other than
    compute capability 9.0) gives way to the first of CANDIDATES that runs (launch_resolved)."""
    device = _device_name(call.q.device)
    picked, source = resolve_config(device, problem_bucket(call.Lq, call.Lkv, call.B * call.Hq), config, autotune,
                                    _timer(call))
    launch_resolved(device, picked, source, lambda c: call.launch(c["name"]), lambda e: isinstance(e, _CannotRun))


def flex_attention(q, k, v, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None, full_kv_indices=None,
                   ${kw}scale=None, return_lse=RETURN_LSE_DEFAULT, q_offset=0, kv_offset=0, out=None, config=None,
                   autotune=None):
    """FlexAttention forward with this module's mods.

${PYTHON_FLEX_ATTENTION_ARGS}
    The kernel (one of KERNELS) is, in this order: config= (its name) when given; the tuning cache's pick for this
    GPU and problem bucket (see tune()); a pick tuned now when autotune=True or FLEXATTN_AUTOTUNE=1 (printed to
    stderr, then cached on disk); CONFIG. last_config() says which.
    """
    call = _prepare(q, k, v, (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices), {${bufDict}}, scale,
                    return_lse, q_offset, kv_offset, out)
    if call.tables is not None:
        _launch_resolved(call, config, autotune)
    return call.result()


def tune(q, k, v, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None, full_kv_indices=None, **kwargs):
    """Tune ahead of time: time every kernel on these arguments (as flex_attention takes them: captured buffers,
    scale, q_offset, kv_offset, return_lse as keywords), record the fastest in the tuning cache for this GPU and
    problem bucket (later calls use it) and return it. export_tuning / load_tuning carry picks to other machines."""
    call = _tune_call(q, k, v, (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices), kwargs)
    device = _device_name(call.q.device)
    return resolve_config(device, problem_bucket(call.Lq, call.Lkv, call.B * call.Hq), None, _FORCE, _timer(call))[0]
`;
}
