"""Turn harness result JSONs into the markdown committed under apps/bench/results/.

    python3 report.py triton-h200-16k.json [triton-h200-4k.json ...] > triton-h200.md
    python3 report.py --tuned triton-h200-16k.json triton-h200-4k.json > h200.json   # the runs' tuned picks,
        in the format of packages/codegen-triton/src/tuned/<gpu>.json
    python3 report.py --merge triton-h200-16k.json triton-h200-4k.json > triton-h200.json   # one JSON (charts)

Several JSONs (e.g. the two calls of one protocol run) are merged: their rows and conformance records.
"""
import json
import sys

ANCHOR_16K_D128 = dict(noop=492, causal=416, sliding_window_1024=347, prefix_lm=414, document_causal=320,
                       alibi_causal=375, softcap_causal=195)
ORDER = ["noop", "causal", "sliding_window_1024", "prefix_lm", "document_causal", "alibi_causal", "softcap_causal",
         "softcap_causal_approx"]
FORMS = {0: "none", 1: "range", 2: "indexed"}


def cfg_text(c):
    return f'{c["BLOCK_M"]}x{c["BLOCK_N"]} w{c["num_warps"]} s{c["num_stages"]}' if c else ""


def table(result):
    rows = result["rows"]
    ours = {(r["variant"], r["N"], r["D"]): r for r in rows if r["impl"] == "ours"}
    flex = {(r["variant"], r["N"], r["D"]): r for r in rows if r["impl"] == "flex"}
    out = ["| D | N | variant | density | flex ms | ours untuned ms | ours tuned ms | flex TFLOP/s | ours tuned TFLOP/s "
           "| untuned / flex | tuned / flex | untuned config (source) | tuned config | tuning s | loops (partial, full) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for D in (128, 64):
        for N in (16384, 4096):
            for v in ORDER:
                o = ours.get((v, N, D))
                f = flex.get(("softcap_causal" if v == "softcap_causal_approx" else v, N, D))
                if not o:
                    continue
                fms = f["ms"] if f else o.get("flex_ms")
                ratio = lambda ms: f"{fms / ms:.2f}x" if fms and ms else "–"  # noqa: E731
                forms = ", ".join(FORMS.get(x, str(x)) for x in o.get("loop_forms", []))
                out.append("| " + " | ".join([
                    str(D), str(N), v, f'{o["density"]:.3f}', f"{fms:.3f}" if fms else "–", f'{o["untuned_ms"]:.3f}',
                    f'{o["ms"]:.3f}', f'{f["tflops"]:.0f}' if f else "–", f'{o["tflops"]:.0f}', ratio(o["untuned_ms"]),
                    ratio(o["ms"]), f'{cfg_text(o["untuned_config"])} ({o["untuned_source"]})', cfg_text(o["config"]),
                    f'{o["tuning_s"]:.1f}', forms]) + " |")
    return out


def anchors(result):
    """Our 16k, d=128 figures next to the anchor JSON's flex_attention figures (shared/reference)."""
    ours = {r["variant"]: r for r in result["rows"] if r["impl"] == "ours" and r["N"] == 16384 and r["D"] == 128}
    flex = {r["variant"]: r for r in result["rows"] if r["impl"] == "flex" and r["N"] == 16384 and r["D"] == 128}
    if not ours:
        return []
    out = ["| variant | anchor flex TFLOP/s | flex TFLOP/s (this run) | ours untuned TFLOP/s | ours tuned TFLOP/s |",
           "|---|---|---|---|---|"]
    for v in ORDER:
        o = ours.get(v)
        if not o:
            continue
        f = flex.get(v.replace("_approx", ""))
        untuned = o["tflops"] * o["ms"] / o["untuned_ms"]
        flex_tflops = f"{f['tflops']:.0f}" if f else "–"
        out.append(f'| {v} | {ANCHOR_16K_D128.get(v.replace("_approx", ""))} | {flex_tflops} | {untuned:.0f} | '
                   f'{o["tflops"]:.0f} |')
    return ["## N = 16384, d = 128 vs the anchors", "", *out, ""]


def conformance(result):
    conf = result.get("conformance", [])
    passed = sum(1 for c in conf if c.get("pass"))
    out = [f"{passed} passed, {len(conf) - passed} failed (module variants of {len({c['name'] for c in conf})} cases)", "",
           "| case | module | loops | dtype | ours out err | ours lse err | flex out err | flex lse err | pass |",
           "|---|---|---|---|---|---|---|---|---|"]
    for c in conf:
        f = lambda k: f'{c[k]:.1e}' if isinstance(c.get(k), float) else "–"  # noqa: E731
        path = {True: " (tma path)", False: " (tma fell back to pointers)"}.get(c.get("tma_path"), "")
        forms = ", ".join(FORMS.get(x, str(x)) for x in c.get("loop_forms", []))
        out.append(f'| {c["name"]} | {c.get("module", "")}{path} | {forms}{" (forced)" if c.get("forced") else ""} | '
                   f'{c.get("dtype", "")} | {f("out_err")} | {f("lse_err")} | {f("flex_out_err")} | {f("flex_lse_err")} | '
                   f'{"yes" if c.get("pass") else "NO " + c.get("error", "")[:80]} |')
    return out


def markdown(result):
    env = result["env"]
    timed = bool(result["rows"])  # a conformance-only run has no timed rows and needs no bench inputs
    generate = "npx tsx src/triton-generate.ts" + ("" if timed else " --only conformance")
    commands = result.get("commands") or [env["command"]]
    tuning = [r["tuning_s"] for r in result["rows"] if r["impl"] == "ours"]
    lines = [f'# Triton backend on {env["gpu"]} (torch {env["torch"]}, triton {env["triton"]})', "",
             f'Command: `cd apps/bench && {generate}`, then on the device (carrying apps/bench/device/triton/generated): '
             + "; ".join(f"`{c}`" for c in commands) + ".", ""]
    if timed:
        lines += ["## Forward, bf16, ours vs PyTorch flex_attention (torch.compile), same process", "",
                  "Modules from the public `compile(..., { backend: \"triton\" })`. Effective TFLOP/s = "
                  "4·B·H·N²·D·density / time. Each time is the median over 3 interleaved rounds (flex, ours untuned, ours "
                  "tuned) of triton.testing.do_bench medians. Untuned: the config the module resolves with no tuning cache "
                  "(source: shipped pick for this GPU, else its default). Tuned: after the module's own `tune()` on the "
                  "same tensors (tuning s = its wall time, compiles included); the call then resolves the cached pick. "
                  "Loops: the block-loop forms the launcher read from the tables.", "",
                  *table(result), "",
                  f"Tuning: {max(tuning):.1f} s at most, {sum(tuning) / len(tuning):.1f} s on average per problem." if tuning else "",
                  "", *anchors(result)]
    if result.get("conformance"):
        lines += ["## Conformance", "", *conformance(result), ""]
    return "\n".join(lines)


def merge(results):
    out = dict(env=results[0]["env"], conformance=[], rows=[], commands=[])
    for r in results:
        out["conformance"] += r.get("conformance", [])
        out["rows"] += r["rows"]
        out["commands"].append(r["env"]["command"])
    return out


def config_list(c):
    return [c["BLOCK_M"], c["BLOCK_N"], c["num_warps"], c["num_stages"]]


def tuned_tables(rows):
    """The tuned picks of a run in the shipped-table format (packages/codegen-triton/src/tuned/<gpu>.json), one
    table per device: structure class -> problem bucket -> [BLOCK_M, BLOCK_N, num_warps, num_stages]. Variants of
    one structure class and bucket (causal, sliding window, prefix-LM...) share an entry: it gets the config with the
    least summed slowdown against each variant's own fastest, among the configs timed for all of them."""
    groups = {}
    for r in rows:
        if r["impl"] == "ours" and r.get("structure"):
            groups.setdefault((r["device"], r["structure"], r["bucket"]), []).append(r)
    tables = {}
    for (device, structure, bucket), group in sorted(groups.items()):
        timed = [r["timings"] for r in group if r.get("timings")]
        common = set.intersection(*(set(t) for t in timed)) if timed else set()
        if common:
            pick = min(sorted(common), key=lambda c: sum(t[c] / min(t.values()) for t in timed))
            config = [int(x) for x in pick.replace("x", " ").replace("w", " ").replace("s", " ").split()]
        else:
            config = config_list(group[0]["config"])
        t = tables.setdefault(device, {"format": "flexattn.triton-shipped/1", "device": device, "entries": {}})
        t["entries"].setdefault(structure, {})[bucket] = config
    return list(tables.values())


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--merge":
        print(json.dumps(merge([json.load(open(p)) for p in args[1:]]), indent=1))
    elif args and args[0] == "--tuned":
        tables = tuned_tables(merge([json.load(open(p)) for p in args[1:]])["rows"])
        print(json.dumps(tables[0] if len(tables) == 1 else tables, indent=1, sort_keys=True))
    else:
        print(markdown(merge([json.load(open(p)) for p in args])))
