"""Turn a harness result JSON into the markdown tables committed under apps/bench/results/.

    python3 report.py triton-h100.json > triton-h100.md
"""
import json
import sys

ANCHOR_16K_D128 = dict(noop=492, causal=416, sliding_window_1024=347, prefix_lm=414, document_causal=320,
                       alibi_causal=375, softcap_causal=195)
ORDER = ["noop", "causal", "sliding_window_1024", "prefix_lm", "document_causal", "alibi_causal", "softcap_causal",
         "softcap_causal_approx"]


def cfg_text(c):
    return f'{c["BLOCK_M"]}x{c["BLOCK_N"]} w{c["num_warps"]} s{c["num_stages"]}' if c else ""


def table(result):
    rows = result["rows"]
    ours = {(r["variant"], r["N"], r["D"]): r for r in rows if r["impl"] == "ours"}
    flex = {(r["variant"], r["N"], r["D"]): r for r in rows if r["impl"] == "flex"}
    # "ours tma": the fastest candidate config of the module generated with the tma option (appended
    # columns, only when the run timed it; "(ptr)" marks a launch that fell back to the pointer path).
    with_tma = any(r.get("tma_ms") for r in ours.values())
    tma_head = " ours tma ms | tma / flex | tma config |" if with_tma else ""
    out = ["| D | N | variant | density | flex ms | ours ms (default config) | ours ms (tuned) | flex TFLOP/s | ours TFLOP/s (tuned) "
           "| default / flex | tuned / flex | tuned config |" + tma_head,
           "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if with_tma else "")]
    for D in (128, 64):
        for N in (16384, 4096, 1024):
            for v in ORDER:
                o = ours.get((v, N, D))
                f = flex.get(("softcap_causal" if v == "softcap_causal_approx" else v, N, D))
                if not o and not f:
                    continue
                cfg = cfg_text(o["config"] if o else None)
                dms = o.get("default_ms") if o else None
                cells = [str(D), str(N), v, f'{(o or f)["density"]:.3f}',
                         f'{f["ms"]:.3f}' if f else "–",
                         f"{dms:.3f}" if dms else "–",
                         f'{o["ms"]:.3f}' if o else "–",
                         f'{f["tflops"]:.0f}' if f else "–",
                         f'{o["tflops"]:.0f}' if o else "–",
                         f'{f["ms"] / dms:.2f}x' if f and dms else "–",
                         f'{f["ms"] / o["ms"]:.2f}x' if f and o else "–",
                         cfg]
                if with_tma:
                    tms = o.get("tma_ms") if o else None
                    fell_back = " (ptr)" if o and o.get("tma_used") is False else ""
                    cells += [f"{tms:.3f}{fell_back}" if tms else "–",
                              f'{f["ms"] / tms:.2f}x' if f and tms else "–",
                              cfg_text(o.get("tma_config")) if o else ""]
                out.append("| " + " | ".join(cells) + " |")
    return out


def anchors(result):
    """Our 16k, d=128 figures next to the anchor JSON's flex_attention figures (shared/reference)."""
    ours = {r["variant"]: r for r in result["rows"] if r["impl"] == "ours" and r["N"] == 16384 and r["D"] == 128}
    flex = {r["variant"]: r for r in result["rows"] if r["impl"] == "flex" and r["N"] == 16384 and r["D"] == 128}
    if not ours:
        return []
    out = ["| variant | anchor flex TFLOP/s | flex TFLOP/s (this run) | ours default TFLOP/s | ours tuned TFLOP/s |",
           "|---|---|---|---|---|"]
    for v in ORDER:
        o = ours.get(v)
        if not o:
            continue
        a = ANCHOR_16K_D128.get(v.replace("_approx", ""))
        f = flex.get(v.replace("_approx", ""))
        dflt = o["tflops"] * o["ms"] / o["default_ms"] if o.get("default_ms") else None
        out.append(f'| {v} | {a} | {f["tflops"]:.0f} | ' if f else f"| {v} | {a} | – | ")
        out[-1] += (f"{dflt:.0f}" if dflt else "–") + f' | {o["tflops"]:.0f} |'
    return ["## N = 16384, d = 128 vs the anchors", "", *out, ""]


def errors(result):
    with_tma = any("tma_err_max" in r for r in result["rows"])
    out = ["| D | variant | ours max err | flex max err | ours rel-fro | flex rel-fro |" + (" tma max err | tma rel-fro |" if with_tma else ""),
           "|---|---|---|---|---|---|" + ("---|---|" if with_tma else "")]
    nan = float("nan")
    for r in result["rows"]:
        if r["impl"] == "ours" and "err_max" in r:
            out.append(f'| {r["D"]} | {r["variant"]} | {r["err_max"]:.2e} | {r.get("flex_err_max", nan):.2e} | '
                       f'{r["err_fro"]:.2e} | {r.get("flex_err_fro", nan):.2e} |'
                       + (f' {r.get("tma_err_max", nan):.2e} | {r.get("tma_err_fro", nan):.2e} |' if with_tma else ""))
    return out


def sweep(result):
    out = ["| D | variant | config | ms | TFLOP/s |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        if r["impl"] == "ours-sweep" and r["N"] == 16384:
            c = r["config"]
            out.append(f'| {r["D"]} | {r["variant"]} | {c["BLOCK_M"]}x{c["BLOCK_N"]} w{c["num_warps"]} s{c["num_stages"]} | '
                       f'{r["ms"]:.3f} | {r["tflops"]:.0f} |')
    return out


def conformance(result):
    conf = result.get("conformance", [])
    passed = sum(1 for c in conf if c.get("pass"))
    out = [f"{passed} passed, {len(conf) - passed} failed (module variants of {len({c['name'] for c in conf})} cases)", "",
           "| case | module | dtype | ours out err | ours lse err | flex out err | flex lse err | pass |",
           "|---|---|---|---|---|---|---|---|"]
    for c in conf:
        f = lambda k: f'{c[k]:.1e}' if isinstance(c.get(k), float) else "–"
        path = {True: " (tma path)", False: " (tma fell back to pointers)"}.get(c.get("tma_path"), "")
        out.append(f'| {c["name"]} | {c.get("module", "")}{path} | {c.get("dtype", "")} | {f("out_err")} | {f("lse_err")} | '
                   f'{f("flex_out_err")} | {f("flex_lse_err")} | {"yes" if c.get("pass") else "NO " + c.get("error", "")[:80]} |')
    return out


def method(result):
    if any("rounds" in r for r in result["rows"]):
        return ("Each time is the median over 3 interleaved rounds (flex, ours with the default config, ours with "
                "the fastest candidate config, and where timed ours with the tma option at its fastest candidate "
                "config) of triton.testing.do_bench medians; 'tuned' = fastest of the candidate configs.")
    return ("Each time is one triton.testing.do_bench median; 'tuned' = the fastest candidate config, re-timed once "
            "(so it can come out slower than the default when the clock drifts).")


def markdown(result):
    env = result["env"]
    has_err = any("err_max" in r for r in result["rows"])
    timed = bool(result["rows"])  # a conformance-only run has no timed rows and needs no bench inputs
    generate = "npx tsx src/triton-generate.ts" + ("" if timed else " --only conformance")
    lines = [f'# Triton backend on {env["gpu"]} (torch {env["torch"]}, triton {env["triton"]})', "",
             f'Command: `cd apps/bench && {generate} && cd device/triton && {env["command"]}` '
             "(device call carrying apps/bench/device/triton/generated).", "",
             *(["## Forward, bf16, ours vs PyTorch flex_attention (torch.compile), same process", "",
                "Effective TFLOP/s = 4·B·H·N²·D·density / time. " + method(result), "",
                *table(result), "", *anchors(result)] if timed else []),
             *(["## Numerical error vs float64 (N = 1024, batch 0)", "", *errors(result), ""] if has_err else []),
             *(["## Config sweep (N = 16384)", "", *sweep(result), ""] if any(r["impl"] == "ours-sweep" for r in result["rows"]) else []),
             *(["## Approximate tanh (options.approxTanh) vs float64", "", f'`{result["tanh_approx"]}`', ""] if result.get("tanh_approx") else []),
             *(["## Conformance", "", *conformance(result), ""] if result.get("conformance") else [])]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(json.load(open(sys.argv[1]))))
