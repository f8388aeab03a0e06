"""The Triton backward on the device (modules from src/triton-backward-generate.ts, in generated-bwd/):

  conformance  every backward conformance case through the module's autograd path (flex_attention(...) then
               torch.autograd.grad) vs the float64 reference gradients written by the generator; PyTorch's eager
               flex_attention backward on the same tensors for comparison;
  compare      bf16 mods at N = 1024 (GQA 4:2, d 64): our gradients and torch flex_attention's (eager) against a
               float64 dense autograd reference on the same tensors, learnable bias tables included;
  determinism  two backward runs per mod with a learnable table: bitwise equal gradients (ours; flex's reported);
  bench        N = 16k, 16 heads, bf16 (d = 128; the bucket bias also at d = 64): forward+backward time, ours vs
               torch.compile(flex_attention), each the median of interleaved triton.testing.do_bench medians;
  candidates   the backward config candidates of the --sweep entries (research: set_backward_config);
  tune         per bench entry, forward+backward before and after the module's own tune_backward().

    python3 apps/bench/device/triton/backward.py [--budget-s 270] [--phases conformance,compare,determinism,bench] [--root DIR]

Writes triton-bwd.{log,json,md} to $OUT. Each phase and entry checks the deadline before it starts.
"""
import argparse
import gc
import json
import math
import os
import signal
import statistics
import sys
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.testing import do_bench  # noqa: E402

from common import buffers_from, decode, load_module, tables_from, tensor_from, torch_mod  # noqa: E402

ROOT = os.path.join(HERE, "generated-bwd")  # --root replaces it (e.g. another commit's generation, for an A/B run)
ENTRY_BY_ENTRY = False  # --entry-by-entry: modules take their pre-Triton-3.3 path (no tl.gather) for q − kv tables
OUT = os.environ.get("OUT", "/tmp/triton-bwd-out")
BF16_TOL = 2e-2  # BACKWARD_TOLERANCE.bf16 of the template


def load(path):
    mod = load_module(path)
    if ENTRY_BY_ENTRY:
        mod._HAS_GATHER = False  # read by the launcher at each call
    return mod


def rel_err(got, ref, scale=None):
    """max |got - ref| / max |scale| (scale defaults to ref), and how many elements are NaN in one but not the other."""
    got, ref = got.detach().double().flatten().cpu(), ref.detach().double().flatten().cpu()
    scale = ref if scale is None else scale.double().flatten().cpu()
    bad = int((torch.isnan(got) != torch.isnan(ref)).sum())
    ok = ~(torch.isnan(got) | torch.isnan(ref))
    m = float(scale[torch.isfinite(scale)].abs().max()) if scale.numel() else 0.0
    err = float((got - ref).abs()[ok].max()) / max(m, 1e-6) if ok.any() else 0.0
    return err, bad


def leaf(t, grad=True):
    return t.detach().requires_grad_(grad)


def flex_eager(q, k, v, tables, block_size, mask, score, scale, Lq, Lkv, gqa):
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
    bm = BlockMask.from_kv_blocks(*tables, BLOCK_SIZE=block_size, mask_mod=mask, seq_lengths=(Lq, Lkv))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flex_attention(q, k, v, score_mod=score, block_mask=bm, scale=scale, enable_gqa=gqa)


class Run:
    def __init__(self, budget_s, bench_only=(), bench_min_s=60):
        self.bench_only, self.bench_min_s = bench_only, bench_min_s
        self.start = time.time()
        self.deadline = self.start + budget_s
        self.dev = torch.device("cuda")
        os.makedirs(OUT, exist_ok=True)
        self.logf = open(os.path.join(OUT, "triton-bwd.log"), "w")
        self.result = dict(env=dict(torch=torch.__version__, triton=triton.__version__, gpu=torch.cuda.get_device_name(),
                                    command=" ".join(["python3"] + sys.argv)),
                           conformance=[], compare=[], determinism=[], bench=[], tune=[], candidates=[], skipped=[])
        self.log(json.dumps(self.result["env"]))
        torch._dynamo.config.cache_size_limit = 1000
        try:
            torch._dynamo.config.recompile_limit = 1000
        except Exception:
            pass

    def left(self):
        return self.deadline - time.time()

    def log(self, line):
        print(line, flush=True)
        self.logf.write(line + "\n")
        self.logf.flush()

    def add(self, phase, rec):
        self.result[phase].append(rec)
        self.log(json.dumps(dict(phase=phase, **rec)))
        self.save()

    def save(self):
        self.result["elapsed_s"] = round(time.time() - self.start, 1)
        with open(os.path.join(OUT, "triton-bwd.json"), "w") as f:
            json.dump(self.result, f, indent=1)

    def skip(self, what, need_s):
        if self.left() < need_s:
            self.result["skipped"].append(dict(what=what, reason=f"budget ({self.left():.0f} s left)"))
            self.log(json.dumps(dict(skipped=what)))
            return True
        return False

    # ---- conformance ----

    def conformance(self):
        root = os.path.join(ROOT, "conformance")
        for c in json.load(open(os.path.join(root, "index.json"))):
            if "skipped" in c:
                self.add("conformance", dict(name=c["name"], skipped=c["skipped"]))
                continue
            if self.skip(f"conformance {c['name']}", 20):
                continue
            try:
                self.add("conformance", self.conformance_case(os.path.join(root, c["file"] + ".json")))
            except Exception as e:
                self.add("conformance", dict(name=c["name"], **{"pass": False}, error=repr(e)[:500],
                                             trace=traceback.format_exc()[-1500:]))

    def conformance_case(self, path):
        case = json.load(open(path))
        p, dev = case["problem"], self.dev
        mod = load(os.path.join(os.path.dirname(path), case["module"]))
        q, k, v = (leaf(tensor_from(case[n], dev)) for n in ("q", "k", "v"))
        dout = tensor_from(case["dout"], dev)
        tables = tables_from(case["tables"], dev)
        bufs = buffers_from(case["buffers"], dev)
        grad_names = [g["name"] for g in case["ref"]["buffers"]]
        for n in grad_names:
            bufs[n] = leaf(bufs[n])
        inputs = [q, k, v, *(bufs[n] for n in grad_names)]
        kw = dict(scale=p["scale"], q_offset=p["qOffset"], kv_offset=p["kvOffset"], return_lse=False)

        def ours():
            out = mod.flex_attention(q, k, v, *tables, **bufs, **kw)
            return torch.autograd.grad(out, inputs, dout)

        t0 = time.time()
        g1 = ours()
        torch.cuda.synchronize()
        seconds = time.time() - t0
        g2 = ours()
        B, Hq, Hkv, Lq, Lkv, Dqk, Dv = (p[x] for x in ("batch", "qHeads", "kvHeads", "qLen", "kvLen", "qkHeadDim", "vHeadDim"))
        ref = dict(dq=decode(case["ref"]["dq"], "f64").view(B, Hq, Lq, Dqk), dk=decode(case["ref"]["dk"], "f64").view(B, Hkv, Lkv, Dqk),
                   dv=decode(case["ref"]["dv"], "f64").view(B, Hkv, Lkv, Dv))
        rec = dict(name=case["name"], dtype=p["dtype"], seed=case["seed"], tol=case["tolerance"], seconds=round(seconds, 2))
        bad = 0
        for i, n in enumerate(("dq", "dk", "dv")):
            rec[n], b = rel_err(g1[i], ref[n])
            bad += b
        rec["buffers"] = {}
        for i, g in enumerate(case["ref"]["buffers"]):
            err, b = rel_err(g1[3 + i], decode(g["grad"], "f64"), decode(g["absSum"], "f64"))
            rec["buffers"][g["name"]] = err
            bad += b
        rec["bad"] = bad
        rec["deterministic"] = all(torch.equal(a, b) for a, b in zip(g1, g2))
        worst = max([rec["dq"], rec["dk"], rec["dv"], *rec["buffers"].values()])
        rec["pass"] = bad == 0 and worst <= case["tolerance"] and rec["deterministic"]
        try:  # PyTorch's flex_attention backward (eager) on the same tensors, vs the same reference
            mask = torch_mod(case["torch"]["mask"], bufs, p["qOffset"], p["kvOffset"], dev)
            score = torch_mod(case["torch"]["score"], bufs, p["qOffset"], p["kvOffset"], dev)
            out = flex_eager(q, k, v, tables, tuple(case["tables"]["blockSize"]), mask, score, p["scale"], Lq, Lkv, Hq != Hkv)
            fg = torch.autograd.grad(out, inputs, dout)
            rec["flex"] = {n: rel_err(fg[i], ref[n])[0] for i, n in enumerate(("dq", "dk", "dv"))}
            for i, g in enumerate(case["ref"]["buffers"]):
                rec["flex"][g["name"]] = rel_err(fg[3 + i], decode(g["grad"], "f64"), decode(g["absSum"], "f64"))[0]
        except Exception as e:
            rec["flex_error"] = repr(e)[:300]
        return rec

    # ---- bf16 comparison with flex and a float64 reference ----

    def entry(self, sub, name):
        j = json.load(open(os.path.join(ROOT, sub, name + ".json")))
        mod = load(os.path.join(ROOT, sub, j["module"]))
        tables = tables_from(j["tables"], self.dev)
        bufs = buffers_from(j["buffers"], self.dev)
        for n in j["gradBuffers"]:
            bufs[n] = leaf(bufs[n])
        g = torch.Generator(device=self.dev).manual_seed(0)
        rnd = lambda *s: torch.randn(s, generator=g, device=self.dev, dtype=torch.bfloat16)  # noqa: E731
        B, Hq, Hkv, N, D = j["B"], j["Hq"], j["Hkv"], j["N"], j["D"]
        q, k, v = leaf(rnd(B, Hq, N, D)), leaf(rnd(B, Hkv, N, D)), leaf(rnd(B, Hkv, N, D))
        dout = rnd(B, Hq, N, D)
        return j, mod, tables, bufs, q, k, v, dout

    def dense_reference(self, j, q, k, v, dout, bufs):
        """float64 dense attention with the rendered mods, differentiated by autograd."""
        B, Hq, Hkv, N = j["B"], j["Hq"], j["Hkv"], j["N"]
        dbufs = {n: leaf(t.detach().double() if t.dtype == torch.float32 else t, t.dtype == torch.float32 and n in j["gradBuffers"])
                 for n, t in bufs.items()}
        mask = torch_mod(j["torch"]["mask"], dbufs, 0, 0, self.dev)
        score = torch_mod(j["torch"]["score"], dbufs, 0, 0, self.dev)
        q64, k64, v64 = (leaf(t.detach().double()) for t in (q, k, v))
        rep = Hq // Hkv
        kk, vv = k64.repeat_interleave(rep, 1), v64.repeat_interleave(rep, 1)
        s = q64 @ kk.transpose(-1, -2) * j["scale"]
        b = torch.arange(B, device=self.dev).view(B, 1, 1, 1)
        h = torch.arange(Hq, device=self.dev).view(1, Hq, 1, 1)
        qi = torch.arange(N, device=self.dev).view(1, 1, N, 1)
        ki = torch.arange(N, device=self.dev).view(1, 1, 1, N)
        if score is not None:
            s = score(s, b, h, qi, ki)
        if mask is not None:
            s = s.masked_fill(~mask(b, h, qi, ki).expand_as(s), float("-inf"))
        m = s.detach().amax(-1, keepdim=True)
        m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
        e = torch.exp(s - m)
        l = e.sum(-1, keepdim=True)
        out = (e / torch.where(l == 0, torch.ones_like(l), l)) @ vv
        inputs = [q64, k64, v64, *(dbufs[n] for n in j["gradBuffers"])]
        return torch.autograd.grad(out, inputs, dout.double())

    def compare(self):
        for name in json.load(open(os.path.join(ROOT, "compare", "index.json"))):
            if self.skip(f"compare {name}", 30):
                continue
            try:
                self.add("compare", self.compare_one(name))
            except Exception as e:
                self.add("compare", dict(name=name, **{"pass": False}, error=repr(e)[:500], trace=traceback.format_exc()[-1500:]))

    def compare_one(self, name):
        j, mod, tables, bufs, q, k, v, dout = self.entry("compare", name)
        inputs = [q, k, v, *(bufs[n] for n in j["gradBuffers"])]
        labels = ["dq", "dk", "dv", *j["gradBuffers"]]
        out = mod.flex_attention(q, k, v, *tables, **bufs, return_lse=False)
        ours = torch.autograd.grad(out, inputs, dout)
        ref = self.dense_reference(j, q, k, v, dout, bufs)
        rec = dict(name=name, N=j["N"], Hq=j["Hq"], Hkv=j["Hkv"], D=j["D"], ours={}, flex={}, ours_vs_flex={})
        bad = 0
        for i, n in enumerate(labels):
            rec["ours"][n], b = rel_err(ours[i], ref[i])
            bad += b
        try:
            mask = torch_mod(j["torch"]["mask"], bufs, 0, 0, self.dev)
            score = torch_mod(j["torch"]["score"], bufs, 0, 0, self.dev)
            fo = flex_eager(q, k, v, tables, tuple(j["tables"]["blockSize"]), mask, score, j["scale"], j["N"], j["N"], j["Hq"] != j["Hkv"])
            fg = torch.autograd.grad(fo, inputs, dout)
            for i, n in enumerate(labels):
                rec["flex"][n] = rel_err(fg[i], ref[i])[0]
                rec["ours_vs_flex"][n] = rel_err(ours[i], fg[i])[0]
        except Exception as e:
            rec["flex_error"] = repr(e)[:300]
        rec["bad"] = bad
        # Within bf16's tolerance of the float64 reference, or no worse than twice flex's own error.
        rec["pass"] = bad == 0 and all(rec["ours"][n] <= max(BF16_TOL, 2 * rec["flex"].get(n, 0.0)) for n in labels)
        return rec

    # ---- determinism ----

    def determinism(self):
        for sub, name in [("compare", "relbias_causal_n1024"), ("compare", "bucketbias_causal_n1024"),
                          ("bench", "bucketbias_causal_n16384")]:
            if not os.path.exists(os.path.join(ROOT, sub, name + ".json")) or self.skip(f"determinism {name}", 30):
                continue
            try:
                j, mod, tables, bufs, q, k, v, dout = self.entry(sub, name)
                inputs = [q, k, v, *(bufs[n] for n in j["gradBuffers"])]
                runs = [torch.autograd.grad(mod.flex_attention(q, k, v, *tables, **bufs, return_lse=False), inputs, dout) for _ in range(2)]
                rec = dict(name=name, ours_bitwise_equal={n: torch.equal(a, b) for n, a, b in zip(["dq", "dk", "dv", *j["gradBuffers"]], *runs)})
                rec["pass"] = all(rec["ours_bitwise_equal"].values())
                if sub == "compare":
                    try:
                        mask = torch_mod(j["torch"]["mask"], bufs, 0, 0, self.dev)
                        score = torch_mod(j["torch"]["score"], bufs, 0, 0, self.dev)
                        fr = [torch.autograd.grad(flex_eager(q, k, v, tables, tuple(j["tables"]["blockSize"]), mask, score, j["scale"],
                                                             j["N"], j["N"], j["Hq"] != j["Hkv"]), inputs, dout) for _ in range(2)]
                        rec["flex_eager_bitwise_equal"] = {n: torch.equal(a, b) for n, a, b in zip(["dq", "dk", "dv", *j["gradBuffers"]], *fr)}
                    except Exception as e:
                        rec["flex_error"] = repr(e)[:300]
                self.add("determinism", rec)
            except Exception as e:
                self.add("determinism", dict(name=name, **{"pass": False}, error=repr(e)[:500], trace=traceback.format_exc()[-1500:]))

    # ---- performance ----

    def flex_mods(self, variant, bufs):
        doc, table, rel = bufs.get("mask_docIds"), bufs.get("score_bucketBias"), bufs.get("score_relBias")

        def causal(b, h, q, kv):
            return q >= kv

        def document_causal(b, h, q, kv):
            return (doc[q] == doc[kv]) & (q >= kv)

        def softcap(s, b, h, q, kv):
            return 30.0 * torch.tanh(s / 30.0)

        def bucket(s, b, h, q, kv):
            return s + table[h, torch.clamp((q - kv).abs() // 128, max=31)]

        def relative(s, b, h, q, kv):  # a learnable [2N - 1] table
            return s + rel[q - kv + (rel.shape[0] + 1) // 2 - 1]

        return {"noop": (None, None), "causal": (causal, None), "document_causal": (document_causal, None),
                "softcap_causal": (causal, softcap), "bucketbias_causal": (causal, bucket),
                "relbias_causal": (causal, relative)}[variant]

    def bench(self, rounds=2):
        from torch.nn.attention.flex_attention import BlockMask, flex_attention
        flex = torch.compile(flex_attention, dynamic=False)
        names = json.load(open(os.path.join(ROOT, "bench", "index.json")))
        if self.bench_only:
            names = [n for n in self.bench_only if n in names]
        for name in names:
            if self.skip(f"bench {name}", self.bench_min_s):
                continue
            try:
                j, mod, tables, bufs, q, k, v, dout = self.entry("bench", name)
                inputs = [q, k, v, *(bufs[n] for n in j["gradBuffers"])]
                mm, sm = self.flex_mods(j["variant"], bufs)
                bm = BlockMask.from_kv_blocks(*tables, BLOCK_SIZE=tuple(j["tables"]["blockSize"]), mask_mod=mm, seq_lengths=(j["N"], j["N"]))
                ours = lambda: torch.autograd.grad(mod.flex_attention(q, k, v, *tables, **bufs, return_lse=False), inputs, dout)  # noqa: E731
                theirs = lambda: torch.autograd.grad(flex(q, k, v, score_mod=sm, block_mask=bm), inputs, dout)  # noqa: E731
                t0 = time.time()
                g_ours = ours()
                torch.cuda.synchronize()
                rec = dict(name=name, variant=j["variant"], N=j["N"], H=j["Hq"], D=j["D"], density=j["density"],
                           ours_first_s=round(time.time() - t0, 1), bwd_config=mod.backward_config())
                flops = 4 * j["B"] * j["Hq"] * j["N"] ** 2 * j["D"] * j["density"] * 3.5  # forward + backward (2.5x)
                try:
                    t0 = time.time()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        g_flex = theirs()
                    torch.cuda.synchronize()
                    rec["flex_first_s"] = round(time.time() - t0, 1)
                    rec["rel_diff_vs_flex"] = {n: rel_err(a, b)[0] for n, a, b in zip(["dq", "dk", "dv", *j["gradBuffers"]], g_ours, g_flex)}
                    del g_flex
                except Exception as e:  # flex may refuse a mod (e.g. a buffer gradient): ours is still timed
                    rec["flex_error"] = repr(e)[:300]
                    theirs = None
                del g_ours
                # Where flex cannot train the table, its time for the same mod with the table frozen (gradients for
                # q, k, v only) is a lower bound on what training it would cost flex; ours frozen beside it.
                frozen = {}
                if theirs is None and j["gradBuffers"]:
                    fixed = {n: b.detach() for n, b in bufs.items()}
                    _, sm_fixed = self.flex_mods(j["variant"], fixed)
                    frozen["flex"] = lambda: torch.autograd.grad(flex(q, k, v, score_mod=sm_fixed, block_mask=bm), [q, k, v], dout)  # noqa: E731
                    frozen["ours"] = lambda: torch.autograd.grad(mod.flex_attention(q, k, v, *tables, **fixed, return_lse=False), [q, k, v], dout)  # noqa: E731
                    try:
                        frozen["flex"]()
                    except Exception as e:
                        rec["flex_frozen_error"] = repr(e)[:300]
                        frozen = {}
                t = {"ours": [], "flex": [], **{f"{who}_frozen": [] for who in frozen}}
                for _ in range(rounds):
                    t["ours"].append(do_bench(ours, warmup=5, rep=60, return_mode="median"))
                    if theirs is not None:
                        t["flex"].append(do_bench(theirs, warmup=5, rep=60, return_mode="median"))
                    for who, fn in frozen.items():
                        t[f"{who}_frozen"].append(do_bench(fn, warmup=5, rep=60, return_mode="median"))
                for who in frozen:
                    rec[f"{who}_frozen_ms"] = statistics.median(t[f"{who}_frozen"])
                if frozen:
                    rec["speedup_vs_flex_frozen"] = rec["flex_frozen_ms"] / statistics.median(t["ours"])
                with torch.no_grad():
                    rec["fwd_ours_ms"] = do_bench(lambda: mod.flex_attention(q, k, v, *tables, **bufs, return_lse=False), warmup=5, rep=40, return_mode="median")
                    if theirs is not None:
                        rec["fwd_flex_ms"] = do_bench(lambda: flex(q, k, v, score_mod=sm, block_mask=bm), warmup=5, rep=40, return_mode="median")
                rec["rounds"] = t
                rec["ours_ms"] = statistics.median(t["ours"])
                rec["ours_tflops"] = flops / rec["ours_ms"] / 1e9
                if t["flex"]:
                    rec["flex_ms"] = statistics.median(t["flex"])
                    rec["flex_tflops"] = flops / rec["flex_ms"] / 1e9
                    rec["speedup"] = rec["flex_ms"] / rec["ours_ms"]
                self.add("bench", rec)
            except Exception as e:
                self.add("bench", dict(name=name, error=repr(e)[:500], trace=traceback.format_exc()[-1500:]))
            gc.collect()  # a failed entry's traceback keeps its tensors alive through a reference cycle
            torch.cuda.empty_cache()

    def tune(self):
        """Per bench entry: forward+backward with the module's own configs, then its tune_backward() on the same
        tensors (wall time), then forward+backward again, now resolving the backward's pick from the tuning cache."""
        import tempfile
        os.environ["FLEXATTN_CACHE_DIR"] = tempfile.mkdtemp(prefix="flexattn-bwd-tune-")  # no earlier run's picks
        names = json.load(open(os.path.join(ROOT, "bench", "index.json")))
        for name in [n for n in self.bench_only if n in names] if self.bench_only else names:
            if self.skip(f"tune {name}", 40):
                continue
            try:
                j, mod, tables, bufs, q, k, v, dout = self.entry("bench", name)
                inputs = [q, k, v, *(bufs[n] for n in j["gradBuffers"])]
                fn = lambda: torch.autograd.grad(mod.flex_attention(q, k, v, *tables, **bufs, return_lse=False), inputs, dout)  # noqa: E731
                fn()
                untuned = dict(mod.last_backward_config())
                before = do_bench(fn, warmup=5, rep=60, return_mode="median")
                t0 = time.time()
                pick = mod.tune_backward(q, k, v, *tables, dout=dout, **bufs)
                tuning_s = time.time() - t0
                timings = mod.last_backward_config().get("timings")
                fn()
                after_cfg = dict(mod.last_backward_config())
                after = do_bench(fn, warmup=5, rep=60, return_mode="median")
                self.add("tune", dict(name=name, untuned=untuned, untuned_ms=before, pick=pick, tuning_s=round(tuning_s, 1),
                                      timings=timings, tuned=after_cfg, tuned_ms=after))
            except Exception as e:
                self.add("tune", dict(name=name, error=repr(e)[:500], trace=traceback.format_exc()[-1500:]))

    def candidates(self, name, frozen=False):
        """Each backward config candidate on one entry (backward-only time would need the forward's residuals; this
        times forward + backward, the forward's config fixed). frozen: the bias tables passed detached."""
        if not os.path.exists(os.path.join(ROOT, "bench", name + ".json")):
            return
        j, mod, tables, bufs, q, k, v, dout = self.entry("bench", name)
        if frozen:
            bufs = {n: t.detach() for n, t in bufs.items()}
        for c in mod.BWD_CANDIDATES:
            if self.skip(f"candidate {c}", 25):
                break
            try:
                mod.set_backward_config(c)
                fn = lambda: torch.autograd.grad(mod.flex_attention(q, k, v, *tables, **bufs, return_lse=False), [q, k, v], dout)  # noqa: E731
                fn()
                torch.cuda.synchronize()
                self.add("candidates", dict(name=name, frozen=frozen, config=c, ms=do_bench(fn, warmup=5, rep=40, return_mode="median")))
            except Exception as e:
                self.add("candidates", dict(name=name, frozen=frozen, config=c, error=repr(e)[:300]))
        mod.set_backward_config(None)

    def markdown(self):
        try:
            self._markdown()
        except Exception as e:  # the JSON has everything; the summary must not stop the run
            self.log(json.dumps(dict(markdown_error=repr(e)[:300])))

    def _markdown(self):
        r = self.result
        lines = [f"# Triton backward on {r['env']['gpu']}", "", f"torch {r['env']['torch']}, triton {r['env']['triton']}, "
                 f"{r.get('elapsed_s')} s", "", "## Conformance (vs float64 reference gradients)", "",
                 "| case | dtype | dq | dk | dv | buffers | deterministic | flex dq/dk/dv | pass |", "|---|---|---|---|---|---|---|---|---|"]
        f = lambda x: f"{x:.1e}" if isinstance(x, float) else str(x)  # noqa: E731
        for c in r["conformance"]:
            if "skipped" in c or "error" in c:
                lines.append(f"| {c['name']} | | | | | | | | {c.get('skipped') or c.get('error')} |")
                continue
            fl = c.get("flex", {})
            lines.append(f"| {c['name']} | {c['dtype']} | {f(c['dq'])} | {f(c['dk'])} | {f(c['dv'])} | "
                         f"{', '.join(f'{k}={f(v)}' for k, v in c['buffers'].items())} | {c['deterministic']} | "
                         f"{'/'.join(f(fl.get(n, '-')) for n in ('dq', 'dk', 'dv')) if fl else c.get('flex_error', '-')[:60]} | {c['pass']} |")
        lines += ["", "## bf16 vs float64 dense reference (ours | flex eager)", "", "| mod | grad | ours | flex | ours vs flex |", "|---|---|---|---|---|"]
        for c in r["compare"]:
            if "error" in c:
                lines.append(f"| {c['name']} | | {c['error'][:80]} | | |")
                continue
            for n, e in c["ours"].items():
                lines.append(f"| {c['name']} | {n} | {f(e)} | {f(c['flex'].get(n, '-'))} | {f(c['ours_vs_flex'].get(n, '-'))} |")
        lines += ["", "## Determinism (two runs, bitwise)", ""]
        # Dicts go in code spans: the docs' Markdown reads a trailing {...} as HTML attributes.
        lines += [f"- {c['name']}: ours `{c.get('ours_bitwise_equal', c.get('error'))}`; flex eager `{c.get('flex_eager_bitwise_equal', '-')}`"
                  for c in r["determinism"]]
        lines += ["", "## Forward+backward, bf16 (median ms)", "",
                  "| mod | N | d | heads | ours ms | flex ms | flex/ours | ours TFLOP/s | flex TFLOP/s | fwd ours | fwd flex |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in r["bench"]:
            if "error" in c:
                lines.append(f"| {c['name']} | | | | {c['error'][:100]} | | | | | | |")
                continue
            g = lambda key, spec: format(c[key], spec) if key in c else c.get("flex_error", "-")[:40]  # noqa: E731
            lines.append(f"| {c['variant']} | {c['N']} | {c['D']} | {c['H']} | {c['ours_ms']:.2f} | {g('flex_ms', '.2f')} | {g('speedup', '.2f')} | {c['ours_tflops']:.0f} | "
                         f"{g('flex_tflops', '.0f')} | {c['fwd_ours_ms']:.2f} | {g('fwd_flex_ms', '.2f')} |")
        frozen = [c for c in r["bench"] if "flex_frozen_ms" in c]
        if frozen:
            lines += ["", "Where flex cannot train the table: the same mod with the table frozen (gradients for q, k, v only), "
                      "a lower bound on flex's cost of training it (fwd+bwd median ms):", "",
                      "| mod | N | d | ours, table trained | flex, table frozen | ours, table frozen | flex frozen / ours trained |",
                      "|---|---|---|---|---|---|---|"]
            lines += [f"| {c['variant']} | {c['N']} | {c['D']} | {c['ours_ms']:.2f} | {c['flex_frozen_ms']:.2f} | "
                      f"{c['ours_frozen_ms']:.2f} | {c['speedup_vs_flex_frozen']:.2f} |" for c in frozen]
        lines += ["", "## The module's tune_backward() (fwd+bwd ms before and after; the backward's config and its source)", ""]
        lines += [f"- {c['name']}: {c.get('error') or ''}" if "error" in c else
                  f"- {c['name']}: {c['untuned_ms']:.3f} ms ({c['untuned']['source']} {c['untuned']['config']}) -> {c['tuned_ms']:.3f} ms "
                  f"({c['tuned']['source']} {c['tuned']['config']}), tuning {c['tuning_s']} s, timings `{c['timings']}`" for c in r["tune"]]
        lines += ["", "## Backward config candidates (research: each passed to set_backward_config; fwd+bwd ms)", ""]
        lines += [f"- {c['name']} `{c['config']}`: {c.get('ms', c.get('error'))}" for c in r["candidates"]]
        if r["skipped"]:
            lines += ["", "Skipped: " + "; ".join(s["what"] for s in r["skipped"])]
        with open(os.path.join(OUT, "triton-bwd.md"), "w") as fh:
            fh.write("\n".join(lines) + "\n")


def main():
    global ROOT, ENTRY_BY_ENTRY
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-s", type=float, default=240, help="no entry starts past it; a watchdog stops the run 25 s after")
    ap.add_argument("--phases", default="conformance,compare,determinism,bench,candidates")
    ap.add_argument("--bench", default="", help="comma-separated bench entries (e.g. causal_n16384), in this order")
    ap.add_argument("--bench-min-s", type=float, default=60, help="no bench entry starts with less budget left")
    ap.add_argument("--sweep", default="causal_n16384", help="comma-separated bench entries whose backward candidates the "
                    "candidates phase times")
    ap.add_argument("--frozen-sweep", default="", help="comma-separated bench entries whose candidates are timed with "
                    "their bias tables frozen (detached)")
    ap.add_argument("--entry-by-entry", action="store_true", help="research: force the path Triton < 3.3 takes (no "
                    "tl.gather) for q - kv tables")
    ap.add_argument("--root", default=None, help="the generated modules to run (default: generated-bwd beside this file)")
    args = ap.parse_args()
    if args.root:
        ROOT = os.path.abspath(args.root)
    ENTRY_BY_ENTRY = args.entry_by_entry
    run = Run(args.budget_s, tuple(n for n in args.bench.split(",") if n), args.bench_min_s)

    def watchdog(signum, frame):
        raise TimeoutError("budget exhausted (watchdog)")

    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(int(args.budget_s + 25))
    for phase in args.phases.split(","):
        if run.skip(phase, 10):
            continue
        t0 = time.time()
        try:
            if phase == "candidates":
                for name in args.sweep.split(","):
                    run.candidates(name)
                for name in filter(None, args.frozen_sweep.split(",")):
                    run.candidates(name, frozen=True)
            else:
                getattr(run, phase)()
        except Exception as e:
            run.log(json.dumps(dict(phase=phase, error=repr(e)[:500], trace=traceback.format_exc()[-2000:])))
        run.log(json.dumps(dict(phase=phase, seconds=round(time.time() - t0, 1))))
        run.save()
        run.markdown()
    signal.alarm(0)
    conf = [c for c in run.result["conformance"] if "skipped" not in c]
    run.log(f"backward conformance: {sum(bool(c.get('pass')) for c in conf)} passed, {sum(not c.get('pass') for c in conf)} failed")
    run.save()
    run.markdown()


if __name__ == "__main__":
    main()
