"""ring_flex_attention: context-parallel FlexAttention over torch.distributed with a generated kernel."""
import torch
import torch.distributed as dist

from .merge import merge_attention_partial

_K_TAG, _V_TAG = 17, 18


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

    Forward only: there is no backward through the ring yet (inputs that require grad are refused).
    """
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q_shard, k_shard, v_shard)):
        raise ValueError("ring_flex_attention is forward-only (no backward through the ring yet): call it under "
                         "torch.no_grad() or pass tensors that do not require grad")
    W = dist.get_world_size(process_group) if dist.is_initialized() else 1
    rank = dist.get_rank(process_group) if dist.is_initialized() else 0
    if W != plan.layout.world_size:
        raise ValueError(f"the plan shards over {plan.layout.world_size} rank(s) but the process group has {W}")
    buffer_kw = _check_call(plan, rank, kernel, q_shard, k_shard, v_shard, buffers)
    acc_out, acc_lse = _accumulator(q_shard, v_shard)
    nxt, prev = _global_rank(process_group, (rank + 1) % W), _global_rank(process_group, (rank - 1) % W)
    # The caller's K/V are only read (sent and computed on at step 0); arrivals alternate between two buffers, so a
    # buffer is written only after the step that computed on it and sent it has finished.
    held = (k_shard.contiguous(), v_shard.contiguous())
    spare = [None, None]
    for s, step in enumerate(plan.steps):
        x = step[rank]
        ops = []
        if x.send:
            ops += [dist.P2POp(dist.isend, held[0], nxt, process_group, _K_TAG),
                    dist.P2POp(dist.isend, held[1], nxt, process_group, _V_TAG)]
        incoming = None
        if x.recv:
            if spare[s % 2] is None:
                spare[s % 2] = (torch.empty_like(held[0]), torch.empty_like(held[1]))
            incoming = spare[s % 2]
            ops += [dist.P2POp(dist.irecv, incoming[0], prev, process_group, _K_TAG),
                    dist.P2POp(dist.irecv, incoming[1], prev, process_group, _V_TAG)]
        # One batch per step: NCCL starts the sends and receives of all ranks as a group (issued one by one, every
        # rank's first isend would wait on its neighbour's, all around the ring).
        requests = dist.batch_isend_irecv(ops) if ops else []
        if x.compute:
            _compute_pair(plan, rank, x.kv_rank, q_shard, held, kernel, buffer_kw, scale, acc_out, acc_lse)
        for r in requests:
            r.wait()
        if incoming is not None:
            held = incoming
    out = acc_out.to(q_shard.dtype)
    return (out, acc_lse) if return_lse else out


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


def _compute_pair(plan, rank, kv_rank, q_shard, held, kernel, buffer_kw, scale, acc_out, acc_lse):
    """One (query shard, key shard) pair: a kernel call per non-empty chunk pair, merged into the accumulator."""
    c = plan.layout.chunk_len
    bq, bkv = plan.tables.block_size
    for cp in plan.pairs[rank][kv_rank].chunk_pairs:
        q_rows = slice(cp.q_local_start, cp.q_local_start + c)
        kv_rows = slice(cp.kv_local_start, cp.kv_local_start + c)
        out, lse = kernel.flex_attention(
            q_shard[:, :, q_rows], held[0][:, :, kv_rows], held[1][:, :, kv_rows], *plan.chunk_tables(cp, q_shard.device),
            **buffer_kw, scale=scale, return_lse=True, q_offset=cp.q_blocks[0] * bq, kv_offset=cp.kv_blocks[0] * bkv)
        merge_attention_partial(acc_out[:, :, q_rows], acc_lse[:, :, q_rows], out, lse)
