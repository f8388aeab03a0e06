"""The performance protocol on the device: the modules the public `compile` generated
(src/triton-generate.ts) vs PyTorch's flex_attention (torch.compile), side by side in one process.
Per entry three figures, each the median over interleaved rounds of triton.testing.do_bench medians:

  flex     flex_attention with create_block_mask's BlockMask (the anchor);
  untuned  our module's flex_attention as a user first calls it: the config the module resolves
           without tuning (the pick shipped for this GPU where there is one, else its default);
  tuned    after the module's own tune() on the same tensors (its wall time reported as tuning
           seconds), the call resolving the pick from the tuning cache.

Nothing here builds a config or a loop form: the module reads both itself. run.py points the tuning
cache at a fresh folder under $OUT, so no earlier run's picks leak in.
"""
import json
import os
import statistics
import time
import warnings

import torch
from triton.testing import do_bench

from common import GENERATED, buffers_from, load_module, tables_from

BENCH = os.path.join(GENERATED, "bench")
VARIANTS = ["noop", "causal", "sliding_window_1024", "prefix_lm", "document_causal", "alibi_causal", "softcap_causal"]


def bench_ms(fn):
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def flex_mods(variant, N, H, bufs):
    """Idiomatic PyTorch mods with exactly our masks' semantics (prefix-LM: kv < N/4)."""
    W, prefix = 1024, N // 4
    doc = bufs.get("mask_docIds")
    slopes = bufs.get("score_alibiSlopes")

    def causal(b, h, q, kv):
        return q >= kv

    def window(b, h, q, kv):
        return (q >= kv) & (q - kv <= W)

    def prefix_lm(b, h, q, kv):
        return (kv < prefix) | (q >= kv)

    def document_causal(b, h, q, kv):
        return (doc[q] == doc[kv]) & (q >= kv)

    def alibi(s, b, h, q, kv):
        return s + slopes[h] * (kv - q)

    def softcap(s, b, h, q, kv):
        return 30.0 * torch.tanh(s / 30.0)

    return {
        "noop": (None, None), "causal": (causal, None), "sliding_window_1024": (window, None),
        "prefix_lm": (prefix_lm, None), "document_causal": (document_causal, None),
        "alibi_causal": (causal, alibi), "softcap_causal": (causal, softcap), "softcap_causal_approx": (causal, softcap),
    }[variant]


def same_tables(bm, tables):
    """Whether PyTorch's create_block_mask found the same blocks as our createBlockMask (indices
    past each row's count are padding and may differ)."""
    def valid(num, idx):
        steps = torch.arange(idx.shape[-1], device=idx.device)
        return torch.where(steps < num[..., None], idx, -1)
    ours = (tables[0], valid(tables[0], tables[1]), tables[2], valid(tables[2], tables[3]))
    theirs = (bm.kv_num_blocks, valid(bm.kv_num_blocks, bm.kv_indices),
              bm.full_kv_num_blocks, valid(bm.full_kv_num_blocks, bm.full_kv_indices))
    return all(torch.equal(a.int(), b.int()) for a, b in zip(ours, theirs))


class Bench:
    def __init__(self, log, deadline):
        self.log = log
        self.deadline = deadline
        self.dev = torch.device("cuda")
        self.entries = json.load(open(os.path.join(BENCH, "bench.json")))["entries"]
        self.modules = {}
        self.inputs = {}
        self.flex_runs = {}  # (variant, N, D) -> (fn, out, info): flex is timed once per mod, approx or not
        torch._dynamo.config.cache_size_limit = 1000
        try:
            torch._dynamo.config.recompile_limit = 1000
        except Exception:
            pass
        from torch.nn.attention.flex_attention import flex_attention
        self.flex = torch.compile(flex_attention, dynamic=False)

    def module(self, name):
        if name not in self.modules:
            self.modules[name] = load_module(os.path.join(BENCH, name))
        return self.modules[name]

    def qkv(self, e):
        key = (e["B"], e["H"], e["N"], e["D"])
        if key not in self.inputs:
            self.inputs.clear()
            self.flex_runs.clear()
            torch.cuda.empty_cache()
            g = torch.Generator(device=self.dev).manual_seed(0)
            self.inputs[key] = [torch.randn(key, generator=g, device=self.dev, dtype=torch.bfloat16) for _ in range(3)]
        return self.inputs[key]

    def data(self, e):
        j = json.load(open(os.path.join(BENCH, "tables", e["tables"])))
        return tables_from(j["tables"], self.dev), buffers_from(j["buffers"], self.dev)

    def flex_run(self, e, variant):
        key = (variant, e["N"], e["D"])
        if key not in self.flex_runs:
            from torch.nn.attention.flex_attention import create_block_mask
            q, k, v = self.qkv(e)
            tables, bufs = self.data(e)
            mm, sm = flex_mods(variant, e["N"], e["H"], bufs)
            t0 = time.time()
            bm = create_block_mask(mm, None, None, e["N"], e["N"], device=self.dev) if mm else None
            fn = lambda: self.flex(q, k, v, score_mod=sm, block_mask=bm)  # noqa: E731
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = fn()
                torch.cuda.synchronize()
            info = dict(compile_s=round(time.time() - t0, 1), tables_match=None if bm is None else same_tables(bm, tables))
            self.flex_runs[key] = (fn, out, info)
        return self.flex_runs[key]

    def record(self, e, impl, ms, **extra):
        dense = 4 * e["B"] * e["H"] * e["N"] ** 2 * e["D"]
        rec = dict(impl=impl, variant=e["variant"], N=e["N"], B=e["B"], H=e["H"], D=e["D"], ms=ms,
                   density=e["density"], tflops=dense * e["density"] / ms / 1e9, **extra)
        self.log(json.dumps(rec))
        return rec

    def run_entry(self, e, rounds=3):
        """flex (compile + first run), our untuned call, our tune(), then `rounds` interleaved timings of the three."""
        mod = self.module(e["module"])
        q, k, v = self.qkv(e)
        tables, bufs = self.data(e)
        flex_variant = "softcap_causal" if e["variant"] == "softcap_causal_approx" else e["variant"]
        flex_fn, flex_out, flex_info = self.flex_run(e, flex_variant)

        t0 = time.time()
        untuned_out = mod.flex_attention(q, k, v, *tables, **bufs, autotune=False)
        torch.cuda.synchronize()
        untuned = mod.last_config()
        first_call_s = time.time() - t0
        t0 = time.time()
        mod.tune(q, k, v, *tables, **bufs)
        tuning_s = time.time() - t0
        timings = mod.last_config().get("timings", {})
        tuned_out = mod.flex_attention(q, k, v, *tables, **bufs)
        tuned = mod.last_config()
        if tuned["source"] != "cache":
            raise RuntimeError(f"after tune() the call resolved its config from {tuned['source']}, not the cache")

        # The untuned figure re-runs the config the module resolved untuned (the cache now holds the tuned pick).
        untuned_fn = lambda: mod.flex_attention(q, k, v, *tables, **bufs, config=untuned["config"])  # noqa: E731
        tuned_fn = lambda: mod.flex_attention(q, k, v, *tables, **bufs)  # noqa: E731
        t = {"flex": [], "untuned": [], "tuned": []}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(rounds):
                t["flex"].append(bench_ms(flex_fn))
                t["untuned"].append(bench_ms(untuned_fn))
                t["tuned"].append(bench_ms(tuned_fn))
        med = {key: statistics.median(vals) for key, vals in t.items()}
        rows = []
        if flex_variant == e["variant"]:
            rows.append(self.record(e, "flex", med["flex"], rounds=t["flex"], **flex_info))
        agree = lambda out: float((out.float() - flex_out.float()).abs().max())  # noqa: E731
        rows.append(self.record(
            e, "ours", med["tuned"], rounds=t["tuned"], flex_ms=med["flex"],
            config=tuned["config"], untuned_ms=med["untuned"], untuned_rounds=t["untuned"], untuned_config=untuned["config"],
            untuned_source=untuned["source"], tuning_s=round(tuning_s, 1), first_call_s=round(first_call_s, 1),
            loop_forms=[mod.loop_form(tables[0], tables[1]), mod.loop_form(tables[2], tables[3])],
            device=tuned["device"], bucket=tuned["bucket"], structure=mod.STRUCTURE, timings=timings,
            untuned_max_abs_vs_flex=agree(untuned_out), max_abs_vs_flex=agree(tuned_out)))
        return rows

    def run_entries(self, entries, min_left_s=45):
        rows = []
        for e in entries:
            if self.deadline - time.time() < min_left_s:
                self.log(json.dumps(dict(skipped=f'{e["variant"]} D{e["D"]} N{e["N"]}', reason="budget")))
                continue
            try:
                rows += self.run_entry(e)
            except Exception as ex:
                self.log(json.dumps(dict(variant=e["variant"], N=e["N"], D=e["D"], error=repr(ex)[:500])))
        return rows
