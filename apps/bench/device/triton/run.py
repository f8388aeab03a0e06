"""One device call: conformance, then the performance protocol (ours vs flex_attention), a config
sweep and the error table. Everything is logged as JSON lines and written under $OUT.

    python3 apps/bench/device/triton/run.py [--phases conformance,bench16k,...] [--budget-s 540]
"""
import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import triton  # noqa: E402

OUT = os.environ.get("OUT", "/tmp/triton-out")
PHASES = ["conformance", "tanh", "bench16k", "bench4k", "bench1k"]
SWEEP = {
    128: [(128, 64, 8, 4), (128, 64, 8, 3), (128, 64, 8, 2), (128, 128, 8, 2), (128, 128, 8, 3), (64, 64, 4, 3)],
    64: [(128, 128, 8, 4), (128, 128, 8, 3), (128, 128, 4, 3), (128, 64, 8, 4), (128, 64, 4, 3), (128, 64, 4, 4),
         (64, 64, 4, 3)],
}
SWEEP_VARIANTS = ("noop", "causal", "document_causal", "softcap_causal_approx")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--budget-s", type=float, default=540)
    ap.add_argument("--tag", default="h100")
    ap.add_argument("--variants", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--dims", default="", help="comma-separated head dims (default: all)")
    ap.add_argument("--configs", default="", help="candidates besides the default, as BMxBNwWsS (e.g. 128x64w8s3); "
                    "they apply to the pointer and the TMA modules alike")
    ap.add_argument("--no-tma", action="store_true", help="skip the TMA modules (the 'ours tma' column)")
    args = ap.parse_args()
    start = time.time()
    deadline = start + args.budget_s
    os.makedirs(OUT, exist_ok=True)
    logf = open(os.path.join(OUT, f"triton-{args.tag}.log"), "w")

    def log(line):
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    env = dict(torch=torch.__version__, triton=triton.__version__, gpu=torch.cuda.get_device_name(),
               command=" ".join(["python3"] + sys.argv))
    log(json.dumps(env))
    result = dict(env=env, conformance=[], rows=[])
    phases = args.phases.split(",")
    known = PHASES + ["sweep"]  # the sweep runs only when asked for
    unknown = [p for p in phases if p not in known]
    if unknown:
        sys.exit(f"run.py: unknown phase(s) {', '.join(unknown)}; known: {', '.join(known)}")

    def save():
        result["elapsed_s"] = round(time.time() - start, 1)
        with open(os.path.join(OUT, f"triton-{args.tag}.json"), "w") as f:
            json.dump(result, f, indent=1)

    if "conformance" in phases:
        import conformance
        result["conformance"] = conformance.run_all(torch.device("cuda"), with_flex=True, log=log)
        save()
    if "tanh" in phases:
        import tanh_error
        try:
            result["tanh_approx"] = tanh_error.measure(log)
        except Exception as e:
            log(json.dumps(dict(tanh_error=repr(e)[:300])))
    if any(p not in ("conformance", "tanh") for p in phases):  # the rest are timed
        run_bench(args, phases, deadline, log, result, save)
    save()
    import report
    md = report.markdown(result)
    with open(os.path.join(OUT, f"triton-{args.tag}.md"), "w") as f:
        f.write(md)
    print("\n".join(l for l in md.split("\n") if l.startswith("|") and "| yes |" not in l)[-6000:])
    log(json.dumps(dict(done=True, elapsed_s=round(time.time() - start, 1))))


def run_bench(args, phases, deadline, log, result, save):
    """The timed phases; they need the bench inputs (triton-generate.ts without --only conformance)."""
    from bench import Bench
    b = Bench(log, deadline)
    b.tma = not args.no_tma
    keep_v = set(filter(None, args.variants.split(",")))
    keep_d = {int(d) for d in filter(None, args.dims.split(","))}
    b.entries = [e for e in b.entries if (not keep_v or e["variant"] in keep_v) and (not keep_d or e["D"] in keep_d)]
    if args.configs:
        extra = [[int(x) for x in re.match(r"(\d+)x(\d+)w(\d+)s(\d+)$", c).groups()] for c in args.configs.split(",")]
        for e in b.entries:
            e["candidates"] = [e["candidates"][0]] + extra  # the default stays first
    by = lambda n: [e for e in b.entries if e["N"] == n]
    if "sweep" in phases:
        sel = [e for e in by(16384) if e["variant"] in SWEEP_VARIANTS]
        result["rows"] += b.sweep(sel, SWEEP)
        save()
    for phase, n in (("bench16k", 16384), ("bench4k", 4096), ("bench1k", 1024)):
        if phase in phases:
            result["rows"] += b.run_entries(by(n), with_flex=True, errors=(n == 1024))
            save()


if __name__ == "__main__":
    main()
