"""Context-parallel planning: shard layout, per-pair work, ring schedule and per-pair block tables.

A port of @flexattn/blockmask's context-parallel.ts and pair-slice.ts (same rules, same results: the
vitest test ring-python.test.ts checks this module against the TypeScript output on the same masks).
Every rank computes the same plan from the same tables, so no rank has to send it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

STRATEGIES = ("contiguous", "zigzag", "striped")
DEFAULT_STRIPES_PER_RANK = 4
BLOCK_EMPTY, BLOCK_PARTIAL, BLOCK_FULL = 0, 1, 2


def _positive(fn, name, x):
    if not isinstance(x, int) or isinstance(x, bool) or x < 1:
        raise ValueError(f"{fn}(): {name} must be a positive integer, got {x!r}")
    return x


# ---------------------------------------------------------------------------------------------------------------
# Block tables of the whole sequence
# ---------------------------------------------------------------------------------------------------------------


class BlockTables:
    """The kv tables of a BlockMask over the whole sequence (PyTorch layout, int32): kv_num_blocks [Bm, Hm, QB],
    kv_indices [Bm, Hm, QB, KVB] and optionally the full ones. B and H are the logical batch and heads (default
    Bm, Hm); work is counted over them, as BlockMask.blockCounts() does."""

    def __init__(self, kv_num_blocks, kv_indices, full_kv_num_blocks=None, full_kv_indices=None, *, block_size,
                 q_len, kv_len, B=None, H=None):
        fn = "BlockTables"
        if (full_kv_num_blocks is None) != (full_kv_indices is None):
            raise ValueError(f"{fn}(): pass both full_kv_num_blocks and full_kv_indices, or neither")
        kv_num_blocks, kv_indices = torch.as_tensor(kv_num_blocks).cpu(), torch.as_tensor(kv_indices).cpu()
        if kv_indices.dim() != 4 or kv_num_blocks.shape != kv_indices.shape[:3]:
            raise ValueError(f"{fn}(): kv_num_blocks {tuple(kv_num_blocks.shape)} and kv_indices "
                             f"{tuple(kv_indices.shape)} must be [Bm, Hm, QB] and [Bm, Hm, QB, KVB]")
        self.block_size = tuple(int(b) for b in ((block_size, block_size) if isinstance(block_size, int) else block_size))
        self.Bm, self.Hm, self.num_q_blocks, self.num_kv_blocks = (int(x) for x in kv_indices.shape)
        self.q_len, self.kv_len = _positive(fn, "q_len", q_len), _positive(fn, "kv_len", kv_len)
        if (math.ceil(q_len / self.block_size[0]), math.ceil(kv_len / self.block_size[1])) != (self.num_q_blocks,
                                                                                                self.num_kv_blocks):
            raise ValueError(f"{fn}(): tables of {self.num_q_blocks}x{self.num_kv_blocks} blocks do not cover "
                             f"{q_len}x{kv_len} tokens in blocks of {self.block_size}")
        self.B, self.H = B or self.Bm, H or self.Hm
        states = torch.zeros((self.Bm, self.Hm, self.num_q_blocks, self.num_kv_blocks + 1), dtype=torch.uint8)
        for num, idx, value in ((kv_num_blocks, kv_indices, BLOCK_PARTIAL), (full_kv_num_blocks, full_kv_indices, BLOCK_FULL)):
            if num is None:
                continue
            num, idx = torch.as_tensor(num).cpu().long(), torch.as_tensor(idx).cpu().long()
            valid = torch.arange(self.num_kv_blocks) < num[..., None]
            # Padding entries land in a spare last column, dropped below.
            states.scatter_(-1, torch.where(valid, idx, self.num_kv_blocks), value)
        #: [Bm, Hm, QB, KVB] block states: 0 empty, 1 partial, 2 full.
        self.states = states[..., :-1].contiguous()

    @classmethod
    def from_block_mask(cls, bm, *, q_len=None, kv_len=None, B=None, H=None):
        """From an object with PyTorch BlockMask's fields (kv_num_blocks, kv_indices, full_kv_num_blocks,
        full_kv_indices, BLOCK_SIZE and seq_lengths, as torch.nn.attention.flex_attention.BlockMask has)."""
        q_len, kv_len = (q_len, kv_len) if q_len is not None else bm.seq_lengths
        return cls(bm.kv_num_blocks, bm.kv_indices, bm.full_kv_num_blocks, bm.full_kv_indices,
                   block_size=bm.BLOCK_SIZE, q_len=q_len, kv_len=kv_len, B=B, H=H)

    def slice(self, q_blocks, kv_blocks):
        """The four kv tables of the rectangle (query blocks q_blocks, key blocks kv_blocks), indexing its own blocks
        from 0: BlockMask sliceBlocks. The kernel runs them with q_offset = q_blocks[0] * block_size[0] and
        kv_offset = kv_blocks[0] * block_size[1]."""
        (qs, qe), (ks, ke) = q_blocks, kv_blocks
        if not (0 <= qs < qe <= self.num_q_blocks and 0 <= ks < ke <= self.num_kv_blocks):
            raise ValueError(f"slice(): blocks {q_blocks} x {kv_blocks} are not a non-empty rectangle within "
                             f"{self.num_q_blocks} x {self.num_kv_blocks}")
        crop = self.states[:, :, qs:qe, ks:ke]
        return _tables_of(crop, BLOCK_PARTIAL) + _tables_of(crop, BLOCK_FULL)

    def grid_work(self, q_cuts, kv_cuts):
        """(partial, full) block counts of every rectangle between consecutive cuts: gridWork."""
        rows = []
        repeat = (self.B // self.Bm) * (self.H // self.Hm)
        for qa, qb in zip(q_cuts, q_cuts[1:]):
            row = []
            for ka, kb in zip(kv_cuts, kv_cuts[1:]):
                crop = self.states[:, :, qa:qb, ka:kb]
                row.append((int((crop == BLOCK_PARTIAL).sum()) * repeat, int((crop == BLOCK_FULL).sum()) * repeat))
            rows.append(row)
        return rows


def _tables_of(states, value):
    """(num [Bm, Hm, QB], indices [Bm, Hm, QB, KVB]) of the blocks in `value` state: ascending, padding 0."""
    kvb = states.shape[-1]
    hit = states == value
    cols = torch.arange(kvb, dtype=torch.int64)
    # Sort key: hits keep their column, misses go past the end; the first `num` sorted entries are the hits.
    order = torch.sort(torch.where(hit, cols, cols + kvb), dim=-1).values
    num = hit.sum(-1, dtype=torch.int32)
    idx = torch.where(cols < num[..., None].long(), order, 0).to(torch.int32)
    return num.contiguous(), idx.contiguous()


# ---------------------------------------------------------------------------------------------------------------
# Layout, pairs, schedule, cost
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardLayout:
    strategy: str
    world_size: int
    seq_len: int
    #: Tokens per chunk (whole query blocks and key blocks).
    chunk_len: int
    #: ranks[r]: the global chunks rank r holds, in the order of its local sequence.
    ranks: tuple


def _deal_chunks(strategy, W, stripes):
    if strategy == "contiguous":
        return tuple((r,) for r in range(W))
    if strategy == "zigzag":
        return tuple((r, 2 * W - 1 - r) for r in range(W))
    return tuple(tuple(r + i * W for i in range(stripes)) for r in range(W))


def _try_shard_layout(strategy, seq_len, world_size, block_size, stripes_per_rank=None):
    fn = "shard_layout"
    if strategy not in STRATEGIES:
        raise ValueError(f"{fn}(): strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    _positive(fn, "seq_len", seq_len)
    W = _positive(fn, "world_size", world_size)
    bq, bkv = (block_size, block_size) if isinstance(block_size, int) else block_size
    _positive(fn, "block_size[0]", bq)
    _positive(fn, "block_size[1]", bkv)
    stripes = _positive(fn, "stripes_per_rank", stripes_per_rank or DEFAULT_STRIPES_PER_RANK) if strategy == "striped" else 1
    ranks = _deal_chunks(strategy, W, stripes)
    num_chunks = W * len(ranks[0])
    quantum = num_chunks * (bq * bkv // math.gcd(bq, bkv))
    if seq_len % quantum:
        return None, (f"{fn}(): {strategy} sharding over {W} rank(s) cuts the sequence into {num_chunks} equal chunks "
                      f"of whole {bq}x{bkv} blocks, so seq_len must be a multiple of {quantum}; got {seq_len}. Pad the "
                      f"sequence to {-(-seq_len // quantum) * quantum} tokens (masking the padding) or pick another strategy")
    return ShardLayout(strategy, W, seq_len, seq_len // num_chunks, ranks), None


def shard_layout(strategy, seq_len, world_size, block_size, stripes_per_rank=None):
    """Equal chunks of whole blocks dealt to ranks (shardLayout); a length that does not split is a ValueError."""
    layout, refused = _try_shard_layout(strategy, seq_len, world_size, block_size, stripes_per_rank)
    if refused:
        raise ValueError(refused)
    return layout


@dataclass(frozen=True)
class ChunkPair:
    q_chunk: int
    kv_chunk: int
    q_local_start: int
    kv_local_start: int
    q_blocks: tuple
    kv_blocks: tuple
    partial: int
    full: int


@dataclass(frozen=True)
class ShardPair:
    q_rank: int
    kv_rank: int
    partial: int
    full: int
    chunk_pairs: tuple


@dataclass(frozen=True)
class RingStep:
    kv_rank: int
    compute: bool
    send: bool
    recv: bool


@dataclass(frozen=True)
class PlanCost:
    rank_work: tuple
    step_max: tuple
    critical_path: int
    imbalance: float
    kernel_calls: int
    sends: int


def shard_pairs(tables, layout):
    """pairs[q_rank][kv_rank] with their non-empty chunk pairs (shardPairs)."""
    bq, bkv = tables.block_size
    if tables.q_len != tables.kv_len or tables.q_len != layout.seq_len:
        raise ValueError(f"shard_pairs(): context parallelism shards one sequence for queries and keys: the tables "
                         f"cover {tables.q_len}x{tables.kv_len}, the layout {layout.seq_len} tokens")
    if layout.chunk_len % bq or layout.chunk_len % bkv:
        raise ValueError(f"shard_pairs(): chunks of {layout.chunk_len} tokens are not whole {bq}x{bkv} blocks")
    n = layout.seq_len // layout.chunk_len
    q_per, kv_per = layout.chunk_len // bq, layout.chunk_len // bkv
    work = tables.grid_work([c * q_per for c in range(n + 1)], [c * kv_per for c in range(n + 1)])
    pairs = []
    for q_rank, q_chunks in enumerate(layout.ranks):
        row = []
        for kv_rank, kv_chunks in enumerate(layout.ranks):
            cps = []
            for qi, qc in enumerate(q_chunks):
                for ki, kc in enumerate(kv_chunks):
                    partial, full = work[qc][kc]
                    if partial + full == 0:
                        continue
                    cps.append(ChunkPair(qc, kc, qi * layout.chunk_len, ki * layout.chunk_len,
                                         (qc * q_per, (qc + 1) * q_per), (kc * kv_per, (kc + 1) * kv_per), partial, full))
            row.append(ShardPair(q_rank, kv_rank, sum(c.partial for c in cps), sum(c.full for c in cps), tuple(cps)))
        pairs.append(tuple(row))
    return tuple(pairs)


def ring_schedule(pairs):
    """steps[step][rank] (ringSchedule): in step s rank r holds shard (r - s) mod W, computes when the pair has
    blocks, and passes the shard on to r + 1 unless no later holder needs it."""
    W = len(pairs)
    busy = lambda q, kv: len(pairs[q][kv].chunk_pairs) > 0  # noqa: E731
    needed_from = []
    for j in range(W):
        need = [False] * (W + 1)
        for s in range(W - 1, -1, -1):
            need[s] = need[s + 1] or busy((j + s) % W, j)
        needed_from.append(need)
    steps = []
    for s in range(W):
        sends = [s < W - 1 and needed_from[(r - s) % W][s + 1] for r in range(W)]
        steps.append(tuple(RingStep((r - s) % W, busy(r, (r - s) % W), sends[r], sends[(r - 1) % W]) for r in range(W)))
    return tuple(steps)


def plan_cost(pairs, steps):
    W = len(pairs)
    work = lambda p: p.partial + p.full  # noqa: E731
    rank_work = tuple(sum(work(p) for p in row) for row in pairs)
    step_max = tuple(max(work(pairs[r][x.kv_rank]) if x.compute else 0 for r, x in enumerate(step)) for step in steps)
    total = sum(rank_work)
    return PlanCost(rank_work, step_max, sum(step_max), 1.0 if total == 0 else max(rank_work) / (total / W),
                    sum(len(p.chunk_pairs) for row in pairs for p in row), sum(x.send for step in steps for x in step))


@dataclass
class ContextParallelPlan:
    """A sharding of one BlockMask with its pairs, ring schedule and cost; shard() / unshard() move whole-sequence
    tensors to and from the ranks' local order, chunk_tables() gives one kernel call's tables on a device."""

    tables: BlockTables
    layout: ShardLayout
    pairs: tuple
    steps: tuple
    cost: PlanCost
    candidates: tuple = ()
    _device_tables: dict = field(default_factory=dict, repr=False)

    def shard(self, x, rank, dim=2):
        """Rank `rank`'s local shard of a whole-sequence tensor (its chunks along `dim`, in order, contiguous)."""
        c = self.layout.chunk_len
        return torch.cat([x.narrow(dim, k * c, c) for k in self.layout.ranks[rank]], dim=dim).contiguous()

    def unshard(self, shards, dim=2):
        """The whole-sequence tensor from every rank's shard (the inverse of shard)."""
        c = self.layout.chunk_len
        pieces = {k: s.narrow(dim, i * c, c) for s, chunks in zip(shards, self.layout.ranks) for i, k in enumerate(chunks)}
        return torch.cat([pieces[k] for k in sorted(pieces)], dim=dim)

    def chunk_tables(self, cp, device):
        """The four int32 tables of one chunk pair's kernel call, on `device` (sliced once, then cached)."""
        key = (cp.q_blocks, cp.kv_blocks, str(device))
        if key not in self._device_tables:
            self._device_tables[key] = tuple(t.to(device) for t in self.tables.slice(cp.q_blocks, cp.kv_blocks))
        return self._device_tables[key]


def plan_for_layout(tables, layout):
    pairs = shard_pairs(tables, layout)
    steps = ring_schedule(pairs)
    return ContextParallelPlan(tables, layout, pairs, steps, plan_cost(pairs, steps))


def plan_context_parallel(tables, world_size, strategies=STRATEGIES, stripes_per_rank=None):
    """The sharding with the shortest ring (least critical-path work; ties: fewer kernel calls, then the earlier
    strategy): planContextParallel. Strategies that cannot split the length are skipped (candidates say why)."""
    if not strategies:
        raise ValueError("plan_context_parallel(): strategies is empty")
    best, candidates = None, []
    for strategy in strategies:
        layout, refused = _try_shard_layout(strategy, tables.q_len, world_size, tables.block_size, stripes_per_rank)
        if refused:
            candidates.append((strategy, refused))
            continue
        plan = plan_for_layout(tables, layout)
        candidates.append((strategy, plan.cost))
        c = plan.cost
        if best is None or (c.critical_path, c.kernel_calls) < (best.cost.critical_path, best.cost.kernel_calls):
            best = plan
    if best is None:
        raise ValueError("plan_context_parallel(): no sharding fits: " + "; ".join(r for _, r in candidates))
    best.candidates = tuple(candidates)
    return best
