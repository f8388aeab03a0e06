"""Conformance on the device: every case's generated module vs our float64 reference, and
PyTorch's flex_attention (eager: these shapes are tiny and many) on the same tensors. Each block-loop
form the launcher picks is checked, and the indexed form again where it picked the range form."""
import contextlib
import json
import os
import time
import traceback
import warnings

import torch
import triton
import triton.language as tl

from common import (GENERATED, warm_only, buffers_from, decode, load_module, lse_error, max_rel_error, tables_from,
                    tensor_from, torch_mod)

TOL = {"f32": 1e-3, "f16": 1e-2, "bf16": 1e-2}


def run_flex(case, q, k, v, tables, bufs, device):
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
    p = case["problem"]
    mask = torch_mod(case["torch"]["mask"], bufs, p["qOffset"], p["kvOffset"], device)
    score = torch_mod(case["torch"]["score"], bufs, p["qOffset"], p["kvOffset"], device)
    bs = tuple(case["tables"]["blockSize"])
    bm = BlockMask.from_kv_blocks(*tables, BLOCK_SIZE=bs, mask_mod=mask, seq_lengths=(p["qLen"], p["kvLen"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, lse = flex_attention(q, k, v, score_mod=score, block_mask=bm, scale=p["scale"],
                                  enable_gqa=p["qHeads"] != p["kvHeads"], return_lse=True)
    return out, lse


@triton.jit
def _interp_tanh(x):
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


def _interpreter_patches(mod):
    """Triton's CPU interpreter has no libdevice: swap in tanh = 2·sigmoid(2x) − 1 (local runs only)."""
    if os.environ.get("TRITON_INTERPRET") == "1" and hasattr(mod, "_fa_tanh"):
        mod._fa_tanh = _interp_tanh


class indexed_loops:
    """Within this context the module walks every block table by index (LOOP_INDEXED), whatever the tables allow:
    the form that is right for any table, so the range form's answers can be checked against it."""

    def __init__(self, mod):
        self.mod = mod

    def __enter__(self):
        self.loop_form = self.mod.loop_form
        self.mod.loop_form = lambda num, idx: self.mod.LOOP_INDEXED
        return self

    def __exit__(self, *exc):
        self.mod.loop_form = self.loop_form
        return False


def run_case(path, device, with_flex, warm=False):
    """One case: every generated module variant vs the float64 reference (and flex once). A module whose launcher
    picks the range form for a table runs again with the indexed form forced."""
    case = json.load(open(path))
    p = case["problem"]
    q, k, v = (tensor_from(case[n], device) for n in ("q", "k", "v"))
    tables = tables_from(case["tables"], device)
    bufs = buffers_from(case["buffers"], device)
    B, Hq, Lq, Dv = p["batch"], p["qHeads"], p["qLen"], p["vHeadDim"]
    ref_out = decode(case["ref"]["out"], "f64").view(B, Hq, Lq, Dv)
    ref_lse = decode(case["ref"]["lse"], "f64").view(B, Hq, Lq)
    recs = []
    flex = None
    for m in case["modules"]:
        mod = load_module(os.path.join(os.path.dirname(path), m["module"]))
        _interpreter_patches(mod)
        forms = [mod.loop_form(tables[0], tables[1]), mod.loop_form(tables[2], tables[3])]
        runs = [(False, contextlib.nullcontext())]
        if mod.LOOP_RANGE in forms:
            runs.append((True, indexed_loops(mod)))
        for forced, ctx in runs:
            out = torch.full((B, Hq, Lq, Dv), float("nan"), dtype=q.dtype, device=device)  # poisoned
            rec = dict(name=case["name"], module=m["module"], dtype=p["dtype"], seed=case["seed"],
                       options={k2: v2 for k2, v2 in m["config"].get("options", {}).items() if v2},
                       loop_forms=[mod.LOOP_INDEXED] * 2 if forced else forms, forced=forced)
            if hasattr(mod, "uses_tma"):  # a module generated with the tma option: which path this launch takes
                rec["tma_path"] = bool(mod.uses_tma(q, k, v, out))
            call = dict(scale=p["scale"], return_lse=True, q_offset=p["qOffset"], kv_offset=p["kvOffset"], out=out)
            t0 = time.time()
            with ctx:
                if warm:
                    with warm_only(mod):
                        mod.flex_attention(q, k, v, *tables, **bufs, **call)
                    continue
                try:
                    _, lse = mod.flex_attention(q, k, v, *tables, **bufs, **call)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                except Exception as e:
                    recs.append(dict(rec, **{"pass": False}, error=repr(e)[:400]))
                    continue
            rec["seconds"] = round(time.time() - t0, 2)
            rec["out_err"], bad_o = max_rel_error(out.cpu(), ref_out)
            rec["lse_err"], bad_l = lse_error(lse.cpu(), ref_lse)
            rec["bad"] = bad_o + bad_l
            tol = m["tolerance"] or TOL[p["dtype"]]
            rec["tol"] = tol
            rec["pass"] = rec["bad"] == 0 and rec["out_err"] <= tol and rec["lse_err"] <= tol
            if with_flex:
                try:
                    if flex is None:
                        flex = run_flex(case, q, k, v, tables, bufs, device)
                    f_out, f_lse = flex
                    rec["flex_out_err"], fb = max_rel_error(f_out.cpu(), ref_out)
                    rec["flex_lse_err"], fb2 = lse_error(f_lse.cpu(), ref_lse)
                    rec["flex_bad"] = fb + fb2
                    rec["ours_vs_flex"], _ = max_rel_error(out.cpu(), f_out.cpu())
                except Exception as e:  # flex may reject a case (e.g. a shape it does not support)
                    rec["flex_error"] = repr(e)[:300]
            recs.append(rec)
    return recs


def run_all(device, with_flex=True, only=None, log=print):
    root = os.path.join(GENERATED, "conformance")
    index = json.load(open(os.path.join(root, "index.json")))
    results = []
    if device.type == "cuda":  # compile every module in parallel first
        from concurrent.futures import ThreadPoolExecutor
        t0 = time.time()
        try:
            with triton.AsyncCompileMode(ThreadPoolExecutor(16)):
                for c in index:
                    if not only or only in c["name"]:
                        run_case(os.path.join(root, c["file"] + ".json"), device, False, warm=True)
        except Exception as e:
            log(json.dumps(dict(precompile_error=repr(e)[:300])))
        log(json.dumps(dict(precompiled_conformance_s=round(time.time() - t0, 1))))
    for c in index:
        if only and only not in c["name"]:
            continue
        try:
            recs = run_case(os.path.join(root, c["file"] + ".json"), device, with_flex)
        except Exception as e:
            recs = [dict(name=c["name"], **{"pass": False}, error=repr(e)[:500], trace=traceback.format_exc()[-1500:])]
        for rec in recs:
            results.append(rec)
            log(json.dumps(rec))
    passed = sum(r["pass"] for r in results)
    log(f"conformance: {passed} passed, {len(results) - passed} failed")
    return results


if __name__ == "__main__":
    import sys
    dev = torch.device("cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1" else "cpu")
    only = sys.argv[1] if len(sys.argv) > 1 else None
    run_all(dev, with_flex="--no-flex" not in sys.argv, only=only if only and not only.startswith("--") else None)
