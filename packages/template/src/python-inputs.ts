/**
 * The argument checks of a generated Python module's `flex_attention(q, k, v, kv_num_blocks,
 * kv_indices, full_kv_num_blocks, full_kv_indices, *, <buffers>, scale, …, out)`, one text for
 * every backend that emits such a module (Triton, CUDA): the signature is the kernel ABI's, so the
 * ways a PyTorch caller can get it wrong, and the ValueErrors that say what to change, are too.
 * Also the plumbing both modules' tuning needs: the device name picks are filed under, and the
 * arguments of tune().
 *
 * Reads the module globals DTYPE, QK_HEAD_DIM, V_HEAD_DIM, SPARSE_BLOCK, BUFFERS and
 * RETURN_LSE_DEFAULT and (for tune) the module's _prepare; needs `math` and `torch`.
 */
/** The arguments paragraph of a generated module's flex_attention docstring (4-space indent, newline-terminated). */
export const PYTHON_FLEX_ATTENTION_ARGS = `    q: [B, Hq, Lq, QK_HEAD_DIM], k: [B, Hkv, Lkv, QK_HEAD_DIM], v: [B, Hkv, Lkv, V_HEAD_DIM], all DTYPE on
    one CUDA device, any strides with a unit stride in the head dimension (Hq % Hkv == 0: GQA).
    Block-mask tables (int32, PyTorch BlockMask layout, block size SPARSE_BLOCK): kv_num_blocks
    [Bm, Hm, QB], kv_indices [Bm, Hm, QB, KVB] (partial blocks, mask applied) and optionally the full
    ones; all None means no mask. Captured buffers are keyword arguments (see BUFFERS).
    scale defaults to 1/sqrt(QK_HEAD_DIM); q_offset / kv_offset are added to the positions the mods see.
    Returns out [B, Hq, Lq, V_HEAD_DIM] (contiguous unless given), and the natural-log LSE [B, Hq, Lq]
    (f32, -inf for fully masked rows, whose output is 0) when return_lse.
`;

export function pythonInputChecks(): string {
  return `
def _fail(msg):
    raise ValueError(msg)


def _cdiv(a, b):
    return -(-a // b)


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


def _check_qkv(q, k, v):
    """q, k and v against the kernel's dtype and head dims and each other (batch, GQA, unit head stride), after
    _check_tensor("q", ...) fixed the device; returns (B, Hq, Lq, Hkv, Lkv)."""
    device = q.device
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
    return B, Hq, Lq, Hkv, Lkv


def _check_scalars(scale, q_offset, kv_offset):
    """The scale to use (None: 1/sqrt(QK_HEAD_DIM)) after checking it and the two position offsets."""
    if scale is None:
        scale = 1.0 / math.sqrt(QK_HEAD_DIM)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale):
        _fail(f"scale must be a finite number or None, got {scale!r}")
    for name, off in (("q_offset", q_offset), ("kv_offset", kv_offset)):
        if not isinstance(off, int) or isinstance(off, bool) or off < 0 or off > 2 ** 30:
            _fail(f"{name} must be an int in [0, 2**30], got {off!r}")
    return float(scale)


def _output(out, B, Hq, Lq, device):
    """out= checked, or a new output tensor."""
    if out is None:
        return torch.empty((B, Hq, Lq, V_HEAD_DIM), dtype=DTYPE, device=device)
    _check_tensor("out", out, DTYPE, 4, device)
    if tuple(out.shape) != (B, Hq, Lq, V_HEAD_DIM):
        _fail(f"out must have shape {(B, Hq, Lq, V_HEAD_DIM)}, got {tuple(out.shape)}")
    if V_HEAD_DIM > 1 and out.stride(3) != 1:
        _fail("out must have stride 1 in the head dimension")
    return out


_device_names = {}


def _device_name(device):
    """The name tuned picks are filed under: torch.cuda.get_device_name (e.g. "NVIDIA H100 80GB HBM3")."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _device_names:
        _device_names[index] = torch.cuda.get_device_name(index)
    return _device_names[index]


def _tune_call(q, k, v, tables, kwargs):
    """tune()'s arguments, as flex_attention takes them (captured buffers, scale, return_lse, q_offset, kv_offset as
    keywords; anything else is refused), checked into the module's _prepare call."""
    buffers = {spec[0]: kwargs.pop(spec[0], None) for spec in BUFFERS}
    args = {key: kwargs.pop(key) for key in ("scale", "return_lse", "q_offset", "kv_offset") if key in kwargs}
    if kwargs:
        _fail(f"tune() got unexpected keyword argument(s) {', '.join(sorted(kwargs))}")
    call = _prepare(q, k, v, tables, buffers, args.get("scale"), args.get("return_lse", RETURN_LSE_DEFAULT),
                    args.get("q_offset", 0), args.get("kv_offset", 0), None)
    if call.tables is None:
        _fail("tune() needs a problem with queries and keys (B, Hq, Lq and Lkv all > 0)")
    return call


def _trivial(call):
    """Whether a call has nothing to compute: no query rows (an empty output), or no keys (every row fully masked:
    out 0, LSE -inf, written here). call has B, Hq, Lq, Lkv, out, lse and return_lse."""
    if call.B == 0 or call.Hq == 0 or call.Lq == 0:
        return True
    if call.Lkv == 0:
        call.out.zero_()
        if call.return_lse:
            call.lse.fill_(float("-inf"))
        return True
    return False


def dense_block_mask(q_len, kv_len, device):
    """Block-mask tables with every block full: attention without a mask."""
    qb, kvb = _cdiv(q_len, SPARSE_BLOCK[0]), _cdiv(kv_len, SPARSE_BLOCK[1])
    kv_num_blocks = torch.zeros((1, 1, qb), dtype=torch.int32, device=device)
    kv_indices = torch.zeros((1, 1, qb, kvb), dtype=torch.int32, device=device)
    full_kv_num_blocks = torch.full((1, 1, qb), kvb, dtype=torch.int32, device=device)
    full_kv_indices = torch.arange(kvb, dtype=torch.int32, device=device).expand(1, 1, qb, kvb).contiguous()
    return kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices


def _check_block_tables(tables, B, Hq, Lq, device):
    """The BlockMask tables (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices) of a call with a
    mask, checked against the problem and each other; the full pair may be None (no full blocks)."""
    kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices = tables
    if kv_num_blocks is None or kv_indices is None:
        _fail("kv_num_blocks and kv_indices must be given together (or neither, for no mask)")
    if (full_kv_num_blocks is None) != (full_kv_indices is None):
        _fail("full_kv_num_blocks and full_kv_indices must be given together")
    _check_tensor("kv_num_blocks", kv_num_blocks, torch.int32, 3, device)
    _check_tensor("kv_indices", kv_indices, torch.int32, 4, device)
    Bm, Hm, QB, KVB = kv_indices.shape
    qb = _cdiv(Lq, SPARSE_BLOCK[0])
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
    if full_kv_num_blocks is not None:
        _check_tensor("full_kv_num_blocks", full_kv_num_blocks, torch.int32, 3, device)
        _check_tensor("full_kv_indices", full_kv_indices, torch.int32, 4, device)
        if tuple(full_kv_indices.shape) != (Bm, Hm, QB, KVB) or tuple(full_kv_num_blocks.shape) != (Bm, Hm, QB):
            _fail(f"full_kv_num_blocks / full_kv_indices have shapes {tuple(full_kv_num_blocks.shape)} / "
                  f"{tuple(full_kv_indices.shape)}; expected {(Bm, Hm, QB)} / {(Bm, Hm, QB, KVB)} like the partial tables")
    names = ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices")
    for name, t in zip(names, tables):
        if t is not None and not t.is_contiguous():
            _fail(f"{name} must be contiguous; call .contiguous()")
    return tables
`;
}
