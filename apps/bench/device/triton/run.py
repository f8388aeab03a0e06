"""One device call: conformance, then the performance protocol (ours untuned and tuned vs flex_attention).
Everything is logged as JSON lines and written under $OUT: triton-<tag>.{log,json,md}, and the run's tuned picks
as triton-tuned-<tag>.json (the format of packages/codegen-triton/src/tuned/<gpu>.json).

    python3 apps/bench/device/triton/run.py [--phases conformance,bench16k,bench4k] [--budget-s 540] [--tag NAME]
                                            [--variants noop,causal,...] [--dims 128,64]

The protocol's seven variants at N = 4k and 16k, d = 64 and 128 take two calls: --phases conformance,bench16k
and --phases bench4k (see apps/bench/README.md).
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import triton  # noqa: E402

OUT = os.environ.get("OUT", "/tmp/triton-out")
PHASES = {"conformance": None, "bench16k": 16384, "bench4k": 4096}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--budget-s", type=float, default=540, help="no entry starts with less than 45 s of it left")
    ap.add_argument("--tag", default="h100")
    ap.add_argument("--variants", default="", help="comma-separated variant names (default: the protocol's seven; "
                    "softcap_causal_approx is the eighth, generated with the approximate tanh)")
    ap.add_argument("--dims", default="", help="comma-separated head dims (default: all)")
    args = ap.parse_args()
    start = time.time()
    phases = args.phases.split(",")
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        sys.exit(f"run.py: unknown phase(s) {', '.join(unknown)}; known: {', '.join(PHASES)}")
    os.makedirs(OUT, exist_ok=True)
    # A fresh tuning cache: the untuned column must not find an earlier run's picks.
    os.environ["FLEXATTN_CACHE_DIR"] = tempfile.mkdtemp(prefix="flexattn-tune-", dir=OUT)
    os.environ.pop("FLEXATTN_AUTOTUNE", None)
    logf = open(os.path.join(OUT, f"triton-{args.tag}.log"), "w")

    def log(line):
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    env = dict(torch=torch.__version__, triton=triton.__version__, gpu=torch.cuda.get_device_name(),
               command=" ".join(["python3"] + sys.argv))
    log(json.dumps(env))
    result = dict(env=env, conformance=[], rows=[])

    def save():
        result["elapsed_s"] = round(time.time() - start, 1)
        with open(os.path.join(OUT, f"triton-{args.tag}.json"), "w") as f:
            json.dump(result, f, indent=1)

    if "conformance" in phases:
        import conformance
        result["conformance"] = conformance.run_all(torch.device("cuda"), with_flex=True, log=log)
        save()
    timed = [PHASES[p] for p in phases if PHASES[p]]
    if timed:  # the timed phases need the bench inputs (triton-generate.ts without --only conformance)
        from bench import VARIANTS, Bench
        from report import tuned_tables
        b = Bench(log, start + args.budget_s)
        keep_v = set(filter(None, args.variants.split(","))) or set(VARIANTS)
        keep_d = {int(d) for d in filter(None, args.dims.split(","))}
        for n in timed:
            entries = [e for e in b.entries if e["N"] == n and e["variant"] in keep_v and (not keep_d or e["D"] in keep_d)]
            result["rows"] += b.run_entries(entries)
            save()
        for table in tuned_tables(result["rows"]):
            with open(os.path.join(OUT, f"triton-tuned-{args.tag}.json"), "w") as f:
                json.dump(table, f, indent=1, sort_keys=True)
    save()
    import report
    md = report.markdown(result)
    with open(os.path.join(OUT, f"triton-{args.tag}.md"), "w") as f:
        f.write(md)
    print("\n".join(line for line in md.split("\n") if line.startswith("|") and "| yes |" not in line)[-6000:])
    log(json.dumps(dict(done=True, elapsed_s=round(time.time() - start, 1))))


if __name__ == "__main__":
    main()
