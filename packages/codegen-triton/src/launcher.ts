/**
 * The Python side of the module: constants describing the compiled kernel, argument
 * validation with clear ValueErrors, block-mask helpers and the launcher that PyTorch users call.
 */
import { type KernelSpec, PYTHON_FLEX_ATTENTION_ARGS, pythonInputChecks } from "@flexattn/template";
import { type BufferArg, bufferKeywords } from "./buffers.js";
import type { KernelShape } from "./emitter.js";
import type { TritonOptions } from "./options.js";
import { LOOP_FORMS } from "./emitter.js";
import { pyString } from "./python.js";
import { configConstants } from "./tuning.js";

const TORCH_DTYPE = { f32: "torch.float32", f16: "torch.float16", bf16: "torch.bfloat16" } as const;

/** Module-level constants: what the kernel was generated for. */
export function moduleConstants(spec: KernelSpec, shape: KernelShape, buffers: BufferArg[], hash: string, options: TritonOptions): string[] {
  const bufs = buffers.map((b) => `    (${pyString(b.pyName)}, ${b.dtype === "i32" ? "torch.int32" : "torch.float32"}, (${b.shape.join(", ")},)),`);
  return [
    `SPEC_HASH = ${pyString(hash)}`,
    `DTYPE = ${TORCH_DTYPE[spec.dtype]}`,
    `QK_HEAD_DIM = ${shape.qkDim}`,
    `V_HEAD_DIM = ${shape.vDim}`,
    `SPARSE_BLOCK = (${spec.sparseBlock[0]}, ${spec.sparseBlock[1]})  # BlockMask block size [q, kv]`,
    ...configConstants(spec, options),
    `RETURN_LSE_DEFAULT = ${spec.returnLse ? "True" : "False"}`,
    ...(options.tma
      ? ["TMA = True  # options.tma: tensor-descriptor loads where uses_tma() allows; False forces the pointer path"]
      : []),
    "# Captured buffers (keyword arguments of flex_attention): name, dtype, shape.",
    buffers.length ? "BUFFERS = (" : "BUFFERS = ()",
    ...(buffers.length ? [...bufs, ")"] : []),
  ];
}

/** The kernel's launch arguments after the tensors, in ABI order. */
function scalarArgs(): string {
  return [
    "B, Hq, Hkv, Lq, Lkv,",
    "q.stride(0), q.stride(1), q.stride(2),",
    "k.stride(0), k.stride(1), k.stride(2),",
    "v.stride(0), v.stride(1), v.stride(2),",
    "out.stride(0), out.stride(1), out.stride(2),",
    "Bm, Hm, QB, KVB,",
    "float(scale), int(q_offset), int(kv_offset),",
  ].join("\n                ");
}

/**
 * options.tma: the launch-time choice between the kernel's two paths (constexpr USE_TMA). The
 * tensor-descriptor path runs only where it is exactly as correct as the pointer path; every other
 * launch takes the pointer path, so layout never causes an error or a different answer.
 */
function tmaSource(): string {
  return `

def _tma_alloc(size, alignment, stream):
    return torch.empty(size, dtype=torch.int8, device="cuda")


def _ensure_tma_allocator():
    """In-kernel tensor descriptors live in a global-memory scratch buffer that Triton asks the allocator of
    triton.set_allocator for at launch. Install a torch-backed one unless the caller has set their own."""
    try:
        from triton.runtime import _allocation
        current = _allocation._allocator
        if not callable(current):  # a ContextVar in recent Triton versions
            current = current.get()
        if not isinstance(current, _allocation.NullAllocator):
            return
    except Exception:  # the private API moved: install ours
        pass
    triton.set_allocator(_tma_alloc)


def _tma_layout_ok(t):
    """What a TMA descriptor over t's [len, head dim] slices needs: a 16-byte-aligned base; batch, head and row
    strides of whole multiples of 16 bytes (so every (batch, head) slice starts aligned); unit stride in the head
    dim, a head dim of a whole multiple of 16 bytes and at most 256 elements (one TMA box, padded), and rows that
    do not overlap."""
    es, d = t.element_size(), t.shape[3]
    return (t.data_ptr() % 16 == 0 and t.stride(3) == 1 and (d * es) % 16 == 0 and d <= 256 and t.stride(2) >= d
            and all((s * es) % 16 == 0 for s in t.stride()[:3]))


def _use_tma(q, k, v, out, bm, bn):
    """Whether a launch takes the tensor-descriptor (TMA) path: TMA on, an NVIDIA GPU of compute capability >= 9,
    a Triton with tl.make_tensor_descriptor and triton.set_allocator, tiles of at most 256 rows (one TMA box)
    and TMA-compatible layouts of q, k, v and out (None: the launcher allocates it contiguous, which qualifies
    whenever v does)."""
    if not TMA or _interpret() or q.device.type != "cuda" or torch.version.hip is not None:
        return False
    if not (hasattr(tl, "make_tensor_descriptor") and hasattr(triton, "set_allocator")):
        return False
    if max(bm, bn) > 256 or torch.cuda.get_device_capability(q.device)[0] < 9:
        return False
    return all(_tma_layout_ok(t) for t in ((q, k, v) if out is None else (q, k, v, out)))


def uses_tma(q, k, v, out=None, config=None):
    """Whether flex_attention(q, k, v, out=out) takes the tensor-descriptor (TMA) path with a config (default: the
    config the last call ran with, else CONFIG). Otherwise it runs the pointer path of the same kernel, with the
    same results."""
    c = config or (last_config() or {}).get("config") or CONFIG
    return _use_tma(q, k, v, out, c["BLOCK_M"], c["BLOCK_N"])
`;
}

export function launcherSource(kernelName: string, shape: KernelShape, buffers: BufferArg[], options: TritonOptions): string {
  const kwOnly = bufferKeywords(buffers);
  const bufDict = buffers.map((b) => `${pyString(b.pyName)}: ${b.pyName}`).join(", ");
  return `
${pythonInputChecks()}

def _interpret():
    return os.environ.get("TRITON_INTERPRET") == "1"
${options.tma ? tmaSource() : ""}

def blocks_are_contiguous(num_blocks, indices):
    """True when every row's first num_blocks indices are one ascending run (start, start+1, ...): the kernel then
    walks the row as one kv range (loop_form). Synchronizes with the device unless loop_form has the answer."""
    return loop_form(num_blocks, indices) != LOOP_INDEXED


LOOP_NONE, LOOP_RANGE, LOOP_INDEXED = ${LOOP_FORMS.none}, ${LOOP_FORMS.range}, ${LOOP_FORMS.indexed}  # PARTIAL_LOOP / FULL_LOOP
_loop_forms = {}


def loop_form(num_blocks, indices):
    """How the kernel walks one pair of block tables: LOOP_NONE when no row has a block, LOOP_RANGE when every row's
    blocks are one ascending run, else LOOP_INDEXED. Reading the tables synchronizes with the device, so the answer is
    cached per pair: keyed on data_ptr, shape and _version (an in-place change bumps _version and is read again) and
    held with weak references (a new tensor at a freed one's address is read again)."""
    key = (num_blocks.data_ptr(), indices.data_ptr(), tuple(indices.shape), num_blocks._version, indices._version)
    hit = _loop_forms.get(key)
    if hit is not None and hit[0]() is num_blocks and hit[1]() is indices:
        return hit[2]
    steps = torch.arange(indices.shape[-1], device=indices.device, dtype=torch.int32)
    used = steps < num_blocks[..., None]
    runs = ((indices == indices[..., :1] + steps) | ~used).all()
    any_block, one_run = torch.stack([(num_blocks > 0).any(), runs]).tolist()
    form = LOOP_NONE if not any_block else LOOP_RANGE if one_run else LOOP_INDEXED
    if len(_loop_forms) >= 256:
        _loop_forms.clear()
    _loop_forms[key] = (weakref.ref(num_blocks), weakref.ref(indices), form)
    return form


_dense_tables = {}


def _check_tables(tables, B, Hq, Lq, Lkv, device):
    """The four tables to launch with and the kernel's two loop forms (PARTIAL_LOOP, FULL_LOOP)."""
    if all(t is None for t in tables):
        key = (Lq, Lkv, str(device))  # kept, so a call without a mask allocates nothing
        if key not in _dense_tables:
            _dense_tables[key] = dense_block_mask(Lq, Lkv, device)
        return _dense_tables[key], (LOOP_NONE, LOOP_RANGE)
    kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices = _check_block_tables(tables, B, Hq, Lq, device)
    has_full = full_kv_num_blocks is not None
    if not has_full:  # no full blocks: the kernel drops that loop and never reads these (the partial tables stand in)
        full_kv_num_blocks, full_kv_indices = kv_num_blocks, kv_indices
    forms = (loop_form(kv_num_blocks, kv_indices), loop_form(full_kv_num_blocks, full_kv_indices) if has_full else LOOP_NONE)
    return (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices), forms


class _Call:
    """One checked call: what a launch needs. launch(config, out, lse) runs the kernel with a config (warmup=True
    only compiles it); result() is what flex_attention returns."""

    def __init__(self, q, k, v, out, lse, return_lse, tables=None, forms=None, bufs=(), scale=1.0, q_offset=0,
                 kv_offset=0):
        self.q, self.k, self.v, self.out, self.lse, self.return_lse = q, k, v, out, lse, return_lse
        self.tables, self.forms, self.bufs = tables, forms, bufs
        self.scale, self.q_offset, self.kv_offset = scale, q_offset, kv_offset
        self.B, self.Hq, self.Lq = q.shape[0], q.shape[1], q.shape[2]
        self.Hkv, self.Lkv = k.shape[1], k.shape[2]

    def result(self):
        return (self.out, self.lse) if self.return_lse else self.out

    def launch(self, config, out=None, lse=None, warmup=False):
        q, k, v, tables = self.q, self.k, self.v, self.tables
        out = self.out if out is None else out
        lse = self.lse if lse is None else lse
        B, Hq, Hkv, Lq, Lkv = self.B, self.Hq, self.Hkv, self.Lq, self.Lkv
        Bm, Hm, QB, KVB = tables[1].shape
        scale, q_offset, kv_offset = self.scale, self.q_offset, self.kv_offset
        bm, bn = config["BLOCK_M"], config["BLOCK_N"]${
          options.tma
            ? `
        use_tma = _use_tma(q, k, v, out, bm, bn)
        if use_tma:
            _ensure_tma_allocator()`
            : ""
        }
        grid = (triton.cdiv(Lq, bm), Hq, B)
        kernel = ${kernelName}
        run = (lambda *a, **kw: kernel.warmup(*a, grid=grid, **kw)) if warmup else kernel[grid]
        with torch.cuda.device(q.device) if q.device.type == "cuda" else contextlib.nullcontext():
            run(
                q, k, v, out, lse, *tables, *self.bufs,
                ${scalarArgs()}
                QK_D=QK_HEAD_DIM, QK_D_PAD=${shape.qkDimPad}, V_D=V_HEAD_DIM, V_D_PAD=${shape.vDimPad},
                BLOCK_M=bm, BLOCK_N=bn, SPARSE_Q=SPARSE_BLOCK[0], SPARSE_KV=SPARSE_BLOCK[1],
                TILES_PER_KV_BLOCK=SPARSE_BLOCK[1] // bn,
                EVEN_M=Lq % bm == 0, EVEN_N=Lkv % SPARSE_BLOCK[1] == 0, OUTPUT_LSE=bool(self.return_lse), SCALE_IN_EXP2=scale > 0,
                PARTIAL_LOOP=self.forms[0], FULL_LOOP=self.forms[1],${options.tma ? " USE_TMA=use_tma," : ""}
                num_warps=config["num_warps"], num_stages=config["num_stages"],
            )


def _prepare(q, k, v, tables, buffers, scale, return_lse, q_offset, kv_offset, out):
    """Check a call's arguments (ValueErrors that name the bad one) and gather them into a _Call; an empty problem
    gets its (trivial) output here and tables None."""
    _check_tensor("q", q, DTYPE, 4)
    device = q.device
    if device.type != "cuda" and not _interpret():
        _fail(f"q is on {device}; this Triton kernel needs CUDA tensors (or TRITON_INTERPRET=1)")
    B, Hq, Lq, Hkv, Lkv = _check_qkv(q, k, v)
    scale = _check_scalars(scale, q_offset, kv_offset)
    bufs = tuple(_check_buffer(spec[0], buffers.get(spec[0]), spec, device) for spec in BUFFERS)
    out = _output(out, B, Hq, Lq, device)
    lse = torch.empty((B, Hq, Lq), dtype=torch.float32, device=device) if return_lse else out.new_empty((1,), dtype=torch.float32)
    call = _Call(q, k, v, out, lse, return_lse)
    if _trivial(call):
        return call
    call.tables, call.forms = _check_tables(tables, B, Hq, Lq, Lkv, device)
    call.bufs, call.scale, call.q_offset, call.kv_offset = bufs, scale, int(q_offset), int(kv_offset)
    return call


def _compile_all(call, candidates, out, lse):
    """Compile every candidate first, in parallel threads where this Triton offers triton.AsyncCompileMode:
    compiling, not timing, is most of a tuning's time. A candidate that fails here fails again when timed."""
    mode = getattr(triton, "AsyncCompileMode", None)
    if mode is None or _interpret() or len(candidates) < 2:
        return
    from concurrent.futures import ThreadPoolExecutor
    try:
        with ThreadPoolExecutor(min(16, len(candidates))) as pool, mode(pool):
            for c in candidates:
                with contextlib.suppress(Exception):
                    call.launch(c, out, lse, warmup=True)
    except Exception:  # the async API moved: candidates compile one by one when timed
        pass


def _resolve(call, config, autotune):
    """resolve_config for a call: its device and problem bucket, and how to time a candidate on its tensors (into
    scratch outputs, so tuning never writes the caller's out)."""
    scratch = []

    def bench(c):
        from triton.testing import do_bench
        if not scratch:
            scratch.extend((torch.empty_like(call.out), torch.empty_like(call.lse)))
            _compile_all(call, CANDIDATES, *scratch)
        return do_bench(lambda: call.launch(c, *scratch), warmup=25, rep=100, return_mode="median")

    bucket = problem_bucket(call.Lq, call.Lkv, call.B * call.Hq)
    return resolve_config(_device_name(call.q.device), bucket, config, autotune, bench)


def _out_of_resources(e):
    # By name: the class lives in triton.runtime.errors in current Triton and elsewhere in older ones.
    return type(e).__name__ == "OutOfResources"


def _launch_resolved(call, config, autotune):
    """Launch the call with the config resolve_config picks. A shipped, cached or default pick is a guess made for
    the structure class, not this kernel: one that needs more shared memory or registers than the GPU has (a score
    mod's gathers add shared memory) gives way to the first candidate that runs (launch_resolved)."""
    picked, source = _resolve(call, config, autotune)
    launch_resolved(_device_name(call.q.device), picked, source, call.launch, _out_of_resources)


def flex_attention(q, k, v, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None, full_kv_indices=None,
                   ${kwOnly}scale=None, return_lse=RETURN_LSE_DEFAULT, q_offset=0, kv_offset=0, out=None, config=None,
                   autotune=None):
    """FlexAttention forward with this module's mods.

${PYTHON_FLEX_ATTENTION_ARGS}
    The launch config (BLOCK_M, BLOCK_N, num_warps, num_stages) is, in this order: config= when given; the
    tuning cache's pick for this GPU and problem bucket (see tune()); a pick tuned now when autotune=True or
    FLEXATTN_AUTOTUNE=1 (printed to stderr, then cached on disk); the pick shipped for this GPU; CONFIG.
    last_config() says which. Under autograd (q, k, v or a captured f32 buffer with requires_grad, grad enabled) the
    call records a FlexAttentionFunction: loss.backward() runs the backward kernels (config: resolved like the
    forward's, see tune_backward and last_backward_config; autotune applies to it too) and fills q.grad, k.grad,
    v.grad and the gradients of GRAD_BUFFERS (bitwise deterministic); the LSE is returned without a gradient. How the kernel walks the block tables is read from the tables themselves
    (loop_form, cached while they are unchanged).${
      options.tma
        ? `
    Q, K, V and the output move through tensor descriptors (TMA) where uses_tma(q, k, v, out) holds, else
    through pointers; both paths give the same results.`
        : ""
    }
    """
    tables, buffers = (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices), {${bufDict}}
    if _needs_grad(q, k, v, buffers):
        return _flex_attention_grad(q, k, v, tables, buffers, scale, return_lse, q_offset, kv_offset, out, config, autotune)
    call = _prepare(q, k, v, tables, buffers, scale, return_lse, q_offset, kv_offset, out)
    if call.tables is not None:
        _launch_resolved(call, config, autotune)
    return call.result()


def tune(q, k, v, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None, full_kv_indices=None, **kwargs):
    """Tune ahead of time: time every candidate config on these arguments (as flex_attention takes them: captured
    buffers, scale, q_offset, kv_offset, return_lse as keywords), record the fastest in the tuning cache for this GPU
    and problem bucket (later calls use it) and return it. export_tuning / load_tuning carry picks to other machines."""
    call = _tune_call(q, k, v, (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices), kwargs)
    return _resolve(call, None, _FORCE)[0]
`;
}
