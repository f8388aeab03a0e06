"""Context-parallel (ring) FlexAttention over torch.distributed with flexattn's generated kernels.

    import flexattn_ring as ring
    tables = ring.BlockTables(kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices,
                              block_size=fa.SPARSE_BLOCK, q_len=N, kv_len=N)   # the whole sequence's BlockMask
    plan = ring.plan_context_parallel(tables, world_size)                  # the same on every rank
    out = ring.ring_flex_attention(plan.shard(q, rank), plan.shard(k, rank), plan.shard(v, rank), *buffers,
                                   plan=plan, kernel=fa, process_group=group)  # fa: a generated Triton module

Planning is a port of @flexattn/blockmask's context-parallel module (checked against it in CI).
"""
from .merge import merge_attention_partial
from .plan import (DEFAULT_STRIPES_PER_RANK, STRATEGIES, BlockTables, ChunkPair, ContextParallelPlan, PlanCost, RingStep,
                   ShardLayout, ShardPair, plan_context_parallel, plan_cost, plan_for_layout, ring_schedule, shard_layout,
                   shard_pairs)
from .reference import make_reference_kernel
from .ring import RingFlexAttention, ring_flex_attention, simulate_ring, simulate_ring_backward

__all__ = [
    "BlockTables", "ChunkPair", "ContextParallelPlan", "DEFAULT_STRIPES_PER_RANK", "PlanCost", "RingStep", "STRATEGIES",
    "ShardLayout", "ShardPair", "make_reference_kernel", "merge_attention_partial", "plan_context_parallel", "plan_cost",
    "plan_for_layout", "RingFlexAttention", "ring_flex_attention", "ring_schedule", "shard_layout", "shard_pairs",
    "simulate_ring", "simulate_ring_backward",
]
