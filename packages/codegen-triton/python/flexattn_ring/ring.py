"""ring_flex_attention: context-parallel FlexAttention over torch.distributed with a generated kernel."""
import torch
import torch.distributed as dist

from .merge import merge_attention_partial

_KV_TAGS, _DKV_TAGS = (17, 18), (19, 20)  # a shard's K and V; its dK and dV sums


def _ring_position(process_group):
    """(world size, this rank, the global ranks of the next and the previous rank on the ring)."""
    W = dist.get_world_size(process_group) if dist.is_initialized() else 1
    rank = dist.get_rank(process_group) if dist.is_initialized() else 0
    return W, rank, _global_rank(process_group, (rank + 1) % W), _global_rank(process_group, (rank - 1) % W)


def _pair_ops(op, pair, peer, process_group, tags):
    """P2P ops moving a pair of tensors (K and V, or their gradient sums) to or from a peer."""
    return [dist.P2POp(op, t, peer, process_group, tag) for t, tag in zip(pair, tags)]


def _global_rank(group, rank):
    if group is None or group is dist.group.WORLD:
        return rank
    if hasattr(dist, "get_global_rank"):
        return dist.get_global_rank(group, rank)
    return dist.distributed_c10d._get_global_rank(group, rank)  # torch < 2.0


def ring_flex_attention(q_shard, k_shard, v_shard, *buffers, plan, kernel, process_group=None, scale=None,
                        return_lse=False):
    """Attention of this rank's query shard over the whole sequence, with K/V shards passed around a ring.

    q_shard [B, Hq, L, D], k_shard / v_shard [B, Hkv, L, D / Dv]: this rank's shard, as plan.shard(x, rank) cuts a
    whole-sequence tensor (L = chunks per rank x chunk_len). plan: from plan_context_parallel on the BlockMask tables
    of the whole sequence, the same on every rank. kernel: a generated Triton module (or anything with its
    flex_attention, SPARSE_BLOCK and BUFFERS, e.g. make_reference_kernel on CPU). buffers: the mods' captured
    buffers in the module's BUFFERS order, whole-sequence (the mods see true positions through the offsets).

    Per ring step, this rank runs kernel.flex_attention(return_lse=True) once per non-empty chunk pair of its
    (query shard, held K/V shard) pair, on that pair's sliced tables with q_offset / kv_offset, and merges the
    partial outputs exactly by LSE (f32). Meanwhile the held shard goes to rank + 1 and the next arrives from
    rank - 1 (isend / irecv into the other of two buffers); pairs without blocks are skipped, and so are sends that
    no later rank needs. Returns out [B, Hq, L, Dv] in q's dtype (and the LSE [B, Hq, L], f32, when return_lse).

    With NCCL, initialize the process group with device_id (an eager communicator): a rank with nothing to send or
    receive in the first step does not join that step's batch_isend_irecv.

    Under autograd (q, k or v requires grad) the call is recorded as a RingFlexAttention: its backward runs the
    kernel's flex_attention_backward per chunk pair with the merged out and LSE, sums dQ on the rank and sends each
    K/V shard's dK/dV partial sums around the ring with the shard, so they arrive home after world-size steps.
    Captured buffers get no gradient through the ring (one that requires grad is refused).
    """
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q_shard, k_shard, v_shard)):
        if any(isinstance(b, torch.Tensor) and b.requires_grad for b in buffers):
            raise ValueError("ring_flex_attention gives no gradient to captured buffers: pass them detached")
        if not hasattr(kernel, "flex_attention_backward"):
            raise ValueError("the kernel has no flex_attention_backward (a module generated before it, or one whose score "
                             "mod has no backward): regenerate it, or call the ring under torch.no_grad()")
        out, lse = RingFlexAttention.apply(q_shard, k_shard, v_shard, (plan, kernel, process_group, scale, buffers))
        return (out, lse) if return_lse else out
    out, lse = _ring_forward(q_shard, k_shard, v_shard, buffers, plan, kernel, process_group, scale)
    return (out, lse) if return_lse else out


class RingFlexAttention(torch.autograd.Function):
    """ring_flex_attention under autograd: gradients for the q, k and v shards (see ring_flex_attention)."""

    @staticmethod
    def forward(ctx, q_shard, k_shard, v_shard, args):
        plan, kernel, process_group, scale, buffers = args
        out, lse = _ring_forward(q_shard, k_shard, v_shard, buffers, plan, kernel, process_group, scale)
        ctx.save_for_backward(q_shard, k_shard, v_shard, out, lse)
        ctx.args = args
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q_shard, k_shard, v_shard, out, lse = ctx.saved_tensors
        plan, kernel, process_group, scale, buffers = ctx.args
        dq, dk, dv = _ring_backward(q_shard, k_shard, v_shard, out, lse, dout, buffers, plan, kernel, process_group, scale)
        return dq, dk, dv, None


def _ring_forward(q_shard, k_shard, v_shard, buffers, plan, kernel, process_group, scale):
    """The ring's forward: this rank's merged (out in q's dtype, LSE f32)."""
    W, rank, nxt, prev = _ring_position(process_group)
    if W != plan.layout.world_size:
        raise ValueError(f"the plan shards over {plan.layout.world_size} rank(s) but the process group has {W}")
    buffer_kw = _check_call(plan, rank, kernel, q_shard, k_shard, v_shard, buffers)
    acc_out, acc_lse = _accumulator(q_shard, v_shard)
    # The caller's K/V are only read (sent and computed on at step 0); arrivals alternate between two buffers, so a
    # buffer is written only after the step that computed on it and sent it has finished.
    held = (k_shard.contiguous(), v_shard.contiguous())
    spare = [None, None]
    for s, step in enumerate(plan.steps):
        x = step[rank]
        ops = _pair_ops(dist.isend, held, nxt, process_group, _KV_TAGS) if x.send else []
        incoming = None
        if x.recv:
            if spare[s % 2] is None:
                spare[s % 2] = (torch.empty_like(held[0]), torch.empty_like(held[1]))
            incoming = spare[s % 2]
            ops += _pair_ops(dist.irecv, incoming, prev, process_group, _KV_TAGS)
        # One batch per step: NCCL starts the sends and receives of all ranks as a group (issued one by one, every
        # rank's first isend would wait on its neighbour's, all around the ring).
        requests = dist.batch_isend_irecv(ops) if ops else []
        if x.compute:
            _compute_pair(plan, rank, x.kv_rank, q_shard, held, kernel, buffer_kw, scale, acc_out, acc_lse)
        for r in requests:
            r.wait()
        if incoming is not None:
            held = incoming
    return acc_out.to(q_shard.dtype), acc_lse


def _ring_backward(q_shard, k_shard, v_shard, out, lse, dout, buffers, plan, kernel, process_group, scale):
    """dQ of this rank's query shard and dK, dV of its own K/V shard. Each step this rank adds its query shard's
    share to the held shard's dK/dV accumulators (f32) and to its dQ; then the held K/V go on to rank + 1 (sent while
    computing, as in the forward) and the accumulators after them, so after world-size steps every shard's
    accumulators are back with its owner. Every step moves every shard: accumulators must come home."""
    W, rank, nxt, prev = _ring_position(process_group)
    buffer_kw = _check_call(plan, rank, kernel, q_shard, k_shard, v_shard, buffers)
    dout = dout.contiguous()
    acc_dq = torch.zeros(q_shard.shape, dtype=torch.float32, device=q_shard.device)
    held = (k_shard.contiguous(), v_shard.contiguous())
    acc = (torch.zeros(k_shard.shape, dtype=torch.float32, device=k_shard.device),
           torch.zeros(v_shard.shape, dtype=torch.float32, device=v_shard.device))
    # Two buffers each for arriving K/V and dK/dV sums, as in the forward: one is read or sent while the other fills.
    spare, arriving = [None, None], None
    for s in range(W):
        incoming, requests = None, []
        if s < W - 1:
            if spare[s % 2] is None:
                spare[s % 2] = (torch.empty_like(held[0]), torch.empty_like(held[1]))
            incoming = spare[s % 2]
            requests = dist.batch_isend_irecv(_pair_ops(dist.isend, held, nxt, process_group, _KV_TAGS) +
                                              _pair_ops(dist.irecv, incoming, prev, process_group, _KV_TAGS))
        _backward_pair(plan, rank, (rank - s) % W, q_shard, out, lse, dout, held, kernel, buffer_kw, scale, acc_dq, acc)
        for r in requests:
            r.wait()
        if W > 1:
            arriving = arriving or (torch.empty_like(acc[0]), torch.empty_like(acc[1]))
            for r in dist.batch_isend_irecv(_pair_ops(dist.isend, acc, nxt, process_group, _DKV_TAGS) +
                                            _pair_ops(dist.irecv, arriving, prev, process_group, _DKV_TAGS)):
                r.wait()
            acc, arriving = arriving, acc
        if incoming is not None:
            held = incoming
    return acc_dq.to(q_shard.dtype), acc[0].to(k_shard.dtype), acc[1].to(v_shard.dtype)


def _backward_pair(plan, rank, kv_rank, q_shard, out, lse, dout, held, kernel, buffer_kw, scale, acc_dq, acc):
    """One (query shard, key shard) pair's gradients, a kernel call per non-empty chunk pair, added to the f32 sums."""
    for q_rows, kv_rows, tables, offsets in _chunk_calls(plan, rank, kv_rank, q_shard.device):
        dq, dk, dv = kernel.flex_attention_backward(
            q_shard[:, :, q_rows], held[0][:, :, kv_rows], held[1][:, :, kv_rows], out[:, :, q_rows],
            lse[:, :, q_rows].contiguous(), dout[:, :, q_rows], *tables, **buffer_kw, scale=scale, **offsets)
        acc_dq[:, :, q_rows] += dq.float()
        acc[0][:, :, kv_rows] += dk.float()
        acc[1][:, :, kv_rows] += dv.float()


def simulate_ring(q, k, v, *buffers, plan, kernel, scale=None):
    """Every rank's share of the ring in one process, rank after rank, on whole-sequence tensors: the same kernel calls
    (sliced tables, offsets) and merges as ring_flex_attention, without communication. For checking a kernel with a
    plan on one device; returns the whole-sequence out (q's dtype) and LSE (f32)."""
    outs, lses = [], []
    for rank in range(plan.layout.world_size):
        q_shard = plan.shard(q, rank)
        buffer_kw = _check_call(plan, rank, kernel, q_shard, plan.shard(k, rank), plan.shard(v, rank), buffers)
        acc_out, acc_lse = _accumulator(q_shard, v)
        for step in plan.steps:
            x = step[rank]
            if x.compute:
                held = (plan.shard(k, x.kv_rank), plan.shard(v, x.kv_rank))
                _compute_pair(plan, rank, x.kv_rank, q_shard, held, kernel, buffer_kw, scale, acc_out, acc_lse)
        outs.append(acc_out.to(q.dtype))
        lses.append(acc_lse)
    return plan.unshard(outs), plan.unshard(lses)


def simulate_ring_backward(q, k, v, dout, *buffers, plan, kernel, scale=None):
    """The ring's backward for every rank in one process, on whole-sequence tensors: the forward as simulate_ring,
    then the same per-pair flex_attention_backward calls as the ring's backward, with f32 sums. Returns the
    whole-sequence dq, dk, dv in the inputs' dtypes."""
    out, lse = simulate_ring(q, k, v, *buffers, plan=plan, kernel=kernel, scale=scale)
    W = plan.layout.world_size
    shard_acc = [(torch.zeros(plan.shard(k, j).shape, dtype=torch.float32, device=k.device),
                  torch.zeros(plan.shard(v, j).shape, dtype=torch.float32, device=v.device)) for j in range(W)]
    dqs = []
    for rank in range(W):
        q_shard = plan.shard(q, rank)
        buffer_kw = _check_call(plan, rank, kernel, q_shard, plan.shard(k, rank), plan.shard(v, rank), buffers)
        acc_dq = torch.zeros(q_shard.shape, dtype=torch.float32, device=q.device)
        for j in range(W):
            held = (plan.shard(k, j), plan.shard(v, j))
            _backward_pair(plan, rank, j, q_shard, plan.shard(out, rank), plan.shard(lse, rank),
                           plan.shard(dout, rank).contiguous(), held, kernel, buffer_kw, scale, acc_dq, shard_acc[j])
        dqs.append(acc_dq.to(q.dtype))
    return (plan.unshard(dqs), plan.unshard([a[0].to(k.dtype) for a in shard_acc]),
            plan.unshard([a[1].to(v.dtype) for a in shard_acc]))


def _check_call(plan, rank, kernel, q_shard, k_shard, v_shard, buffers):
    """Check one rank's arguments against the plan and kernel; returns the captured buffers by name."""
    layout = plan.layout
    if tuple(kernel.SPARSE_BLOCK) != tuple(plan.tables.block_size):
        raise ValueError(f"the kernel was generated for BlockMask blocks {tuple(kernel.SPARSE_BLOCK)}, the plan's "
                         f"tables use {plan.tables.block_size}")
    L = len(layout.ranks[rank]) * layout.chunk_len
    for name, t in (("q_shard", q_shard), ("k_shard", k_shard), ("v_shard", v_shard)):
        if t.dim() != 4 or t.shape[2] != L:
            raise ValueError(f"{name} must be [B, H, {L}, D] (this rank's {len(layout.ranks[rank])} chunk(s) of "
                             f"{layout.chunk_len} tokens; cut it with plan.shard), got {tuple(t.shape)}")
    names = [b[0] for b in kernel.BUFFERS]
    if len(buffers) != len(names):
        raise ValueError(f"the kernel's mods capture {len(names)} buffer(s) ({', '.join(names) or 'none'}); got {len(buffers)}")
    return dict(zip(names, buffers))


def _accumulator(q_shard, v):
    B, Hq, L = q_shard.shape[:3]
    return (torch.zeros((B, Hq, L, v.shape[3]), dtype=torch.float32, device=q_shard.device),
            torch.full((B, Hq, L), float("-inf"), dtype=torch.float32, device=q_shard.device))


def _chunk_calls(plan, rank, kv_rank, device):
    """The kernel calls of one (query shard, key shard) pair, one per non-empty chunk pair: the rows of each in the
    shards, and its sliced tables and offsets as keyword arguments."""
    c = plan.layout.chunk_len
    bq, bkv = plan.tables.block_size
    for cp in plan.pairs[rank][kv_rank].chunk_pairs:
        yield (slice(cp.q_local_start, cp.q_local_start + c), slice(cp.kv_local_start, cp.kv_local_start + c),
               plan.chunk_tables(cp, device), dict(q_offset=cp.q_blocks[0] * bq, kv_offset=cp.kv_blocks[0] * bkv))


def _compute_pair(plan, rank, kv_rank, q_shard, held, kernel, buffer_kw, scale, acc_out, acc_lse):
    """One (query shard, key shard) pair: a kernel call per non-empty chunk pair, merged into the accumulator."""
    for q_rows, kv_rows, tables, offsets in _chunk_calls(plan, rank, kv_rank, q_shard.device):
        out, lse = kernel.flex_attention(q_shard[:, :, q_rows], held[0][:, :, kv_rows], held[1][:, :, kv_rows], *tables,
                                         **buffer_kw, scale=scale, return_lse=True, **offsets)
        merge_attention_partial(acc_out[:, :, q_rows], acc_lse[:, :, q_rows], out, lse)
