/**
 * The backward half of the generated module: the four backward kernels rendered from the
 * template's backward steps (TritonBackwardEmitter), their configs, and the Python that runs
 * them from a `torch.autograd.Function` so `flex_attention(...)` trains under `loss.backward()`.
 *
 * The q-direction tables (q_num_blocks / q_indices and the full pair, PyTorch's BlockMask
 * convention) are computed by the module from the kv tables on the device, once per table pair:
 * cached like loop_form, keyed on the tables' identity and _version.
 */
import { FlexAttnError, diagonalEntry } from "@flexattn/ir";
import { type BackwardMods, type KernelSpec, backwardAbi, backwardMods, emitBackward, modTraits } from "@flexattn/template";
import { bufferArgs, bufferKeywords } from "./buffers.js";
import { type BackwardKernel, DIAGONAL_SWITCH, TritonBackwardEmitter, gradFlag, partialName } from "./backward-emitter.js";
import { SCALE_IN_EXP2, kernelShape } from "./emitter.js";
import type { TritonOptions } from "./options.js";
import { indent, pyString } from "./python.js";
import type { HelperName } from "./runtime.js";

/** The Python names of the backward's jit functions in the generated module (dkdv and dq are called by `main`). */
export const BACKWARD_KERNELS: Record<BackwardKernel | "main", string> = {
  preprocess: "_flexattn_bwd_preprocess",
  dkdv: "_flexattn_bwd_dkdv",
  dq: "_flexattn_bwd_dq",
  main: "_flexattn_bwd",
  reduce: "_flexattn_bwd_reduce",
};

/** A backward config: dkdv tiles (M1 × N1), dq tiles (M2 × N2), warps and stages of both. */
export interface BackwardConfig {
  blockM1: number;
  blockN1: number;
  blockM2: number;
  blockN2: number;
  numWarps: number;
  numStages: number;
}

const bwd = (blockM1: number, blockN1: number, blockM2: number, blockN2: number, numWarps: number, numStages: number): BackwardConfig =>
  ({ blockM1, blockN1, blockM2, blockN2, numWarps, numStages });

/** Configs worth timing for any spec; backwardCandidates puts the spec's default first. */
export const BACKWARD_CANDIDATES: readonly BackwardConfig[] = [
  bwd(64, 128, 128, 64, 8, 3),
  bwd(64, 64, 64, 64, 4, 3),
  bwd(64, 64, 64, 64, 8, 3),
  bwd(32, 128, 128, 32, 8, 3),
  bwd(32, 64, 64, 32, 4, 3),
  bwd(32, 32, 32, 32, 4, 2),
];

/**
 * The shipped default, by what sets the register budget: the dK/dV program keeps K, V and two
 * f32 [BLOCK_N1, d] accumulators in registers. At padded head dim 128 and up, 64 × 128 dK/dV
 * tiles and 128 × 64 dQ tiles on 8 warps (the split PyTorch's flex backward uses on Hopper); at
 * 64 and below, 64 × 64 tiles on 4 warps; f32 (twice the bytes, IEEE dots) 32 × 32. A
 * transcendental score mod recomputes its value and derivative per score element in both
 * programs, which adds live registers per element: at d ≥ 128 its tiles hold half the scores
 * (32 × 128 dK/dV, 128 × 32 dQ). A mask that reads a buffer (document ids) leaves short runs of
 * blocks per row and column: smaller programs on 4 warps (32 × 64, 64 × 32) spread them over
 * more SMs. Without either, those smaller tiles are the slower choice, except with a buffer
 * gradient summed along the tiles' diagonals (a relative-position table): there the smaller
 * programs are the faster choice at head dims 64 and 128 alike.
 */
export function backwardDefault(spec: KernelSpec): BackwardConfig {
  if (spec.dtype === "f32") return bwd(32, 32, 32, 32, 4, 2);
  if (hasDiagonalGradient(spec)) return bwd(32, 64, 64, 32, 4, 3);
  if (kernelShape(spec).qkDimPad < 128) return bwd(64, 64, 64, 64, 4, 3);
  const { transcendental, dataDependent } = modTraits(spec);
  if (transcendental) return bwd(32, 128, 128, 32, 8, 3);
  return dataDependent ? bwd(32, 64, 64, 32, 4, 3) : bwd(64, 128, 128, 64, 8, 3);
}

/** Whether a captured buffer's gradient has a site the backward sums along diagonals (diagonalEntry). */
function hasDiagonalGradient(spec: KernelSpec): boolean {
  const gradient = moduleBackwardMods(spec).mods?.gradient;
  return gradient?.buffers.some((b) => b.sites.some((site) => diagonalEntry(site.offset) !== undefined)) ?? false;
}

/** The spec's default first, then the other candidates. */
export function backwardCandidates(spec: KernelSpec): BackwardConfig[] {
  const key = (c: BackwardConfig) => JSON.stringify(c);
  const all = [backwardDefault(spec), ...BACKWARD_CANDIDATES];
  return all.filter((c, i) => all.findIndex((d) => key(d) === key(c)) === i);
}

const pyBwdConfig = (c: BackwardConfig) =>
  `dict(BLOCK_M1=${c.blockM1}, BLOCK_N1=${c.blockN1}, BLOCK_M2=${c.blockM2}, BLOCK_N2=${c.blockN2}, num_warps=${c.numWarps}, num_stages=${c.numStages})`;

/** The score mod's derivatives, or why this module has no backward. */
export function moduleBackwardMods(spec: KernelSpec): { mods: BackwardMods | null; unavailable: string | null } {
  try {
    return { mods: backwardMods(spec.score), unavailable: null };
  } catch (e) {
    if (e instanceof FlexAttnError) return { mods: null, unavailable: e.message };
    throw e;
  }
}

/** Names of the dkdv/dq kernels' parameters: the template's backward ABI, with Python names. */
function backwardParams(spec: KernelSpec, mods: BackwardMods): string[] {
  const buffers = new Map(bufferArgs(spec).map((b) => [b.abiName, b.pyName]));
  const grads = new Map(mods.gradBuffers.map((g) => [`d_score_${g.name}`, g.slot]));
  const scoreNames = new Map(bufferArgs(spec).filter((b) => b.owner === "score").map((b) => [b.slot, b.pyName]));
  const names: string[] = [];
  for (const a of backwardAbi(spec, mods)) {
    if (a.role === "captured") names.push(buffers.get(a.name) ?? a.name);
    // A buffer's gradient arrives as per-program partial sums; the reduce kernel writes the gradient.
    else if (grads.has(a.name)) names.push(partialName(scoreNames.get(grads.get(a.name)!)!));
    else names.push(a.name);
    if (a.name === "lse") names.push("delta");
  }
  return names;
}

/** Constexprs both passes take under one name. */
const SHARED_CONSTEXPRS = ["QK_D", "QK_D_PAD", "V_D", "V_D_PAD", "SPARSE_Q", "SPARSE_KV", SCALE_IN_EXP2];
/** Constexprs each pass sets for itself: the main kernel takes them with the pass's suffix (1: dkdv, 2: dq). */
const PASS_CONSTEXPRS = ["BLOCK_M", "BLOCK_N", "EVEN_M", "EVEN_N", "PARTIAL_LOOP", "FULL_LOOP"];

/**
 * The backward's one launch: dkdv programs (kv tiles) first in the grid, then dq programs (q
 * tiles × the heads of the kv head's group, the late, heavy query tiles first when the options
 * say so), so the two passes share the GPU instead of the dq pass waiting for the dkdv pass's
 * tail. One config (warps, stages) serves both; each pass keeps its own tiles, bounds and loop forms.
 */
function mainKernelBody(params: string[], gradFlags: string[], options: TritonOptions): string[] {
  const pass = (suffix: string) => [
    ...SHARED_CONSTEXPRS.map((c) => `${c}=${c}`),
    ...PASS_CONSTEXPRS.map((c) => `${c}=${c}${suffix}`),
    `TILES_PER_Q_BLOCK=SPARSE_Q // BLOCK_M${suffix}`,
    `TILES_PER_KV_BLOCK=SPARSE_KV // BLOCK_N${suffix}`,
  ].join(", ");
  const args = params.join(", ");
  return [
    "pid = tl.program_id(0)",
    "off_hkv = tl.program_id(1)",
    "off_b = tl.program_id(2)",
    "if pid < n_kv_tiles:",
    `    ${BACKWARD_KERNELS.dkdv}(${args}, pid, off_hkv, off_b, n_kv_tiles, ${pass("1")}${gradFlags.map((f) => `, ${f}=${f}`).join("")})`,
    "else:",
    "    group = q_heads // kv_heads",
    "    pid_q = pid - n_kv_tiles",
    options.reverseQBlocks
      ? "    pid_m = n_q_tiles - 1 - pid_q // group  # heavy (late) query tiles first, as in the forward"
      : "    pid_m = pid_q // group",
    `    ${BACKWARD_KERNELS.dq}(${args}, pid_m, off_hkv * group + pid_q % group, off_b, ${pass("2")})`,
  ];
}

const jit = (name: string, params: string[], body: string[]) => [
  "@triton.jit",
  `def ${name}(`,
  ...indent(params.map((p) => `${p},`)),
  "):",
  ...indent(body),
  "",
];

export interface BackwardSource {
  /** Module constants (backward configs, the gradient buffers, BACKWARD_UNAVAILABLE). */
  constants: string[];
  /** The @triton.jit kernels (empty when unavailable). */
  kernels: string[];
  /** The launcher and autograd Function. */
  launcher: string;
  helpers: Set<HelperName>;
}

/** The backward half of a spec's module: constants, kernels (rendered via emitBackward) and launcher. */
export function backwardSource(spec: KernelSpec, options: TritonOptions): BackwardSource {
  const { mods, unavailable } = moduleBackwardMods(spec);
  const args = bufferArgs(spec);
  const scoreName = (slot: number) => args.find((b) => b.owner === "score" && b.slot === slot)!.pyName;
  const gradBuffers = (mods?.gradBuffers ?? []).map((g) => ({ pyName: scoreName(g.slot), size: g.size }));
  const diagonal = hasDiagonalGradient(spec);
  const constants = [
    "# Backward (see flex_attention): configs of its dkdv (M1 x N1 tiles) and dq (M2 x N2) kernels, the default first.",
    `BWD_CONFIG = ${pyBwdConfig(backwardDefault(spec))}`,
    "BWD_CANDIDATES = (",
    ...backwardCandidates(spec).map((c) => `    ${pyBwdConfig(c)},`),
    ")",
    "# Captured f32 buffers of the score mod that receive a gradient: name, number of entries.",
    `GRAD_BUFFERS = (${gradBuffers.map((g) => `(${pyString(g.pyName)}, ${g.size}), `).join("")})`,
    `MASK_BUFFERS = (${args.filter((b) => b.owner === "mask").map((b) => `${pyString(b.pyName)}, `).join("")})  # no gradient: a mask only selects keys`,
    `BACKWARD_UNAVAILABLE = ${unavailable === null ? "None" : pyString(unavailable)}  # why this module cannot differentiate, if it cannot`,
    ...(diagonal
      ? [`${DIAGONAL_SWITCH.module} = hasattr(tl, "gather")  # Triton 3.3+: a q − kv table's gradient summed along tile diagonals; older ones add it entry by entry`]
      : []),
  ];
  if (!mods) return { constants, kernels: [], launcher: backwardLauncher(spec, [], gradBuffers, false), helpers: new Set() };
  const emitter = new TritonBackwardEmitter(spec, mods, options);
  const parts: Record<BackwardKernel, string[]> = { preprocess: [], dkdv: [], dq: [], reduce: [] };
  for (const code of emitBackward(spec, emitter, mods)) parts[code.kernel!].push(...code.lines);
  const params = backwardParams(spec, mods);
  const constexpr = (names: string[]) => names.map((c) => `${c}: tl.constexpr`);
  const passConstexprs = constexpr([...SHARED_CONSTEXPRS, ...PASS_CONSTEXPRS, "TILES_PER_Q_BLOCK", "TILES_PER_KV_BLOCK"]);
  const gradFlags = [...gradBuffers.map((_, k) => gradFlag(k)), ...(diagonal ? [DIAGONAL_SWITCH.kernel] : [])];
  const kernels = [
    ...jit(BACKWARD_KERNELS.preprocess, [
      "out", "dout", "delta", "q_heads", "q_len", "stride_out_b", "stride_out_h", "stride_out_s",
      "stride_dout_b", "stride_dout_h", "stride_dout_s", ...constexpr(["V_D", "V_D_PAD", "BLOCK_M", "EVEN_M"]),
    ], parts.preprocess),
    ...jit(BACKWARD_KERNELS.dkdv, [...params, "pid_n", "off_hkv", "off_b", "n_kv_tiles", ...passConstexprs, ...constexpr(gradFlags)], parts.dkdv),
    ...jit(BACKWARD_KERNELS.dq, [...params, "pid_m", "off_h", "off_b", ...passConstexprs], parts.dq),
    ...jit(BACKWARD_KERNELS.main, [
      ...params, "n_kv_tiles", "n_q_tiles",
      ...constexpr([...SHARED_CONSTEXPRS, ...["1", "2"].flatMap((n) => PASS_CONSTEXPRS.map((c) => c + n)), ...gradFlags]),
    ], mainKernelBody(params, gradFlags, options)),
    ...(gradBuffers.length
      ? jit(BACKWARD_KERNELS.reduce, ["partials", "grad", "n_programs", ...constexpr(["SIZE", "BLOCK"])], parts.reduce)
      : []),
  ];
  return { constants, kernels, launcher: backwardLauncher(spec, params, gradBuffers, diagonal), helpers: emitter.helpers };
}

/** Python: q-direction tables, the backward launches and the autograd Function. */
function backwardLauncher(spec: KernelSpec, params: string[], gradBuffers: { pyName: string; size: number }[], diagonal: boolean): string {
  const shape = kernelShape(spec);
  const available = params.length > 0;
  const strided = ["q", "k", "v", "out", "dout", "dq", "dk", "dv"];
  const launchBody = available
    ? `
    q, k, v, out, lse = call.q, call.k, call.v, call.out, call.lse
    batch, q_heads, kv_heads, q_len, kv_len = call.B, call.Hq, call.Hkv, call.Lq, call.Lkv
    kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices = call.tables
    q_num_blocks, q_indices, full_q_num_blocks, full_q_indices = q_tables(call.tables)
    sparse_b, sparse_h, sparse_q_blocks, sparse_kv_blocks = kv_indices.shape
    scale, q_offset, kv_offset = call.scale, call.q_offset, call.kv_offset
${bufferUnpack(spec)}
    if dout.stride(3) != 1:
        dout = dout.contiguous()
    dq = torch.empty((batch, q_heads, q_len, QK_HEAD_DIM), dtype=DTYPE, device=q.device)
    dk = torch.empty((batch, kv_heads, kv_len, QK_HEAD_DIM), dtype=DTYPE, device=q.device)
    dv = torch.empty((batch, kv_heads, kv_len, V_HEAD_DIM), dtype=DTYPE, device=q.device)
    delta = torch.empty((batch, q_heads, q_len), dtype=torch.float32, device=q.device)
${strided.map((t) => `    stride_${t}_b, stride_${t}_h, stride_${t}_s = ${t}.stride()[:3]`).join("\n")}
    bm1, bn1 = _fit_tile(c["BLOCK_M1"], SPARSE_BLOCK[0]), _fit_tile(c["BLOCK_N1"], SPARSE_BLOCK[1])
    bm2, bn2 = _fit_tile(c["BLOCK_M2"], SPARSE_BLOCK[0]), _fit_tile(c["BLOCK_N2"], SPARSE_BLOCK[1])
    n_kv_tiles, n_q_tiles = triton.cdiv(kv_len, bn1), triton.cdiv(q_len, bm2)
    n_programs = batch * kv_heads * n_kv_tiles  # dkdv programs: rows of the buffer-gradient workspaces
    need = set(name for name, _ in GRAD_BUFFERS) if need is None else need
    # A buffer nobody differentiates gets neither a workspace nor the kernel's accumulation (GRAD_k off).
${gradBuffers.map((g) => `    ${partialName(g.pyName)} = torch.zeros((n_programs, ${g.size}) if ${pyString(g.pyName)} in need else (1,), dtype=torch.float32, device=q.device)`).join("\n")}
    flags = {${[
      ...gradBuffers.map((g, k) => `"${gradFlag(k)}": ${pyString(g.pyName)} in need`),
      ...(diagonal ? [`"${DIAGONAL_SWITCH.kernel}": ${DIAGONAL_SWITCH.module}`] : []),
    ].join(", ")}}
    # Each pass walks its own tables in the loop forms read from them (the dq pass the kv tables, whose forms the
    # forward read; the dkdv pass the q tables), and drops the row bounds where no tile can cross them.
    q_forms = tuple(loop_form(num, idx) if form != LOOP_NONE else LOOP_NONE
                    for form, num, idx in zip(call.forms, (q_num_blocks, full_q_num_blocks), (q_indices, full_q_indices)))
    args = (${params.join(", ")})
    with torch.cuda.device(q.device) if q.device.type == "cuda" else contextlib.nullcontext():
        ${BACKWARD_KERNELS.preprocess}[(triton.cdiv(q_len, 64), q_heads, batch)](
            out, dout, delta, q_heads, q_len, stride_out_b, stride_out_h, stride_out_s,
            stride_dout_b, stride_dout_h, stride_dout_s, V_D=V_HEAD_DIM, V_D_PAD=${shape.vDimPad}, BLOCK_M=64,
            EVEN_M=q_len % 64 == 0)
        ${BACKWARD_KERNELS.main}[(n_kv_tiles + (q_heads // kv_heads) * n_q_tiles, kv_heads, batch)](
            *args, n_kv_tiles, n_q_tiles, QK_D=QK_HEAD_DIM, QK_D_PAD=${shape.qkDimPad}, V_D=V_HEAD_DIM, V_D_PAD=${shape.vDimPad},
            SPARSE_Q=SPARSE_BLOCK[0], SPARSE_KV=SPARSE_BLOCK[1], ${SCALE_IN_EXP2}=scale > 0,
            BLOCK_M1=bm1, BLOCK_N1=bn1, EVEN_M1=q_len % SPARSE_BLOCK[0] == 0, EVEN_N1=kv_len % bn1 == 0,
            PARTIAL_LOOP1=q_forms[0], FULL_LOOP1=q_forms[1],
            BLOCK_M2=bm2, BLOCK_N2=bn2, EVEN_M2=q_len % bm2 == 0, EVEN_N2=kv_len % SPARSE_BLOCK[1] == 0,
            PARTIAL_LOOP2=call.forms[0], FULL_LOOP2=call.forms[1],
            num_warps=c["num_warps"], num_stages=c["num_stages"], **flags)
        grads = {}
${gradBuffers.map((g) => `        if ${pyString(g.pyName)} in need:
            grads[${pyString(g.pyName)}] = torch.empty((${g.size},), dtype=torch.float32, device=q.device)
            ${BACKWARD_KERNELS.reduce}[(triton.cdiv(${g.size}, 1024),)](${partialName(g.pyName)}, grads[${pyString(g.pyName)}], n_programs, SIZE=${g.size}, BLOCK=1024)`).join("\n")}
    return dq, dk, dv, grads`
    : `
    _fail(f"this module has no backward: {BACKWARD_UNAVAILABLE}")`;
  return `

# ---- backward ----

def _fit_tile(tile, sparse):
    """A backward tile that divides the BlockMask block (at least 16 rows, tl.dot's minimum)."""
    tile = min(tile, sparse)
    while tile > 16 and sparse % tile:
        tile //= 2
    return tile


def transpose_tables(num_blocks, indices):
    """The other direction of one pair of BlockMask tables (PyTorch's convention): kv tables [Bm, Hm, QB] /
    [Bm, Hm, QB, KVB] give q tables [Bm, Hm, KVB] / [Bm, Hm, KVB, QB], each column's q blocks ascending."""
    Bm, Hm, QB, KVB = indices.shape
    steps = torch.arange(KVB, device=indices.device)
    used = steps < num_blocks[..., None]
    dense = torch.zeros((Bm, Hm, QB, KVB + 1), dtype=torch.int32, device=indices.device)
    dense.scatter_(-1, torch.where(used, indices.long(), KVB), 1)
    dense = dense[..., :KVB].transpose(-1, -2)
    q_num = dense.sum(-1, dtype=torch.int32).contiguous()
    q_idx = torch.argsort(dense, dim=-1, descending=True, stable=True).to(torch.int32).contiguous()
    return q_num, q_idx


_q_tables = {}


def q_tables(tables):
    """The q-direction tables (q_num_blocks, q_indices, full_q_num_blocks, full_q_indices) of the four kv tables,
    computed on the device once per table pair: cached like loop_form (data_ptr, shape, _version, weak references)."""
    key = tuple((t.data_ptr(), tuple(t.shape), t._version) for t in tables)
    hit = _q_tables.get(key)
    if hit is not None and all(r() is t for r, t in zip(hit[0], tables)):
        return hit[1]
    value = (*transpose_tables(tables[0], tables[1]), *transpose_tables(tables[2], tables[3]))
    if len(_q_tables) >= 64:
        _q_tables.clear()
    _q_tables[key] = (tuple(weakref.ref(t) for t in tables), value)
    return value


def backward_config(config=None):
    """The backward's config: config= when given (a BWD_CANDIDATES-style dict), else BWD_CONFIG."""
    c = dict(BWD_CONFIG if config is None else config)
    missing = [key for key in BWD_CONFIG if key not in c]
    if missing:
        _fail(f"backward config {config!r} lacks {', '.join(missing)}")
    return c


def _launch_backward(call, dout, config=None, need=None):
    """dq, dk, dv and {buffer name: gradient} of one forward call, for the output gradient dout; the gradients of
    the GRAD_BUFFERS named in need (default: all)."""
    c = backward_config(config)${launchBody}


BACKWARD_ROLE = ":bwd"  # the backward's tuning-cache entries: "<SPEC_HASH>:bwd|<device>|<bucket>"
_last_backward = {}


def backward_config_text(c):
    return f'{c["BLOCK_M1"]}x{c["BLOCK_N1"]}/{c["BLOCK_M2"]}x{c["BLOCK_N2"]} w{c["num_warps"]} s{c["num_stages"]}'


def _backward_role():
    return ConfigRole(BACKWARD_ROLE, backward_config, backward_config_text, BWD_CANDIDATES, BWD_CONFIG, {}, _last_backward,
                      "backward config")


def _resolve_backward(call, dout, need, config=None, autotune=None):
    """The backward's config and where it came from, by the forward's rule (resolve_config): config= ("explicit"),
    else set_backward_config's ("explicit"), else the tuning cache's pick for this GPU and problem bucket ("cache"),
    else, when autotune is on (autotune=True or FLEXATTN_AUTOTUNE=1 at the forward call), every BWD_CANDIDATES timed
    on this call's tensors, the fastest cached ("tuned"), else BWD_CONFIG ("default")."""
    def bench(c):
        from triton.testing import do_bench
        return do_bench(lambda: _launch_backward(call, dout, c, need), warmup=5, rep=40, return_mode="median")

    chosen = config if config is not None else _BACKWARD_CONFIG.get("config")
    bucket = problem_bucket(call.Lq, call.Lkv, call.B * call.Hq)
    return resolve_config(_device_name(call.q.device), bucket, chosen, autotune, bench, _backward_role())


def last_backward_config():
    """The config the last backward ran with: {"config", "source" (explicit, cache, tuned or default), "device",
    "bucket", after tuning "timings", and "fallback" (why) when it could not run and another candidate did}; None
    before the first backward."""
    return dict(_last_backward) if _last_backward else None


def _run_backward(call, dout, need, config=None, autotune=None):
    """_launch_backward with _resolve_backward's config. A cached or default pick is a guess made for another GPU or
    for the head dim: if this GPU cannot fit it (Triton's OutOfResources), the first of BWD_CANDIDATES that fits runs
    instead, remembered for the process and reported once (launch_resolved). A config the caller chose that does
    not fit is a ValueError with the reason."""
    picked, source = _resolve_backward(call, dout, need, config, autotune)
    return launch_resolved(_device_name(call.q.device), picked, source, lambda c: _launch_backward(call, dout, c, need),
                           _out_of_resources, _backward_role())[1]


def tune_backward(q, k, v, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None, full_kv_indices=None, dout=None,
                  **kwargs):
    """Tune the backward ahead of time: run the forward on these arguments (as tune() takes them), then time every
    BWD_CANDIDATES backward for the output gradient dout (default: random normal) and record the fastest in the
    tuning cache for this GPU and problem bucket; later backwards there use it. Buffer gradients are computed for
    the captured buffers that require grad, as under autograd. Returns the pick."""
    if BACKWARD_UNAVAILABLE is not None:
        _fail(f"this module has no backward: {BACKWARD_UNAVAILABLE}")
    call = _tune_call(q, k, v, (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices), {**kwargs, "return_lse": True})
    _launch_resolved(call, None, None)
    if dout is None:
        dout = torch.randn_like(call.out)
    _check_tensor("dout", dout, DTYPE, 4, q.device)
    if tuple(dout.shape) != tuple(call.out.shape):
        _fail(f"dout must be {tuple(call.out.shape)} (the output's shape), got {tuple(dout.shape)}")
    need = {spec[0] for spec, t in zip(BUFFERS, call.bufs) if getattr(t, "requires_grad", False)}
    return _resolve_backward(call, dout, need, autotune=_FORCE)[0]


def _check_grad_buffers(bufs):
    """Refuse a gradient this module cannot produce: an f32 buffer of the mask mod (a mask only selects keys)."""
    grad_names = {name for name, _ in GRAD_BUFFERS}
    for spec, t in zip(BUFFERS, bufs):
        if t.requires_grad and spec[0] not in grad_names and spec[0] in MASK_BUFFERS:
            _fail(f"{spec[0]} (captured buffer of the mask mod) requires grad, but a mask mod has no gradient: "
                  f"call .detach() on it or move it into the score mod")


class FlexAttentionFunction(torch.autograd.Function):
    """flex_attention with gradients for q, k, v and the score mod's captured f32 buffers (GRAD_BUFFERS). Buffer
    gradients are bitwise deterministic: per-program partial sums reduced in a fixed order, no atomics."""

    @staticmethod
    def forward(ctx, call, config, autotune, q, k, v, *bufs):
        if call.tables is not None:
            _launch_resolved(call, config, autotune)
        out, lse = call.out, call.lse
        # The outputs go through save_for_backward: held on ctx directly they would form a reference cycle.
        ctx.save_for_backward(out, lse)
        call.out = call.lse = None
        ctx.call, ctx.autotune = call, autotune
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        call = ctx.call
        call.out, call.lse = ctx.saved_tensors
        names = [spec[0] for spec in BUFFERS]
        if call.tables is None or dout is None:  # an empty problem: every gradient is 0
            dq, dk, dv, grads = torch.zeros_like(call.q), torch.zeros_like(call.k), torch.zeros_like(call.v), {}
        else:
            need = {name for i, name in enumerate(names) if ctx.needs_input_grad[6 + i]}
            dq, dk, dv, grads = _run_backward(call, dout, need, autotune=ctx.autotune)
        dbufs = []
        for name, t in zip(names, call.bufs_in):
            if not ctx.needs_input_grad[6 + len(dbufs)]:
                dbufs.append(None)
            else:
                dbufs.append(grads.get(name, torch.zeros_like(t)).view(t.shape))
        return (None, None, None, dq, dk, dv, *dbufs)


_BACKWARD_CONFIG = {}


def set_backward_config(config=None):
    """Run later backwards with this config (a BWD_CANDIDATES-style dict); None restores BWD_CONFIG."""
    if config is None:
        _BACKWARD_CONFIG.pop("config", None)
    else:
        _BACKWARD_CONFIG["config"] = backward_config(config)


def flex_attention_backward(q, k, v, out, lse, dout, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None,
                            full_kv_indices=None, ${bufferKeywords(bufferArgs(spec))}scale=None, q_offset=0, kv_offset=0, config=None):
    """dq, dk, dv for a forward whose out and natural-log lse the caller kept (flex_attention(..., return_lse=True)),
    with the forward's arguments. out and lse may be those of a larger attention whose keys include these ones (a
    ring step's merged result): the gradients are then the share of these keys, exact, to be summed over the key
    blocks. Captured buffers get no gradient here (use flex_attention under autograd for that). config: a
    BWD_CANDIDATES-style dict (default BWD_CONFIG)."""
    if BACKWARD_UNAVAILABLE is not None:
        _fail(f"this module has no backward: {BACKWARD_UNAVAILABLE}")
    tables = (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices)
    buffers = {${bufferArgs(spec).map((b) => `${pyString(b.pyName)}: ${b.pyName}`).join(", ")}}
    _check_tensor("out", out, DTYPE, 4)
    call = _prepare(q, k, v, tables, buffers, scale, False, q_offset, kv_offset, out)
    B, Hq, Lq = call.B, call.Hq, call.Lq
    _check_tensor("lse", lse, torch.float32, 3, q.device)
    _check_tensor("dout", dout, DTYPE, 4, q.device)
    if tuple(lse.shape) != (B, Hq, Lq) or tuple(dout.shape) != tuple(out.shape):
        _fail(f"lse must be {(B, Hq, Lq)} and dout {tuple(out.shape)} (out's shape), got {tuple(lse.shape)} and {tuple(dout.shape)}")
    if call.tables is None:  # an empty problem: every gradient is 0
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    call.lse = lse.contiguous()
    dq, dk, dv, _ = _run_backward(call, dout, set(), config)
    return dq, dk, dv


def _needs_grad(q, k, v, buffers):
    if not torch.is_grad_enabled():
        return False
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in (q, k, v, *buffers.values()))


def _flex_attention_grad(q, k, v, tables, buffers, scale, return_lse, q_offset, kv_offset, out, config, autotune):
    """flex_attention's path when a gradient is required: the forward through FlexAttentionFunction."""
    if BACKWARD_UNAVAILABLE is not None:
        _fail(f"gradients were requested but this module has no backward: {BACKWARD_UNAVAILABLE}")
    if out is not None:
        _fail("out= cannot be used when q, k, v or a captured buffer requires grad (autograd owns the output)")
    call = _prepare(q, k, v, tables, buffers, scale, True, q_offset, kv_offset, None)
    call.bufs_in = tuple(buffers.get(spec[0]) for spec in BUFFERS)
    _check_grad_buffers(call.bufs_in)
    out, lse = FlexAttentionFunction.apply(call, config, autotune, q, k, v, *call.bufs_in)
    return (out, lse) if return_lse else out
`;
}

/** Python: the captured buffers as the kernel parameters name them. */
function bufferUnpack(spec: KernelSpec): string {
  return bufferArgs(spec).map((b, i) => `    ${b.pyName} = call.bufs[${i}]`).join("\n");
}
