"""CUDA backend on the GPU: conformance of the generated Python modules against our float64 reference,
and the performance protocol beside torch flex_attention (torch.compile), SDPA cuDNN and SDPA
FlashAttention-2, all in one process.

    npx tsx apps/bench/src/cuda-generate.ts        (on the CPU machine)
    python3 apps/bench/device/cuda/run_cuda.py [--phases probe,conformance,bench] [--variants noop,causal]
                                               [--candidates K] [--tag NAME]

softcap_causal_approx (compiled with the caller's approxTanh) runs only when --variants names it.

Conformance runs every generated kernel; the wgmma ones (sm_90a) only on compute capability 9.0 and
are reported as skipped elsewhere. The bench times, per entry, what a user gets from the public compile:
the module of `--target sm_90a` as it resolves its config ("ours default"), the same module after its own
tune() ("ours tuned"), and the module of no target (sm_80, "ours sm80"). --candidates K adds the first K
of the sm_90a target's candidates, each as a one-kernel module (research: a config a user does not get
without tuning).

Every kernel is compiled first, in parallel, with nvcc into the modules' cubin cache ($FLEXATTN_CACHE,
keyed by spec hash and GPU), so the modules load their binaries instead of compiling one by one.
"""
import argparse
import glob
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "triton"))
from common import buffers_from, decode, load_module, lse_error, max_rel_error, tables_from  # noqa: E402

GEN = os.path.join(HERE, "generated")
OUT = os.environ.get("OUT", "/tmp/cuda-out")
TOL = {"f32": 1e-3, "f16": 1e-2, "bf16": 1e-2}


def log(obj, f=None):
    line = obj if isinstance(obj, str) else json.dumps(obj)
    print(line, flush=True)
    if f:
        f.write(line + "\n")
        f.flush()


def arch():
    major, minor = torch.cuda.get_device_capability()
    return f"{major}{minor}{'a' if major >= 9 else ''}"


def compile_all(sources, cache):
    """nvcc every .cu into the cache under the name the modules look for; returns {source: error}."""
    def one(src):
        text = open(src).read()
        h = re.search(r"spec ([0-9a-f]+)\.", text).group(1)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        dst = os.path.join(cache, f"cuda-{h}-{digest}-sm{arch()}.cubin")
        if os.path.exists(dst):
            return src, 0, ""
        # A temporary name of this source's own: two sources of one spec may compile at the same time.
        tmp = f"{dst}.{os.path.basename(src)}.tmp"
        r = subprocess.run(["nvcc", "-O3", f"-gencode=arch=compute_{arch()},code=sm_{arch()}", "-cubin", src, "-o", tmp],
                           capture_output=True, text=True)
        if r.returncode == 0:
            os.replace(tmp, dst)
        return src, r.returncode, r.stderr[-2000:]
    t0 = time.time()
    with ThreadPoolExecutor(os.cpu_count() or 8) as ex:
        built = list(ex.map(one, sources))
    log(dict(compiled=len(sources), seconds=round(time.time() - t0, 1)))
    return {s: e for s, rc, e in built if rc != 0}


def module_sources(modules, tmp):
    """Every kernel the modules carry (KERNELS, the configs they tune over) that runs here, written out as .cu files."""
    out = {}
    for path in modules:
        for kern in load_module(path).KERNELS.values():
            if runs_here(kern["kernel"]):
                out.setdefault(kern["spec_hash"], kern["source"])
    paths = []
    for h, src in out.items():
        paths.append(os.path.join(tmp, h + ".cu"))
        with open(paths[-1], "w") as f:
            f.write(src)
    return paths


def strided(j, dev):
    flat = decode(j["data"], j["dtype"]).to(dev)
    return torch.as_strided(flat, j["shape"], j["strides"])


def runs_here(kernel):
    """wgmma kernels are compiled for sm_90a, which only compute capability 9.0 runs."""
    return kernel != "wgmma" or torch.cuda.get_device_capability() == (9, 0)


def label(m):
    """A research module's name: its config as cudaConfigName names it (written by cuda-generate)."""
    return f"ours {m['name']}"


def conformance(dev, f, kernels, match=()):
    d = os.path.join(GEN, "conformance")
    index = [c for c in json.load(open(os.path.join(d, "index.json"))) if not kernels or c.get("kernel") in kernels]
    index = [c for c in index if not match or any(m in c["name"] for m in match)]
    skipped = [c["name"] for c in index if not runs_here(c.get("kernel"))]
    if skipped:
        log(dict(skipped_not_sm90=len(skipped)), f)
    index = [c for c in index if runs_here(c.get("kernel"))]
    failed = compile_all([os.path.join(d, c["file"] + ".cu") for c in index], os.environ["FLEXATTN_CACHE"])
    results = []
    for c in index:
        cu = os.path.join(d, c["file"] + ".cu")
        if cu in failed:
            results.append(dict(name=c["name"], pass_=False, error="nvcc: " + failed[cu]))
            log(results[-1], f)
            continue
        case = json.load(open(os.path.join(d, c["data"] + ".json")))
        p = case["problem"]
        try:
            mod = load_module(os.path.join(d, c["file"] + ".py"))
            q, k, v = (strided(case[n], dev) for n in ("q", "k", "v"))
            B, Hq, Lq, Dv = p["batch"], p["qHeads"], p["qLen"], p["vHeadDim"]
            # The output in the case's layout, poisoned: every element must be written.
            so = [Hq * Lq * Dv, Lq * Dv, Dv, 1] if p["layout"] == "bhsd" else [Lq * Hq * Dv, Dv, Hq * Dv, 1]
            out = torch.as_strided(torch.full((B * Hq * Lq * Dv,), float("nan"), dtype=q.dtype, device=dev), (B, Hq, Lq, Dv), so)
            tables = tables_from(case["tables"], dev)
            bufs = buffers_from(case["buffers"], dev)
            res = mod.flex_attention(q, k, v, *tables, **bufs, scale=p["scale"], return_lse=p["returnLse"],
                                     q_offset=p["qOffset"], kv_offset=p["kvOffset"], out=out)
            torch.cuda.synchronize()
            got, lse = res if p["returnLse"] else (res, None)
            ref_out = decode(case["ref"]["out"], "f64").view(B, Hq, Lq, Dv)
            ref_lse = decode(case["ref"]["lse"], "f64").view(B, Hq, Lq)
            err, bad = max_rel_error(got.cpu(), ref_out)
            lerr, lbad = lse_error(lse.cpu(), ref_lse) if lse is not None else (0.0, 0)
            tol = TOL[p["dtype"]]
            ok = bad == 0 and lbad == 0 and err <= tol and lerr <= tol
            results.append(dict(name=c["name"], kernel=c.get("kernel"), config=c["config"], seed=case["seed"], out_err=err, lse_err=lerr,
                                bad=bad + lbad, pass_=ok))
        except Exception as e:  # report and go on: one broken case must not hide the others
            results.append(dict(name=c["name"], pass_=False, error=repr(e)[:800]))
        r = results[-1]
        log(("PASS " if r["pass_"] else "FAIL ") + json.dumps(r), f)
    passed = sum(r["pass_"] for r in results)
    log(f"cuda conformance: {passed} passed, {len(results) - passed} failed", f)
    return dict(passed=passed, failed=len(results) - passed, results=results)


def probe(dev, f):
    """The wgmma helpers alone (generated/probe): Q·Kᵀ from two swizzled shared tiles, and P·V with V's
    descriptor strides as the kernel sets them and swapped; max error relative to the largest |ref|."""
    import cupy
    import numpy as np
    d = os.path.join(GEN, "probe")
    spec = json.load(open(os.path.join(d, "probe.json")))
    cubin = os.path.join(os.environ["FLEXATTN_CACHE"], "wgmma_probe.cubin")
    r = subprocess.run(["nvcc", "-O3", "-gencode=arch=compute_90a,code=sm_90a", "-cubin", os.path.join(d, "wgmma_probe.cu"), "-o", cubin],
                       capture_output=True, text=True)
    if r.returncode != 0:
        log(dict(probe="nvcc failed", stderr=r.stderr[-2000:]), f)
        return None
    mod = cupy.RawModule(path=cubin)
    g = torch.Generator(device=dev).manual_seed(0)
    rnd = lambda *s: torch.randn(*s, generator=g, device=dev, dtype=torch.bfloat16)  # noqa: E731
    ptr = lambda t: np.uint64(t.data_ptr())  # noqa: E731
    rel = lambda got, ref: float((got - ref).abs().max() / ref.abs().max())  # noqa: E731
    res = {}
    qk = spec["qk"]
    a, b = rnd(qk["m"], qk["k"]), rnd(qk["n"], qk["k"])
    out = torch.full((qk["m"], qk["n"]), float("nan"), device=dev)
    mod.get_function("probe_qk")((1,), (128,), (ptr(a), ptr(b), ptr(out)), shared_mem=48 * 1024)
    torch.cuda.synchronize()
    res["qk"] = rel(out, a.float() @ b.float().T)
    pv = spec["pv"]
    p, v = rnd(pv["m"], pv["k"]), rnd(pv["k"], pv["n"])
    ref = p.float() @ v.float()
    for name, lbo, sbo in (("pv_kernel", spec["kernelLbo"], spec["kernelSbo"]), ("pv_swapped", spec["kernelSbo"], spec["kernelLbo"])):
        out = torch.full((pv["m"], pv["n"]), float("nan"), device=dev)
        mod.get_function("probe_pv")((1,), (128,), (ptr(p), ptr(v), ptr(out), np.uint32(lbo), np.uint32(sbo)), shared_mem=48 * 1024)
        torch.cuda.synchronize()
        res[name] = rel(out, ref)
        # Where it differs: the first wrong (row, col), to tell a fragment fault from a layout fault.
        bad = ((out - ref).abs() > 0.05 * ref.abs().max()).nonzero()
        res[name + "_first_bad"] = bad[:4].tolist()
    log(dict(probe=res), f)
    return res


# ---- the performance protocol ----

def flex_mods(variant, N, bufs):
    """PyTorch mods with exactly our masks' semantics (prefix-LM: kv < N/4)."""
    doc, slopes = bufs.get("mask_docIds"), bufs.get("score_alibiSlopes")
    causal = lambda b, h, q, kv: q >= kv  # noqa: E731
    return {
        "noop": (None, None), "causal": (causal, None),
        "sliding_window_1024": (lambda b, h, q, kv: (q >= kv) & (q - kv <= 1024), None),
        "prefix_lm": (lambda b, h, q, kv: (kv < N // 4) | (q >= kv), None),
        "document_causal": (lambda b, h, q, kv: (doc[q] == doc[kv]) & (q >= kv), None),
        "alibi_causal": (causal, lambda s, b, h, q, kv: s + slopes[h] * (kv - q)),
        "softcap_causal": (causal, lambda s, b, h, q, kv: 30.0 * torch.tanh(s / 30.0)),
    }[variant]


def bench(dev, f, variants, n_candidates, budget_s, match=()):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    from triton.testing import do_bench
    torch._dynamo.config.cache_size_limit = 1000
    try:
        torch._dynamo.config.recompile_limit = 1000
    except Exception:
        pass
    flex = torch.compile(flex_attention, dynamic=False)
    d = os.path.join(GEN, "bench")
    # Opt-in variants (a user's config options, e.g. softcap_causal_approx) run only when named.
    entries = [e for e in json.load(open(os.path.join(d, "bench.json")))["entries"]
               if e["variant"] in variants or (not variants and not e.get("optIn"))]
    for e in entries:
        # The public modules (default: sm_90a where it runs; sm80), then the first K research candidates that run here.
        public = [m for m in (e["default"], e["sm80"]) if runs_here(m.get("kernel"))]
        research = [m for m in e["modules"] if runs_here(m.get("kernel"))]
        matched = [m for m in research[n_candidates:] if any(x in m["module"] for x in match)]
        e["timed"] = public + research[:n_candidates] + matched
    mods = sorted({os.path.join(d, m["module"]) for e in entries for m in e["timed"]})
    failed = compile_all(module_sources(mods, tempfile.mkdtemp()), os.environ["FLEXATTN_CACHE"])
    if failed:
        log(dict(compile_failures={os.path.basename(k): v[-300:] for k, v in failed.items()}), f)
    # A fresh tuning cache: the default column must not find an earlier run's picks.
    os.environ["FLEXATTN_CACHE_DIR"] = tempfile.mkdtemp(prefix="flexattn-tune-")
    ms = lambda fn: do_bench(fn, warmup=25, rep=100, return_mode="median")  # noqa: E731
    t_end = time.time() + budget_s
    rows, inputs = [], {}
    for e in entries:
        if time.time() > t_end:
            log(dict(skipped_for_time=f"{e['variant']} D{e['D']} N{e['N']}"), f)
            continue
        key = (e["B"], e["H"], e["N"], e["D"])
        if key not in inputs:
            inputs.clear()
            torch.cuda.empty_cache()
            g = torch.Generator(device=dev).manual_seed(0)
            inputs[key] = [torch.randn(key, generator=g, device=dev, dtype=torch.bfloat16) for _ in range(3)]
        q, k, v = inputs[key]
        j = json.load(open(os.path.join(d, "tables", e["tables"])))
        tables, bufs = tables_from(j["tables"], dev), buffers_from(j["buffers"], dev)
        mm, sm = flex_mods(e.get("anchor", e["variant"]), e["N"], bufs)
        bm = create_block_mask(mm, None, None, e["N"], e["N"], device=dev) if mm else None
        flex_fn = lambda: flex(q, k, v, score_mod=sm, block_mask=bm)  # noqa: E731
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = flex_fn()
        timed = {"flex": flex_fn}
        if e["variant"] in ("noop", "causal"):
            for name, backend in (("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa_fa2", SDPBackend.FLASH_ATTENTION)):
                def sdpa(backend=backend):
                    with sdpa_kernel(backend):
                        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=e["variant"] == "causal")
                try:
                    sdpa()
                    timed[name] = sdpa
                except Exception as ex:
                    log(dict(variant=e["variant"], impl=name, unavailable=repr(ex)[:200]), f)
        rel_err = lambda got: float((got.double() - ref.double()).norm() / ref.double().norm())  # noqa: E731
        agree, roles = {}, {}
        for m in e["timed"]:
            role = "default" if m is e["default"] else "sm80" if m is e["sm80"] else "candidate"
            name = f"ours {role}" if role != "candidate" else label(m)
            try:
                mod = load_module(os.path.join(d, m["module"]))
                fn = lambda mod=mod: mod.flex_attention(q, k, v, *tables, **bufs)  # noqa: E731
                got = fn()
                torch.cuda.synchronize()
                agree[name] = rel_err(got)
                last = mod.last_config()
                timed[name], roles[name] = fn, dict(role=role, config=last["config"]["name"], source=last["source"])
                if role == "default":
                    # What tuning gives a user: the module's own tune() on these tensors, then the call as they make it.
                    t0 = time.time()
                    mod.tune(q, k, v, *tables, **bufs)
                    tuning_s = time.time() - t0
                    timings = mod.last_config().get("timings")  # the next call resolves from the cache and drops them
                    got = fn()
                    last = mod.last_config()
                    agree["ours tuned"] = rel_err(got)
                    timed["ours tuned"] = fn
                    roles["ours tuned"] = dict(role="tuned", config=last["config"]["name"], source=last["source"], tuning_s=round(tuning_s, 1),
                                               timings=timings)
                    # The untuned figure re-runs the config resolved before tuning (the cache now holds the pick).
                    untuned = roles[name]["config"]
                    timed[name] = lambda mod=mod, c=untuned: mod.flex_attention(q, k, v, *tables, **bufs, config=c)  # noqa: E731
            except Exception as ex:
                log(dict(variant=e["variant"], impl=name, error=repr(ex)[:500]), f)
        dense = 4 * e["B"] * e["H"] * e["N"] ** 2 * e["D"]
        for impl, fn in timed.items():
            t = ms(fn)
            row = dict(impl=impl, variant=e["variant"], D=e["D"], N=e["N"], B=e["B"], H=e["H"], density=e["density"], ms=t,
                       tflops=dense * e["density"] / t / 1e9, rel_err_vs_flex=agree.get(impl), **roles.get(impl, {}))
            rows.append(row)
            log(row, f)
    return rows


def table(rows):
    """One markdown row per (D, N, variant): the anchors; our public modules (compile --target sm_90a: as resolved and
    after tune(); compile with no target: sm_80); the best research candidate timed alone."""
    lines = ["| D | N | variant | density | flex TFLOP/s | cuDNN | FA2 | ours default (config) | ours tuned (config) | sm80 default | "
             "best candidate (research) | default / flex | tuned / flex | sm80 / flex | rel. err vs flex |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups = {}
    for r in rows:
        groups.setdefault((r["D"], r["N"], r["variant"]), []).append(r)
    for (D, N, variant), rs in groups.items():
        by = {r["impl"]: r for r in rs}
        fx = by.get("flex")
        default, tuned, sm80 = by.get("ours default"), by.get("ours tuned"), by.get("ours sm80")
        cands = [r for r in rs if r.get("role") == "candidate"]
        best = max(cands, key=lambda r: r["tflops"]) if cands else None
        if not fx or not default:
            continue
        fmt = lambda r: f"{r['tflops']:.0f}" if r else "-"  # noqa: E731
        named = lambda r: f"{fmt(r)} ({r['config']})" if r else "-"  # noqa: E731
        ratio = lambda r: f"{r['tflops'] / fx['tflops']:.2f}x" if r else "-"  # noqa: E731
        err = "-" if default["rel_err_vs_flex"] is None else f"{default['rel_err_vs_flex']:.1e}"
        best_text = f"{fmt(best)} ({best['impl'][5:]})" if best else "-"
        lines.append(f"| {D} | {N} | {variant} | {rs[0]['density']:.3f} | {fmt(fx)} | {fmt(by.get('sdpa_cudnn'))} | {fmt(by.get('sdpa_fa2'))} | "
                     f"{named(default)} | {named(tuned)} | {fmt(sm80)} | {best_text} | "
                     f"{ratio(default)} | {ratio(tuned)} | {ratio(sm80)} | {err} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phases", default="conformance,bench")
    ap.add_argument("--variants", default="")
    ap.add_argument("--kernels", default="", help="conformance: only these kernel kinds (wgmma,mma,simt)")
    ap.add_argument("--candidates", type=int, default=0, help="research: also time the first K config candidates of each entry, each alone")
    ap.add_argument("--match", default="", help="comma-separated substrings: conformance cases whose name has one; the bench "
                    "also times the candidates whose module name has one (research), e.g. tma")
    ap.add_argument("--budget-s", type=float, default=400)
    ap.add_argument("--tag", default="run")
    a = ap.parse_args()
    match = [m for m in a.match.split(",") if m]
    os.makedirs(OUT, exist_ok=True)
    os.environ.setdefault("FLEXATTN_CACHE", "/tmp/flexattn-cache")
    os.makedirs(os.environ["FLEXATTN_CACHE"], exist_ok=True)
    dev = torch.device("cuda")
    gpu = torch.cuda.get_device_name().split()[-1].lower()
    import cupy
    summary = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, cupy=cupy.__version__, argv=sys.argv[1:],
                   command="npx tsx apps/bench/src/cuda-generate.ts && python3 apps/bench/device/cuda/run_cuda.py " + " ".join(sys.argv[1:]))
    with open(os.path.join(OUT, f"cuda-{gpu}-{a.tag}.log"), "w") as f:
        phases = a.phases.split(",")
        if "probe" in phases:
            summary["probe"] = probe(dev, f)
        if "conformance" in phases:
            summary["conformance"] = conformance(dev, f, [k for k in a.kernels.split(",") if k], match)
        if "bench" in phases:
            rows = bench(dev, f, [v for v in a.variants.split(",") if v], a.candidates, a.budget_s, match)
            summary["bench"] = rows
            md = table(rows)
            summary["table"] = md
            print(md)
    json.dump(summary, open(os.path.join(OUT, f"cuda-{gpu}-{a.tag}.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
