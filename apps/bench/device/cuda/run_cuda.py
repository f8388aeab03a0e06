"""CUDA backend conformance on the GPU: compile every generated .cu with nvcc (sm_90a), launch it
through CuPy on the exported inputs, and compare with our float64 reference.

    python3 apps/bench/device/cuda/run_cuda.py      (after: npx tsx apps/bench/src/cuda-generate.ts)
"""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import cupy
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "triton"))
from common import buffers_from, decode, lse_error, max_rel_error, tables_from  # noqa: E402

GEN = os.path.join(HERE, "generated")
OUT = os.environ.get("OUT", "/tmp/cuda-out")
TOL = {"f32": 1e-3, "f16": 1e-2, "bf16": 1e-2}


def compile_all(files):
    def one(f):
        r = subprocess.run(["nvcc", "-O3", "-gencode=arch=compute_90a,code=sm_90a", "-cubin", f, "-o", f[:-3] + ".cubin"],
                           capture_output=True, text=True)
        return f, r.returncode, r.stderr[-2000:]
    with ThreadPoolExecutor(16) as ex:
        return list(ex.map(one, files))


def out_strides(p):
    H, L, D = p["qHeads"], p["qLen"], p["vHeadDim"]
    return [H * L * D, L * D, D, 1] if p["layout"] == "bhsd" else [L * H * D, D, H * D, 1]


def as_cupy(t):
    t = t.contiguous() if not t.is_contiguous() else t
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return cupy.asarray(t)


def run_case(case, cubin, dev):
    p = case["problem"]
    # The kernel takes base pointers and strides, so the flat storage is what it needs.
    flat = {n: decode(case[n]["data"], case[n]["dtype"]).to(dev) for n in ("q", "k", "v")}
    tables = tables_from(case["tables"], dev)
    bufs = buffers_from(case["buffers"], dev)
    B, Hq, Lq, Dv = p["batch"], p["qHeads"], p["qLen"], p["vHeadDim"]
    so = out_strides(p)
    out_flat = torch.full((B * Hq * Lq * Dv,), float("nan"), dtype=flat["q"].dtype, device=dev)  # poisoned
    lse = torch.full((B * Hq * Lq,), float("nan"), dtype=torch.float32, device=dev)
    t = case["tables"]
    scalars = dict(batch=B, q_heads=Hq, kv_heads=p["kvHeads"], q_len=Lq, kv_len=p["kvLen"],
                   sparse_b=t["Bm"], sparse_h=t["Hm"], sparse_q_blocks=t["QB"], sparse_kv_blocks=t["KVB"],
                   q_offset=p["qOffset"], kv_offset=p["kvOffset"])
    for name, st in (("q", case["q"]["strides"]), ("k", case["k"]["strides"]), ("v", case["v"]["strides"]), ("out", so)):
        for d, s in zip("bhs", st[:3]):
            scalars[f"stride_{name}_{d}"] = s
    tensors = dict(q=flat["q"], k=flat["k"], v=flat["v"], out=out_flat, lse=lse, kv_num_blocks=tables[0],
                   kv_indices=tables[1], full_kv_num_blocks=tables[2], full_kv_indices=tables[3], **bufs)
    args = []
    for a in case["abi"]:
        if a["kind"] == "tensor":
            args.append(as_cupy(tensors[a["name"]]))
        elif a["name"] == "scale":
            args.append(np.float32(p["scale"]))
        else:
            args.append(np.int32(scalars[a["name"]]))
    fn = cupy.RawModule(path=cubin).get_function(case["entry"])
    fn(tuple(case["grid"]), (case["threads"],), tuple(args))
    torch.cuda.synchronize()
    out = torch.as_strided(out_flat, (B, Hq, Lq, Dv), so)
    ref_out = decode(case["ref"]["out"], "f64").view(B, Hq, Lq, Dv)
    ref_lse = decode(case["ref"]["lse"], "f64").view(B, Hq, Lq)
    err, bad = max_rel_error(out.cpu(), ref_out)
    lerr, lbad = lse_error(lse.view(B, Hq, Lq).cpu(), ref_lse) if p["returnLse"] else (0.0, 0)
    tol = TOL[p["dtype"]]
    ok = bad == 0 and lbad == 0 and err <= tol and lerr <= tol
    return dict(name=case["name"], dtype=p["dtype"], seed=case["seed"], out_err=err, lse_err=lerr, bad=bad + lbad, pass_=ok)


def main():
    os.makedirs(OUT, exist_ok=True)
    index = json.load(open(os.path.join(GEN, "index.json")))
    built = compile_all([os.path.join(GEN, c["file"] + ".cu") for c in index])
    failed_builds = {f: e for f, rc, e in built if rc != 0}
    dev = torch.device("cuda")
    results = []
    for c in index:
        cu = os.path.join(GEN, c["file"] + ".cu")
        if cu in failed_builds:
            results.append(dict(name=c["name"], pass_=False, error="nvcc: " + failed_builds[cu]))
            continue
        case = json.load(open(os.path.join(GEN, c["file"] + ".json")))
        try:
            results.append(run_case(case, cu[:-3] + ".cubin", dev))
        except Exception as e:  # report and go on: one broken case must not hide the others
            results.append(dict(name=c["name"], pass_=False, error=repr(e)[:500]))
        r = results[-1]
        print(("PASS" if r["pass_"] else "FAIL"), r["name"], {k: v for k, v in r.items() if k not in ("name", "pass_")}, flush=True)
    passed = sum(r["pass_"] for r in results)
    summary = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, cupy=cupy.__version__,
                   command="npx tsx apps/bench/src/cuda-generate.ts && python3 apps/bench/device/cuda/run_cuda.py",
                   passed=passed, failed=len(results) - passed, results=results)
    # Named after the GPU ("NVIDIA H200" → cuda-h200-conformance.json) so runs on different GPUs sit side by side.
    gpu = summary["gpu"].split()[-1].lower()
    json.dump(summary, open(os.path.join(OUT, f"cuda-{gpu}-conformance.json"), "w"), indent=1)
    print(f"cuda conformance: {passed} passed, {len(results) - passed} failed")


if __name__ == "__main__":
    main()
