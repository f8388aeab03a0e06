"""The performance protocol on the device: our generated Triton kernels vs PyTorch's
flex_attention (torch.compile) side by side in one process, plus numerical error against a
float64 reference (small N) for both. Entries with a `tmaModule` (the same kernel generated with
the `tma` option) also get an "ours tma" figure: its fastest candidate config, timed in the same
interleaved rounds."""
import json
import math
import os
import statistics
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import torch
import triton
from triton.testing import do_bench

from common import GENERATED, buffers_from, load_module, max_rel_error, tables_from, warm_only

BENCH = os.path.join(GENERATED, "bench")


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


def reference_b0(q, k, v, mask_mod, score_mod, scale):
    """Float64 attention for batch 0, all heads, with the mods applied densely."""
    H, N, _ = q.shape[1:]
    s = torch.einsum("hqd,hkd->hqk", q[0].double(), k[0].double()) * scale
    b = torch.zeros((), dtype=torch.int64, device=q.device)
    h = torch.arange(H, device=q.device)[:, None, None]
    qi = torch.arange(N, device=q.device)[None, :, None]
    kv = torch.arange(N, device=q.device)[None, None, :]
    if score_mod is not None:
        s = score_mod(s, b, h, qi, kv).double()
    if mask_mod is not None:
        s = s.masked_fill(~mask_mod(b, h, qi, kv).expand_as(s), float("-inf"))
    p = torch.softmax(s, dim=-1)
    return torch.einsum("hqk,hkd->hqd", p, v[0].double())


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


def rel_fro(got, ref):
    return float((got.double() - ref).norm() / ref.norm())


class Bench:
    def __init__(self, log, deadline):
        self.log = log
        self.deadline = deadline
        self.dev = torch.device("cuda")
        manifest = json.load(open(os.path.join(BENCH, "bench.json")))
        self.entries = manifest["entries"]
        self.modules = {}
        self.inputs = {}
        self.flex_out = {}
        self.flex_fns = {}
        self.flex_info = {}
        torch._dynamo.config.cache_size_limit = 1000
        try:
            torch._dynamo.config.recompile_limit = 1000
        except Exception:
            pass
        from torch.nn.attention.flex_attention import flex_attention
        self.flex = torch.compile(flex_attention, dynamic=False)
        self.tma = True  # time entries' tmaModule too (run.py --no-tma turns it off)

    def time_left(self):
        return self.deadline - time.time()

    def module(self, name):
        if name not in self.modules:
            self.modules[name] = load_module(os.path.join(BENCH, name))
        return self.modules[name]

    def qkv(self, e):
        key = (e["B"], e["H"], e["N"], e["D"])
        if key not in self.inputs:
            self.inputs.clear()
            self.flex_out = {}  # flex outputs are kept per (N, D) for the error and agreement columns
            self.flex_fns = {}
            self.flex_info = {}
            torch.cuda.empty_cache()
            g = torch.Generator(device=self.dev).manual_seed(0)
            self.inputs[key] = [torch.randn(key, generator=g, device=self.dev, dtype=torch.bfloat16) for _ in range(3)]
        return self.inputs[key]

    def data(self, e):
        j = json.load(open(os.path.join(BENCH, "tables", e["tables"])))
        return tables_from(j["tables"], self.dev), buffers_from(j["buffers"], self.dev)

    def ours(self, e, config=None):
        mod = self.module(e["module"])
        q, k, v = self.qkv(e)
        tables, bufs = self.data(e)
        saved = mod.CONFIG
        if config:
            mod.CONFIG = dict(BLOCK_M=config[0], BLOCK_N=config[1], num_warps=config[2], num_stages=config[3])
        try:
            fn = lambda: mod.flex_attention(q, k, v, *tables, **bufs)
            out = fn()
            torch.cuda.synchronize()
            return bench_ms(fn), out, mod.CONFIG
        finally:
            mod.CONFIG = saved

    def tma_module(self, e):
        """The entry's TMA module name, or None when it has none or TMA timing is off."""
        return e.get("tmaModule") if self.tma else None

    def precompile(self, jobs):
        """Compile many (entry, config[, module]) kernels in parallel threads (Triton's AsyncCompileMode);
        the module defaults to the entry's pointer module."""
        t0 = time.time()
        try:
            with triton.AsyncCompileMode(ThreadPoolExecutor(16)):
                for e, config, *name in jobs:
                    mod = self.module(name[0] if name else e["module"])
                    saved = mod.CONFIG
                    if config:
                        mod.CONFIG = dict(BLOCK_M=config[0], BLOCK_N=config[1], num_warps=config[2], num_stages=config[3])
                    try:
                        q, k, v = self.qkv(e)
                        tables, bufs = self.data(e)
                        with warm_only(mod):
                            mod.flex_attention(q, k, v, *tables, **bufs)
                    finally:
                        mod.CONFIG = saved
        except Exception as ex:
            self.log(json.dumps(dict(precompile_error=repr(ex)[:300])))
        self.log(json.dumps(dict(precompiled=len(jobs), seconds=round(time.time() - t0, 1))))

    def flex_run(self, e):
        from torch.nn.attention.flex_attention import create_block_mask
        q, k, v = self.qkv(e)
        tables, bufs = self.data(e)
        mm, sm = flex_mods(e["variant"], e["N"], e["H"], bufs)
        t0 = time.time()
        bm = create_block_mask(mm, None, None, e["N"], e["N"], device=self.dev) if mm else None
        same = None if bm is None else same_tables(bm, tables)
        fn = lambda: self.flex(q, k, v, score_mod=sm, block_mask=bm)
        self.flex_fns[(e["variant"], e["N"], e["D"])] = fn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn()
            torch.cuda.synchronize()
            compile_s = time.time() - t0
            return None, out, dict(compile_s=round(compile_s, 1), tables_match=same)

    def record(self, e, impl, ms, **extra):
        dense = 4 * e["B"] * e["H"] * e["N"] ** 2 * e["D"]
        rec = dict(impl=impl, variant=e["variant"], N=e["N"], B=e["B"], H=e["H"], D=e["D"], ms=ms,
                   density=e["density"], tflops=dense * e["density"] / ms / 1e9, **extra)
        self.log(json.dumps(rec))
        return rec

    def ours_fn(self, e, config, module=None):
        """A callable running our kernel for entry e (its pointer module unless `module` names another)
        with a given config (set on every call)."""
        mod = self.module(module or e["module"])
        q, k, v = self.qkv(e)
        tables, bufs = self.data(e)
        cfg = dict(BLOCK_M=config[0], BLOCK_N=config[1], num_warps=config[2], num_stages=config[3])

        def fn():
            mod.CONFIG = cfg
            return mod.flex_attention(q, k, v, *tables, **bufs)
        return fn, cfg

    def candidates(self, e, module, label):
        """Time each candidate config of `module` once; returns the fastest config. A config that fails
        (e.g. out of shared memory) is logged and skipped; the default config must work."""
        cands = []
        for i, c in enumerate(e["candidates"]):
            fn, cfg = self.ours_fn(e, c, module)
            try:
                fn()
                torch.cuda.synchronize()
                ms = bench_ms(fn)
            except Exception as ex:
                if i == 0:
                    raise
                self.log(json.dumps(dict(impl=label, variant=e["variant"], N=e["N"], D=e["D"], config=cfg,
                                         error=repr(ex)[:300])))
                continue
            cands.append((ms, c))
            self.log(json.dumps(dict(impl=label, variant=e["variant"], N=e["N"], D=e["D"], ms=ms, config=cfg)))
        return min(cands, key=lambda t: t[0])[1]

    def run_entries(self, entries, with_flex=True, errors=False, rounds=3):
        """Per entry: flex (compile + first run), our candidate configs once each (and those of the TMA
        module), then `rounds` interleaved timings of flex, our default config, our fastest candidate
        and the fastest TMA candidate; each figure reported is the median over the rounds (clock drift
        hits them all alike)."""
        rows = []
        jobs = [(e, c) for e in entries for c in e["candidates"]]
        jobs += [(e, c, self.tma_module(e)) for e in entries if self.tma_module(e) for c in e["candidates"]]
        self.precompile(jobs)
        for e in entries:
            if self.time_left() < 20:
                self.log(json.dumps(dict(skipped=f'{e["variant"]} D{e["D"]} N{e["N"]}', reason="deadline")))
                continue
            try:
                self.qkv(e)
                fkey = ("softcap_causal" if e["variant"] == "softcap_causal_approx" else e["variant"], e["N"], e["D"])
                if with_flex and fkey not in self.flex_out:
                    fe = dict(e, variant=fkey[0])
                    _, fout, info = self.flex_run(fe)
                    self.flex_out[fkey] = fout
                    self.flex_info[fkey] = info
                best = self.candidates(e, None, "ours-candidate")
                default_fn, default_cfg = self.ours_fn(e, e["candidates"][0])
                best_fn, best_cfg = self.ours_fn(e, best)
                tma_name = self.tma_module(e)
                tma_fn = None
                if tma_name:
                    try:  # a failing TMA module must not cost the entry its other figures
                        tma_best = self.candidates(e, tma_name, "ours-tma-candidate")
                        tma_fn, tma_cfg = self.ours_fn(e, tma_best, tma_name)
                    except Exception as ex:
                        self.log(json.dumps(dict(variant=e["variant"], N=e["N"], D=e["D"], tma_error=repr(ex)[:500])))
                flex_fn = self.flex_fns.get(fkey)
                t = {"flex": [], "default": [], "best": [], "tma": []}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for _ in range(rounds):
                        if flex_fn:
                            t["flex"].append(bench_ms(flex_fn))
                        t["default"].append(bench_ms(default_fn))
                        t["best"].append(bench_ms(best_fn))
                        if tma_fn:
                            t["tma"].append(bench_ms(tma_fn))
                med = {k2: statistics.median(v2) if v2 else None for k2, v2 in t.items()}
                if flex_fn and fkey[0] == e["variant"]:
                    rows.append(self.record(dict(e, variant=fkey[0]), "flex", med["flex"], rounds=t["flex"], **self.flex_info[fkey]))
                out = best_fn()
                rec = dict(config=best_cfg, default_config=default_cfg, default_ms=med["default"], rounds=t["best"],
                           default_rounds=t["default"], flex_ms=med["flex"])
                if tma_fn:
                    tma_out = tma_fn()
                    q, k, v = self.qkv(e)
                    tma_mod = self.module(tma_name)
                    tma_mod.CONFIG = tma_cfg
                    # tma_used: whether the launcher took the descriptor path (else it fell back to pointers).
                    rec.update(tma_ms=med["tma"], tma_config=tma_cfg, tma_rounds=t["tma"],
                               tma_used=bool(tma_mod.uses_tma(q, k, v)),
                               tma_max_abs_vs_ours=float((tma_out.float() - out.float()).abs().max()))
                    if fkey in self.flex_out:
                        rec["tma_max_abs_vs_flex"] = float((tma_out.float() - self.flex_out[fkey].float()).abs().max())
                    if errors:
                        te = self.errors(e, tma_out, None)
                        rec.update(tma_err_max=te["err_max"], tma_err_fro=te["err_fro"])
                if fkey in self.flex_out:
                    rec["max_abs_vs_flex"] = float((out.float() - self.flex_out[fkey].float()).abs().max())
                if errors:
                    rec.update(self.errors(e, out, self.flex_out.get(fkey)))
                rows.append(self.record(e, "ours", med["best"], **rec))
            except Exception as ex:
                self.log(json.dumps(dict(variant=e["variant"], N=e["N"], D=e["D"], error=repr(ex)[:500])))
        return rows

    def errors(self, e, out, fout):
        q, k, v = self.qkv(e)
        _, bufs = self.data(e)
        mm, sm = flex_mods(e["variant"], e["N"], e["H"], bufs)
        ref = reference_b0(q, k, v, mm, sm, 1.0 / math.sqrt(e["D"]))
        res = {"err_max": max_rel_error(out[0].float().cpu(), ref.cpu())[0], "err_fro": rel_fro(out[0], ref)}
        if fout is not None:
            res["flex_err_max"] = max_rel_error(fout[0].float().cpu(), ref.cpu())[0]
            res["flex_err_fro"] = rel_fro(fout[0], ref)
        return res

    def sweep(self, entries, configs):
        jobs = [(e, c) for e in entries for c in configs[e["D"]]]
        self.precompile(jobs)
        rows = []
        for e, c in jobs:
            if self.time_left() < 30:
                break
            try:
                ms, _, cfg = self.ours(e, c)
                rows.append(self.record(e, "ours-sweep", ms, config=cfg))
            except Exception as ex:
                self.log(json.dumps(dict(variant=e["variant"], config=c, error=repr(ex)[:300])))
        return rows
