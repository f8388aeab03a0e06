/**
 * The Python side of the module: constants describing the compiled kernel, argument
 * validation with clear ValueErrors, block-mask helpers and the launcher that PyTorch users call.
 */
import type { KernelSpec } from "@flexattn/template";
import type { BufferArg } from "./buffers.js";
import type { KernelShape } from "./emitter.js";
import type { TritonOptions } from "./options.js";
import { pyString } from "./python.js";

const TORCH_DTYPE = { f32: "torch.float32", f16: "torch.float16", bf16: "torch.bfloat16" } as const;

/** Module-level constants: what the kernel was generated for. */
export function moduleConstants(spec: KernelSpec, shape: KernelShape, buffers: BufferArg[], hash: string, options: TritonOptions): string[] {
  const c = spec.config;
  const bufs = buffers.map((b) => `    (${pyString(b.pyName)}, ${b.dtype === "i32" ? "torch.int32" : "torch.float32"}, (${b.shape.join(", ")},)),`);
  return [
    `SPEC_HASH = ${pyString(hash)}`,
    `DTYPE = ${TORCH_DTYPE[spec.dtype]}`,
    `QK_HEAD_DIM = ${shape.qkDim}`,
    `V_HEAD_DIM = ${shape.vDim}`,
    `SPARSE_BLOCK = (${spec.sparseBlock[0]}, ${spec.sparseBlock[1]})  # BlockMask block size [q, kv]`,
    `CONFIG = dict(BLOCK_M=${c.blockM}, BLOCK_N=${c.blockN}, num_warps=${c.numWarps}, num_stages=${c.numStages})`,
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
  ].join("\n            ");
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


def uses_tma(q, k, v, out=None):
    """Whether flex_attention(q, k, v, out=out) takes the tensor-descriptor (TMA) path with the current CONFIG.
    Otherwise it runs the pointer path of the same kernel, with the same results."""
    return _use_tma(q, k, v, out, CONFIG["BLOCK_M"], CONFIG["BLOCK_N"])
`;
}

export function launcherSource(kernelName: string, shape: KernelShape, buffers: BufferArg[], options: TritonOptions): string {
  const bufParams = buffers.map((b) => `${b.pyName}`).join(", ");
  const kwOnly = buffers.length ? `*, ${bufParams}, ` : "*, ";
  const bufChecks = buffers.map((b, i) => `    ${b.pyName} = _check_buffer(${pyString(b.pyName)}, ${b.pyName}, BUFFERS[${i}], q.device)`);
  const bufLaunch = buffers.length ? `\n            ${bufParams},` : "";
  return `
def _fail(msg):
    raise ValueError(msg)


def _interpret():
    return os.environ.get("TRITON_INTERPRET") == "1"


def _check_tensor(name, t, dtype, ndim, device=None):
    if not isinstance(t, torch.Tensor):
        _fail(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        _fail(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.dtype != dtype:
        _fail(f"{name} has dtype {t.dtype}; this kernel was generated for {dtype}")
    if device is not None and t.device != device:
        _fail(f"{name} is on {t.device} but q is on {device}; put every tensor on one device")
    return t


def _check_buffer(name, t, spec, device):
    _, dtype, shape = spec
    if not isinstance(t, torch.Tensor):
        _fail(f"{name} (captured buffer) must be a torch.Tensor of shape {shape}, got {type(t).__name__}")
    if t.dtype != dtype:
        _fail(f"{name} (captured buffer) has dtype {t.dtype}; expected {dtype}")
    if t.device != device:
        _fail(f"{name} (captured buffer) is on {t.device} but q is on {device}")
    if t.numel() != math.prod(shape) or (t.dim() != 1 and tuple(t.shape) != shape):
        _fail(f"{name} (captured buffer) has shape {tuple(t.shape)}; this kernel was generated for shape {shape}")
    if not t.is_contiguous():
        _fail(f"{name} (captured buffer) must be contiguous; call .contiguous()")
    return t
${options.tma ? tmaSource() : ""}

def dense_block_mask(q_len, kv_len, device):
    """Block-mask tables with every block full: attention without a mask."""
    qb, kvb = triton.cdiv(q_len, SPARSE_BLOCK[0]), triton.cdiv(kv_len, SPARSE_BLOCK[1])
    kv_num_blocks = torch.zeros((1, 1, qb), dtype=torch.int32, device=device)
    kv_indices = torch.zeros((1, 1, qb, kvb), dtype=torch.int32, device=device)
    full_kv_num_blocks = torch.full((1, 1, qb), kvb, dtype=torch.int32, device=device)
    full_kv_indices = torch.arange(kvb, dtype=torch.int32, device=device).expand(1, 1, qb, kvb).contiguous()
    return kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices


def blocks_are_contiguous(num_blocks, indices):
    """True when every row's first num_blocks indices are one ascending run (start, start+1, ...).
    Kernels generated with options.contiguous*Blocks rely on it. Synchronizes with the device."""
    steps = torch.arange(indices.shape[-1], device=indices.device, dtype=torch.int32)
    expected = indices[..., :1] + steps
    used = steps < num_blocks[..., None]
    return bool(((indices == expected) | ~used).all())


def _check_tables(tables, B, Hq, Lq, Lkv, device):
    kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices = tables
    if kv_num_blocks is None and kv_indices is None and full_kv_num_blocks is None and full_kv_indices is None:
        return dense_block_mask(Lq, Lkv, device)
    if kv_num_blocks is None or kv_indices is None:
        _fail("kv_num_blocks and kv_indices must be given together (or neither, for no mask)")
    if (full_kv_num_blocks is None) != (full_kv_indices is None):
        _fail("full_kv_num_blocks and full_kv_indices must be given together")
    _check_tensor("kv_num_blocks", kv_num_blocks, torch.int32, 3, device)
    _check_tensor("kv_indices", kv_indices, torch.int32, 4, device)
    Bm, Hm, QB, KVB = kv_indices.shape
    qb = triton.cdiv(Lq, SPARSE_BLOCK[0])
    if Bm not in (1, B):
        _fail(f"kv_indices has {Bm} batch entries; expected 1 (broadcast) or the batch size {B}")
    if Hm not in (1, Hq):
        _fail(f"kv_indices has {Hm} head entries; expected 1 (broadcast) or the query head count {Hq}")
    if QB != qb:
        _fail(f"kv_indices has {QB} query-block rows; q_len {Lq} with block size {SPARSE_BLOCK[0]} needs {qb} "
              f"(was the block mask built for other lengths or another BLOCK_SIZE? this kernel uses {SPARSE_BLOCK})")
    if KVB < 1:
        _fail("kv_indices must have at least one column")
    if tuple(kv_num_blocks.shape) != (Bm, Hm, QB):
        _fail(f"kv_num_blocks has shape {tuple(kv_num_blocks.shape)}; expected {(Bm, Hm, QB)} to match kv_indices")
    if full_kv_num_blocks is None:
        full_kv_num_blocks = torch.zeros_like(kv_num_blocks)
        full_kv_indices = torch.zeros_like(kv_indices)
    _check_tensor("full_kv_num_blocks", full_kv_num_blocks, torch.int32, 3, device)
    _check_tensor("full_kv_indices", full_kv_indices, torch.int32, 4, device)
    if tuple(full_kv_indices.shape) != (Bm, Hm, QB, KVB) or tuple(full_kv_num_blocks.shape) != (Bm, Hm, QB):
        _fail(f"full_kv_num_blocks / full_kv_indices have shapes {tuple(full_kv_num_blocks.shape)} / "
              f"{tuple(full_kv_indices.shape)}; expected {(Bm, Hm, QB)} / {(Bm, Hm, QB, KVB)} like the partial tables")
    tables = (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices)
    names = ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices")
    for name, t in zip(names, tables):
        if not t.is_contiguous():
            _fail(f"{name} must be contiguous; call .contiguous()")
    return tables


def flex_attention(q, k, v, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None, full_kv_indices=None,
                   ${kwOnly}scale=None, return_lse=RETURN_LSE_DEFAULT, q_offset=0, kv_offset=0, out=None):
    """FlexAttention forward with this module's mods.

    q: [B, Hq, Lq, QK_HEAD_DIM], k: [B, Hkv, Lkv, QK_HEAD_DIM], v: [B, Hkv, Lkv, V_HEAD_DIM], all DTYPE on
    one CUDA device, any strides with a unit stride in the head dimension (Hq % Hkv == 0: GQA).
    Block-mask tables (int32, PyTorch BlockMask layout, block size SPARSE_BLOCK): kv_num_blocks
    [Bm, Hm, QB], kv_indices [Bm, Hm, QB, KVB] (partial blocks, mask applied) and optionally the full
    ones; all None means no mask. Captured buffers are keyword arguments (see BUFFERS).
    scale defaults to 1/sqrt(QK_HEAD_DIM); q_offset / kv_offset are added to the positions the mods see.
    Returns out [B, Hq, Lq, V_HEAD_DIM] (contiguous), and the natural-log LSE [B, Hq, Lq] (f32, -inf for
    fully masked rows, whose output is 0) when return_lse.${
      options.tma
        ? `
    Q, K, V and the output move through tensor descriptors (TMA) where uses_tma(q, k, v, out) holds, else
    through pointers; both paths give the same results.`
        : ""
    }
    """
    _check_tensor("q", q, DTYPE, 4)
    device = q.device
    if device.type != "cuda" and not _interpret():
        _fail(f"q is on {device}; this Triton kernel needs CUDA tensors (or TRITON_INTERPRET=1)")
    _check_tensor("k", k, DTYPE, 4, device)
    _check_tensor("v", v, DTYPE, 4, device)
    B, Hq, Lq, Dqk = q.shape
    Hkv, Lkv = k.shape[1], k.shape[2]
    if Dqk != QK_HEAD_DIM or k.shape[3] != QK_HEAD_DIM:
        _fail(f"q and k must have head dim {QK_HEAD_DIM} (the generated kernel's), got q {tuple(q.shape)}, k {tuple(k.shape)}")
    if v.shape[3] != V_HEAD_DIM:
        _fail(f"v must have head dim {V_HEAD_DIM} (the generated kernel's), got {tuple(v.shape)}")
    if k.shape[0] != B or v.shape[0] != B:
        _fail(f"q, k and v must share the batch size: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if tuple(v.shape[1:3]) != (Hkv, Lkv):
        _fail(f"k and v must share heads and length: k {tuple(k.shape)}, v {tuple(v.shape)}")
    if Hkv == 0 or Hq % Hkv != 0:
        _fail(f"q heads ({Hq}) must be a multiple of k/v heads ({Hkv}) for grouped-query attention")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.shape[3] > 1 and t.stride(3) != 1:
            _fail(f"{name} must have stride 1 in the head dimension (got strides {t.stride()}); call .contiguous()")
    if scale is None:
        scale = 1.0 / math.sqrt(QK_HEAD_DIM)
    if not isinstance(scale, (int, float)) or not math.isfinite(scale):
        _fail(f"scale must be a finite number or None, got {scale!r}")
    for name, off in (("q_offset", q_offset), ("kv_offset", kv_offset)):
        if not isinstance(off, int) or isinstance(off, bool) or off < 0 or off > 2 ** 30:
            _fail(f"{name} must be an int in [0, 2**30], got {off!r}")
${bufChecks.join("\n")}
    if out is None:
        out = torch.empty((B, Hq, Lq, V_HEAD_DIM), dtype=DTYPE, device=device)
    else:
        _check_tensor("out", out, DTYPE, 4, device)
        if tuple(out.shape) != (B, Hq, Lq, V_HEAD_DIM):
            _fail(f"out must have shape {(B, Hq, Lq, V_HEAD_DIM)}, got {tuple(out.shape)}")
        if V_HEAD_DIM > 1 and out.stride(3) != 1:
            _fail("out must have stride 1 in the head dimension")
    lse = torch.empty((B, Hq, Lq), dtype=torch.float32, device=device) if return_lse else out.new_empty((1,), dtype=torch.float32)
    if B == 0 or Hq == 0 or Lq == 0:
        return (out, lse) if return_lse else out
    if Lkv == 0:  # nothing to attend to: every row is fully masked
        out.zero_()
        if return_lse:
            lse.fill_(float("-inf"))
        return (out, lse) if return_lse else out
    tables = _check_tables((kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices), B, Hq, Lq, Lkv, device)
    Bm, Hm, QB, KVB = tables[1].shape
    bm, bn = CONFIG["BLOCK_M"], CONFIG["BLOCK_N"]${
      options.tma
        ? `
    use_tma = _use_tma(q, k, v, out, bm, bn)
    if use_tma:
        _ensure_tma_allocator()`
        : ""
    }
    grid = (triton.cdiv(Lq, bm), Hq, B)
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        ${kernelName}[grid](
            q, k, v, out, lse, *tables,${bufLaunch}
            ${scalarArgs()}
            QK_D=QK_HEAD_DIM, QK_D_PAD=${shape.qkDimPad}, V_D=V_HEAD_DIM, V_D_PAD=${shape.vDimPad},
            BLOCK_M=bm, BLOCK_N=bn, SPARSE_Q=SPARSE_BLOCK[0], SPARSE_KV=SPARSE_BLOCK[1],
            TILES_PER_KV_BLOCK=SPARSE_BLOCK[1] // bn,
            EVEN_M=Lq % bm == 0, EVEN_N=Lkv % SPARSE_BLOCK[1] == 0, OUTPUT_LSE=bool(return_lse),${options.tma ? " USE_TMA=use_tma," : ""}
            num_warps=CONFIG["num_warps"], num_stages=CONFIG["num_stages"],
        )
    return (out, lse) if return_lse else out
`;
}
