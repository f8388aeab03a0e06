"""Tests of flexattn_ring on CPU: the plan port against the TypeScript plans, the LSE merge, and the ring itself over
torch.distributed (gloo, 2 and 4 processes) against single-process attention on the gathered sequence.

The kernel here is make_reference_kernel (plain torch, the generated module's ABI): Triton does not run on CPU.

    python3 test_ring.py FIXTURES.json     (FIXTURES.json from ring-fixtures.ts; run by ring-python.test.ts)
"""
import json
import os
import sys
import tempfile
import unittest

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import flexattn_ring as ring  # noqa: E402

FIXTURES = None


def load_fixtures():
    with open(FIXTURES) as f:
        return json.load(f)["cases"]


def whole_tables(case):
    t = case["tables"]
    Bm, Hm, QB, KVB = t["dims"]
    shape = lambda name, last: torch.tensor(t[name], dtype=torch.int32).view(Bm, Hm, QB, *((KVB,) if last else ()))  # noqa: E731
    return ring.BlockTables(shape("kvNumBlocks", False), shape("kvIndices", True), shape("fullKvNumBlocks", False),
                            shape("fullKvIndices", True), block_size=tuple(case["blockSize"]), q_len=case["seqLen"],
                            kv_len=case["seqLen"], B=case["B"], H=case["H"])


# Mods as torch functions of true positions (the same mods the TypeScript fixtures were built from).
def mods_of(mask):
    if mask["name"] == "causal":
        return (lambda b, h, q, kv: q >= kv), None, ()
    if mask["name"] == "document_causal":
        docs = torch.tensor(mask["docIds"], dtype=torch.int32)
        spec = (("docIds", torch.int32, (len(docs),)),)
        return (lambda b, h, q, kv, docIds: (q >= kv) & (docIds[q] == docIds[kv])), None, spec
    w = mask["window"]
    # A score mod that reads positions too, so a wrong offset changes scores, not only the mask.
    return (lambda b, h, q, kv: (q >= kv) & (q - kv <= w)), (lambda s, b, h, q, kv: s + 0.05 * (q - kv)), ()


def buffers_of(mask):
    return (torch.tensor(mask["docIds"], dtype=torch.int32),) if mask["name"] == "document_causal" else ()


def kernel_of(case):
    mask_mod, score_mod, spec = mods_of(case["mask"])
    return ring.make_reference_kernel(mask_mod, score_mod, sparse_block=tuple(case["blockSize"]), buffers=spec)


def inputs(case, seed=0, D=8):
    g = torch.Generator().manual_seed(seed)
    shape = (case["B"], case["H"], case["seqLen"], D)
    return tuple(torch.randn(shape, generator=g) for _ in range(3))


class PlanMatchesTypeScript(unittest.TestCase):
    def test_layouts_pairs_schedules_costs_and_pair_tables(self):
        checked = 0
        for case in load_fixtures():
            tables = whole_tables(case)
            for ts in case["plans"]:
                W, choice = ts["worldSize"], ts["choice"]
                label = f"{case['mask']['name']} {choice} W={W}"
                if choice == "auto":
                    py = ring.plan_context_parallel(tables, W, stripes_per_rank=case["stripesPerRank"])
                else:
                    py = ring.plan_for_layout(tables, ring.shard_layout(choice, case["seqLen"], W, tuple(case["blockSize"]),
                                                                     case["stripesPerRank"]))
                lay = ts["layout"]
                self.assertEqual((py.layout.strategy, py.layout.world_size, py.layout.seq_len, py.layout.chunk_len),
                                 (lay["strategy"], lay["worldSize"], lay["seqLen"], lay["chunkLen"]), label)
                self.assertEqual([list(r) for r in py.layout.ranks], lay["ranks"], label)
                self.assertEqual([[(x.kv_rank, x.compute, x.send, x.recv) for x in st] for st in py.steps],
                                 [[(x["kvRank"], x["compute"], x["send"], x["recv"]) for x in st] for st in ts["steps"]], label)
                c = ts["cost"]
                self.assertEqual((list(py.cost.rank_work), list(py.cost.step_max), py.cost.critical_path, py.cost.kernel_calls,
                                  py.cost.sends), (c["rankWork"], c["stepMax"], c["criticalPath"], c["kernelCalls"], c["sends"]), label)
                self.assertAlmostEqual(py.cost.imbalance, c["imbalance"], places=12)
                for py_row, ts_row in zip(py.pairs, ts["pairs"]):
                    for pp, tp in zip(py_row, ts_row):
                        self.assertEqual((pp.partial, pp.full, len(pp.chunk_pairs)), (tp["partial"], tp["full"], len(tp["chunkPairs"])), label)
                        for cp, tcp in zip(pp.chunk_pairs, tp["chunkPairs"]):
                            self.assertEqual((cp.q_chunk, cp.kv_chunk, cp.q_local_start, cp.kv_local_start, list(cp.q_blocks),
                                              list(cp.kv_blocks), cp.partial, cp.full),
                                             (tcp["qChunk"], tcp["kvChunk"], tcp["qLocalStart"], tcp["kvLocalStart"],
                                              tcp["qBlocks"], tcp["kvBlocks"], tcp["partial"], tcp["full"]), label)
                            mine = py.chunk_tables(cp, "cpu")
                            theirs = tcp["tables"]
                            for t, name in zip(mine, ("kvNumBlocks", "kvIndices", "fullKvNumBlocks", "fullKvIndices")):
                                self.assertEqual(t.dtype, torch.int32)
                                self.assertEqual(t.flatten().tolist(), theirs[name], f"{label} {name}")
                            self.assertEqual(list(mine[1].shape), theirs["dims"], label)
                            checked += 1
        self.assertGreater(checked, 50)

    def test_uneven_length_is_refused_with_the_length_to_pad_to(self):
        with self.assertRaisesRegex(ValueError, r"multiple of 64; got 250\. Pad the sequence to 256"):
            ring.shard_layout("contiguous", 250, 2, (16, 32))


class Merge(unittest.TestCase):
    def test_merge_of_disjoint_key_sets_is_attention_over_the_union(self):
        g = torch.Generator().manual_seed(3)
        s = torch.randn(2, 3, 7, 50, generator=g, dtype=torch.float64) * 8
        v = torch.randn(2, 3, 50, 4, generator=g, dtype=torch.float64)
        s[:, :, 0] = float("-inf")  # a row that sees no key at all
        part = torch.randint(0, 3, (50,), generator=g)
        acc_out, acc_lse = torch.zeros(2, 3, 7, 4), torch.full((2, 3, 7), float("-inf"))
        for p in range(3):
            sp = torch.where(part == p, s, torch.tensor(float("-inf"), dtype=torch.float64))
            lse = torch.logsumexp(sp, -1)
            out = torch.nan_to_num(torch.softmax(sp, -1), nan=0.0) @ v
            ring.merge_attention_partial(acc_out, acc_lse, out.float(), lse.float())
        want_lse = torch.logsumexp(s, -1)
        want = torch.nan_to_num(torch.softmax(s, -1), nan=0.0) @ v
        self.assertTrue(torch.all(acc_lse[:, :, 0] == float("-inf")))
        self.assertTrue(torch.all(acc_out[:, :, 0] == 0))
        self.assertLess((acc_lse[:, :, 1:] - want_lse[:, :, 1:]).abs().max().item(), 1e-5)
        self.assertLess((acc_out.double() - want).abs().max().item(), 1e-6)

    def test_refuses_bad_accumulators_and_lses(self):
        with self.assertRaisesRegex(ValueError, "float32"):
            ring.merge_attention_partial(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2), torch.zeros(2, 3), torch.zeros(2))
        with self.assertRaisesRegex(ValueError, "NaN or \\+inf"):
            ring.merge_attention_partial(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 3), torch.tensor([0.0, float("nan")]))


def dense_reference(case, q, k, v):
    """float64 attention over the whole sequence from the mods alone (no block tables)."""
    mask_mod, score_mod, spec = mods_of(case["mask"])
    bufs = dict(zip([s[0] for s in spec], buffers_of(case["mask"])))
    n = case["seqLen"]
    pos_q, pos_k = torch.arange(n).view(1, 1, n, 1), torch.arange(n).view(1, 1, 1, n)
    s = (q.double() @ k.double().transpose(-1, -2)) / q.shape[-1] ** 0.5
    if score_mod:
        s = score_mod(s, None, None, pos_q, pos_k)
    s = torch.where(mask_mod(None, None, pos_q, pos_k, **bufs), s, torch.tensor(float("-inf"), dtype=torch.float64))
    return torch.softmax(s, -1) @ v.double(), torch.logsumexp(s, -1)


class ReferenceKernel(unittest.TestCase):
    def test_whole_tables_equal_dense_attention_from_the_mods(self):
        for case in load_fixtures():
            q, k, v = inputs(case)
            out, lse = self._run(case, q, k, v)
            want, want_lse = dense_reference(case, q, k, v)
            self.assertLess((out.double() - want).abs().max().item(), 1e-5, case["mask"]["name"])
            self.assertLess((lse.double() - want_lse).abs().max().item(), 1e-4, case["mask"]["name"])

    @staticmethod
    def _run(case, q, k, v):
        kern = kernel_of(case)
        t = whole_tables(case)
        kw = dict(zip([b[0] for b in kern.BUFFERS], buffers_of(case["mask"])))
        return kern.flex_attention(q, k, v, *t.slice((0, t.num_q_blocks), (0, t.num_kv_blocks)), **kw, return_lse=True)

    def test_world_size_one_equals_the_plain_kernel_bit_for_bit(self):
        for case in load_fixtures():
            q, k, v = inputs(case, seed=5)
            plan = ring.plan_context_parallel(whole_tables(case), 1)
            got, got_lse = ring.ring_flex_attention(q, k, v, *buffers_of(case["mask"]), plan=plan, kernel=kernel_of(case),
                                                    return_lse=True)
            want, want_lse = self._run(case, q, k, v)
            self.assertTrue(torch.equal(got, want), case["mask"]["name"])
            self.assertTrue(torch.equal(got_lse, want_lse), case["mask"]["name"])


class Refusals(unittest.TestCase):
    def test_bad_calls_are_refused_with_what_to_do(self):
        case = load_fixtures()[1]  # document-causal: one captured buffer
        q, k, v = inputs(case)
        kern, bufs = kernel_of(case), buffers_of(case["mask"])
        one = plan_of(case, 1, "auto")
        with self.assertRaisesRegex(ValueError, "no gradient to captured buffers"):
            float_buf = torch.zeros(3, requires_grad=True)
            ring.ring_flex_attention(q.requires_grad_(), k, v, float_buf, plan=one, kernel=kern)
        q = q.detach()
        with self.assertRaisesRegex(ValueError, "shards over 2 rank"):
            ring.ring_flex_attention(q, k, v, *bufs, plan=plan_of(case, 2, "auto"), kernel=kern)
        with self.assertRaisesRegex(ValueError, "capture 1 buffer"):
            ring.ring_flex_attention(q, k, v, plan=one, kernel=kern)
        with self.assertRaisesRegex(ValueError, "cut it with plan.shard"):
            ring.ring_flex_attention(q[:, :, :128], k, v, *bufs, plan=one, kernel=kern)
        other = ring.make_reference_kernel(lambda b, h, q, kv: q >= kv, sparse_block=(32, 32))
        with self.assertRaisesRegex(ValueError, "generated for BlockMask blocks"):
            ring.ring_flex_attention(q, k, v, plan=one, kernel=other)


class SimulatedRing(unittest.TestCase):
    def test_every_rank_in_one_process_equals_single_process_attention(self):
        for case in load_fixtures():
            q, k, v = inputs(case, seed=7)
            single, single_lse = ReferenceKernel._run(case, q, k, v)
            for world_size in (2, 4):
                for strategy in ("auto", *ring.STRATEGIES):
                    plan = plan_of(case, world_size, strategy)
                    out, lse = ring.simulate_ring(q, k, v, *buffers_of(case["mask"]), plan=plan, kernel=kernel_of(case))
                    label = f"{case['mask']['name']} {strategy} over {world_size}"
                    self.assertLess((out - single).abs().max().item(), 2e-6, label)
                    self.assertLess((lse - single_lse).abs().max().item(), 2e-5, label)


def whole_grads(case, q, k, v, dout):
    """dq, dk, dv of single-process attention on the whole sequence, by autograd through the reference kernel."""
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out, _ = ReferenceKernel._run(case, q, k, v)
    (out * dout).sum().backward()
    return q.grad, k.grad, v.grad


class RingBackwardOneRank(unittest.TestCase):
    def test_world_size_one_gradients_equal_autograd_through_the_kernel(self):
        for case in load_fixtures():
            q, k, v = inputs(case, seed=13)
            dout = inputs(case, seed=14)[0]
            plan = ring.plan_context_parallel(whole_tables(case), 1)
            qs, ks, vs = (t.clone().requires_grad_() for t in (q, k, v))
            out = ring.ring_flex_attention(qs, ks, vs, *buffers_of(case["mask"]), plan=plan, kernel=kernel_of(case))
            (out * dout).sum().backward()
            for label, got, want in zip(("dq", "dk", "dv"), (qs.grad, ks.grad, vs.grad), whole_grads(case, q, k, v, dout)):
                self.assertLess((got - want).abs().max().item(), 1e-5 * max(1.0, want.abs().max().item()),
                                f"{case['mask']['name']} {label}")


class SimulatedRingBackward(unittest.TestCase):
    def test_every_rank_in_one_process_gives_single_process_gradients(self):
        for case in load_fixtures():
            q, k, v = inputs(case, seed=13)
            dout = inputs(case, seed=14)[0]
            want = whole_grads(case, q, k, v, dout)
            for world_size, strategy in ((2, "auto"), (4, "striped")):
                got = ring.simulate_ring_backward(q, k, v, dout, *buffers_of(case["mask"]), plan=plan_of(case, world_size, strategy),
                                                  kernel=kernel_of(case))
                for name, g, w in zip(("dq", "dk", "dv"), got, want):
                    label = f"{case['mask']['name']} {strategy} over {world_size}: {name}"
                    self.assertLess((g - w).abs().max().item(), 1e-5 * max(1.0, w.abs().max().item()), label)


class RingBackwardOverGloo(unittest.TestCase):
    def test_ring_gradients_equal_single_process_gradients(self):
        cases = load_fixtures()
        for world_size, strategy in ((2, "auto"), (4, "zigzag")):
            ranks = _spawn_ring(_backward_job, world_size, strategy, cases)
            for i, case in enumerate(cases):
                plan = plan_of(case, world_size, strategy)
                q, k, v = inputs(case, seed=13)
                want = whole_grads(case, q, k, v, inputs(case, seed=14)[0])
                for j, name in enumerate(("dq", "dk", "dv")):
                    got = plan.unshard([r[i][name] for r in ranks])
                    label = f"{case['mask']['name']} {strategy} over {world_size}: {name}"
                    self.assertTrue(torch.isfinite(got).all(), label)
                    self.assertLess((got - want[j]).abs().max().item(), 1e-5 * max(1.0, want[j].abs().max().item()), label)


def plan_of(case, world_size, strategy):
    tables = whole_tables(case)
    if strategy == "auto":
        return ring.plan_context_parallel(tables, world_size, stripes_per_rank=case["stripesPerRank"])
    layout = ring.shard_layout(strategy, case["seqLen"], world_size, tuple(case["blockSize"]), case["stripesPerRank"])
    return ring.plan_for_layout(tables, layout)


def _spawn_ring(job, world_size, strategy, cases):
    """job(case, plan, rank) on every rank of a gloo group, for every case (one group for all, so one spawn per world
    size); returns each rank's list of results."""
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_ring_worker, args=(world_size, os.path.join(d, "init"), cases, strategy, d, job), nprocs=world_size)
        return [torch.load(os.path.join(d, f"rank{r}.pt")) for r in range(world_size)]


def _ring_worker(rank, world_size, init_file, cases, strategy, out_dir, job):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.save([job(case, plan_of(case, world_size, strategy), rank) for case in cases], os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _forward_job(case, plan, rank):
    q, k, v = inputs(case, seed=11)
    out, lse = ring.ring_flex_attention(plan.shard(q, rank), plan.shard(k, rank), plan.shard(v, rank),
                                        *buffers_of(case["mask"]), plan=plan, kernel=kernel_of(case), return_lse=True)
    return {"out": out, "lse": lse, "strategy": plan.layout.strategy}


def _backward_job(case, plan, rank):
    """loss.backward() through the ring; this rank's shard gradients."""
    q, k, v = inputs(case, seed=13)
    dout = inputs(case, seed=14)[0]
    qs, ks, vs = (plan.shard(t, rank).clone().requires_grad_() for t in (q, k, v))
    out = ring.ring_flex_attention(qs, ks, vs, *buffers_of(case["mask"]), plan=plan, kernel=kernel_of(case))
    (out * plan.shard(dout, rank)).sum().backward()
    return {"dq": qs.grad, "dk": ks.grad, "dv": vs.grad}


class RingOverGloo(unittest.TestCase):
    def test_ring_equals_single_process_attention(self):
        cases = load_fixtures()
        for world_size, strategy in ((2, "auto"), (4, "auto"), (4, "contiguous"), (2, "striped")):
            ranks = _spawn_ring(_forward_job, world_size, strategy, cases)
            for i, case in enumerate(cases):
                label = f"{case['mask']['name']} {strategy} over {world_size}"
                plan = plan_of(case, world_size, strategy)
                parts = [r[i] for r in ranks]
                self.assertTrue(all(p["strategy"] == plan.layout.strategy for p in parts), label)
                out, lse = plan.unshard([p["out"] for p in parts]), plan.unshard([p["lse"] for p in parts])
                q, k, v = inputs(case, seed=11)
                single, single_lse = ReferenceKernel._run(case, q, k, v)
                want, _ = dense_reference(case, q, k, v)
                self.assertEqual(out.shape, single.shape)
                self.assertTrue(torch.isfinite(lse).all(), label)  # every row written (each sees itself)
                self.assertLess((out - single).abs().max().item(), 2e-6, label)
                self.assertLess((lse - single_lse).abs().max().item(), 2e-5, label)
                self.assertLess((out.double() - want).abs().max().item(), 1e-5, label)
                if case["mask"]["name"] == "causal" and strategy == "auto":
                    self.assertNotEqual(plan.layout.strategy, "contiguous", label)


if __name__ == "__main__":
    FIXTURES = sys.argv.pop(1)
    unittest.main(verbosity=2)
