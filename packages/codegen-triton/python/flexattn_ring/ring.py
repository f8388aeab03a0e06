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

    Forward only: there is no backward through the ring yet (inputs that require grad are refused).
    """
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q_shard, k_shard, v_shard)):
        raise ValueError("ring_flex_attention is forward-only (no backward through the ring yet): call it under "
                         "torch.no_grad() or pass tensors that do not require grad")
    W = dist.get_world_size(process_group) if dist.is_initialized() else 1
    rank = dist.get_rank(process_group) if dist.is_initialized() else 0
    layout = plan.layout
    if W != layout.world_size:
        raise ValueError(f"the plan shards over {layout.world_size} rank(s) but the process group has {W}")
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
    buffer_kw = dict(zip(names, buffers))

    B, Hq = q_shard.shape[:2]
    acc_out = torch.zeros((B, Hq, L, v_shard.shape[3]), dtype=torch.float32, device=q_shard.device)
    acc_lse = torch.full((B, Hq, L), float("-inf"), dtype=torch.float32, device=q_shard.device)
    nxt, prev = _global_rank(process_group, (rank + 1) % W), _global_rank(process_group, (rank - 1) % W)
    # The caller's K/V are only read (sent and computed on at step 0); arrivals alternate between two buffers, so a
    # buffer is written only after the step that computed on it and sent it has finished.
    held = (k_shard.contiguous(), v_shard.contiguous())
    spare = [None, None]
    c = layout.chunk_len
    for s, step in enumerate(plan.steps):
        x = step[rank]
        requests = []
        if x.send:
            requests += [dist.isend(held[0], nxt, process_group, _K_TAG), dist.isend(held[1], nxt, process_group, _V_TAG)]
        incoming = None
        if x.recv:
            if spare[s % 2] is None:
                spare[s % 2] = (torch.empty_like(held[0]), torch.empty_like(held[1]))
            incoming = spare[s % 2]
            requests += [dist.irecv(incoming[0], prev, process_group, _K_TAG),
                         dist.irecv(incoming[1], prev, process_group, _V_TAG)]
        if x.compute:
            for cp in plan.pairs[rank][x.kv_rank].chunk_pairs:
                q_rows = slice(cp.q_local_start, cp.q_local_start + c)
                kv_rows = slice(cp.kv_local_start, cp.kv_local_start + c)
                out, lse = kernel.flex_attention(
                    q_shard[:, :, q_rows], held[0][:, :, kv_rows], held[1][:, :, kv_rows],
                    *plan.chunk_tables(cp, q_shard.device), **buffer_kw, scale=scale, return_lse=True,
                    q_offset=cp.q_blocks[0] * plan.tables.block_size[0], kv_offset=cp.kv_blocks[0] * plan.tables.block_size[1])
                merge_attention_partial(acc_out[:, :, q_rows], acc_lse[:, :, q_rows], out, lse)
        for r in requests:
            r.wait()
        if incoming is not None:
            held = incoming
    out = acc_out.to(q_shard.dtype)
    return (out, acc_lse) if return_lse else out
