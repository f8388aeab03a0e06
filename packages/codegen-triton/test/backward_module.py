"""Runs a generated module forward and backward on the CPU, without torch, triton or a GPU (used by backward.test.ts):
torch_standin.py for the torch names the module touches and triton_emulator.py for the kernels.

    python3 backward_module.py MODULE.py CASE.json

CASE.json: the problem, q / k / v / dout (values, shape, strides), the kv tables, the captured buffers, which of them
require grad, the float64 reference gradients and a tolerance. Checks, one printed line per failure:
  - flex_attention(...) with requires_grad records a FlexAttentionFunction (and without it, does not);
  - its backward's dq / dk / dv / buffer gradients match the reference (outputs are allocated NaN-poisoned, so an
    unwritten element fails) and are bitwise equal over two runs;
  - the q-direction tables the module computes are the transpose of the kv tables;
  - walking every table by index gives the same gradients bit for bit as the loop forms the launcher picked (the
    launches' loop forms and bounds switches are printed as an "info: " line);
  - argument errors: out= under autograd, a mask-mod buffer that requires grad.
"""
import contextlib
import io
import json
import warnings
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_standin import GRAD_ENABLED, NP, T, empty, load  # noqa: E402

FAILURES = []


def expect(cond, what):
    if not cond:
        FAILURES.append(what)


def tensor(j):
    dt = {"f32": "float32", "f16": "float16"}[j["dtype"]]
    base = np.asarray(j["data"], NP[dt])
    return T(base, j["shape"], j["strides"], 0, dt)


def rel_err(got, ref, scale=None):
    got, ref = np.asarray(got, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    scale = np.abs(ref if scale is None else np.asarray(scale, np.float64)).max(initial=0.0)
    nan = int(np.isnan(got).sum())
    return (float(np.abs(got - ref).max(initial=0.0)) / max(scale, 1e-6) if not nan else float("inf")), nan


def main():
    mod_path, case_path = sys.argv[1:3]
    os.environ["FLEXATTN_CACHE_DIR"] = tempfile.mkdtemp(prefix="flexattn-bwd-test-")
    case = json.load(open(case_path))
    mod = load(mod_path)
    p = case["problem"]
    q, k, v, dout = (tensor(case[n]) for n in ("q", "k", "v", "dout"))
    tb = case["tables"]
    rows = (tb["Bm"], tb["Hm"], tb["QB"])
    tables = (T.of(np.asarray(tb["kvNumBlocks"], np.int32).reshape(rows)), T.of(np.asarray(tb["kvIndices"], np.int32).reshape(*rows, tb["KVB"])),
              T.of(np.asarray(tb["fullKvNumBlocks"], np.int32).reshape(rows)), T.of(np.asarray(tb["fullKvIndices"], np.int32).reshape(*rows, tb["KVB"])))
    bufs = {b["name"]: T.of(np.asarray(b["data"], NP["int32" if b["dtype"] == "i32" else "float32"]).reshape(b["shape"])) for b in case["buffers"]}
    kw = dict(scale=p["scale"], q_offset=p["qOffset"], kv_offset=p["kvOffset"])
    name = case["name"]

    # Without requires_grad: the plain forward, no autograd record.
    out = mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=False)
    expect(out._ctx is None, f"{name}: no autograd record without requires_grad")

    # The q-direction tables are the transpose of the kv tables.
    qt = mod.q_tables(tables)
    for (num, idx), (qnum, qidx) in (((tables[0], tables[1]), (qt[0], qt[1])), ((tables[2], tables[3]), (qt[2], qt[3]))):
        dense = np.zeros((tb["Bm"], tb["Hm"], tb["QB"], tb["KVB"]), bool)
        for bb, hh, r in np.ndindex(*rows):
            dense[bb, hh, r, idx.a[bb, hh, r, :num.a[bb, hh, r]]] = True
        for bb, hh, c in np.ndindex(tb["Bm"], tb["Hm"], tb["KVB"]):
            want = np.nonzero(dense[bb, hh, :, c])[0]
            got = qidx.a[bb, hh, c, :qnum.a[bb, hh, c]]
            if not np.array_equal(want, got):
                FAILURES.append(f"{name}: q table column {(bb, hh, c)} lists {got.tolist()}, expected {want.tolist()}")
                break
    expect(mod.q_tables(tables) is qt, f"{name}: q_tables is cached for unchanged tables")

    # Under autograd: a FlexAttentionFunction record, then its backward twice.
    for t in (q, k, v):
        t.requires_grad_(True)
    for n in case["gradBuffers"]:
        bufs[n].requires_grad_(True)
    out, lse = mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=True)
    expect(out._ctx is not None and out._ctx[0] is mod.FlexAttentionFunction, f"{name}: requires_grad records a FlexAttentionFunction")
    cls, ctx = out._ctx
    runs = [cls.backward(ctx, dout, None) for _ in range(2)]
    grads = runs[0]
    expect(len(grads) == 6 + len(mod.BUFFERS) and all(g is None for g in grads[:3]), f"{name}: backward returns one entry per forward input")
    ref = case["ref"]
    for label, got, want in (("dq", grads[3], ref["dq"]), ("dk", grads[4], ref["dk"]), ("dv", grads[5], ref["dv"])):
        err, nan = rel_err(got.a, want)
        expect(nan == 0, f"{name}: {label} has {nan} NaN (unwritten) elements")
        expect(err <= case["tolerance"], f"{name}: {label} error {err:.2e} > {case['tolerance']}")
    names = [s[0] for s in mod.BUFFERS]
    for g in ref["buffers"]:
        got = grads[6 + names.index(g["name"])]
        err, nan = rel_err(got.a, g["grad"], g["absSum"])
        expect(nan == 0 and err <= case["tolerance"], f"{name}: gradient of {g['name']} error {err:.2e} (NaN {nan})")
    for i, (a, b) in enumerate(zip(*runs)):
        if a is not None:
            expect(np.array_equal(a.a, b.a), f"{name}: backward output {i} differs between two runs")
    # Where Triton has no tl.gather, a q - kv table's gradient goes entry by entry: dq, dk, dv bit for bit the same,
    # the table's gradient within the tolerance of the reference.
    if getattr(mod, "_HAS_GATHER", None) is not None:
        mod._HAS_GATHER = False
        try:
            fallback = cls.backward(ctx, dout, None)
        finally:
            mod._HAS_GATHER = True
        for i in (3, 4, 5):
            expect(np.array_equal(fallback[i].a, grads[i].a), f"{name}: backward output {i} differs without tl.gather")
        for g in ref["buffers"]:
            err, nan = rel_err(fallback[6 + names.index(g["name"])].a, g["grad"], g["absSum"])
            expect(nan == 0 and err <= case["tolerance"], f"{name}: without tl.gather, gradient of {g['name']} error {err:.2e} (NaN {nan})")
        print("note: checked without tl.gather")
    # Both loop forms walk the same tiles in the same order: forcing every table walk to load block indices
    # (LOOP_INDEXED) where the launcher picked one range gives the same gradients bit for bit. The launches' forms and
    # bounds switches are printed for backward.test.ts, which checks that the cases cover each.
    launches = {}
    main_kernel = mod._flexattn_bwd

    class Recorder:
        def __getitem__(self, grid):
            launch = main_kernel[grid]

            def run(*a, **kw):
                for pass_, n in (("dkdv", "1"), ("dq", "2")):
                    launches[pass_] = {key: int(kw[key + n]) for key in ("PARTIAL_LOOP", "FULL_LOOP", "EVEN_M", "EVEN_N")}
                return launch(*a, **kw)
            return run

    mod._flexattn_bwd = Recorder()
    real_forms, real_loop_form = ctx.call.forms, mod.loop_form
    try:
        cls.backward(ctx, dout, None)
        print(f"info: {json.dumps(launches)}")
        indexed = lambda form: mod.LOOP_INDEXED if form != mod.LOOP_NONE else form  # noqa: E731
        ctx.call.forms = tuple(indexed(f) for f in real_forms)
        mod.loop_form = lambda num, idx: indexed(real_loop_form(num, idx))
        forced = cls.backward(ctx, dout, None)
        for i, (a, b) in enumerate(zip(forced, grads)):
            if a is not None:
                expect(np.array_equal(a.a, b.a), f"{name}: backward output {i} walking every table by index differs")
    finally:
        mod._flexattn_bwd = main_kernel
        ctx.call.forms, mod.loop_form = real_forms, real_loop_form

    # flex_attention_backward from the kept out and lse: the same kernels, so the same dq, dk, dv bit for bit.
    saved_out, saved_lse = ctx.saved_tensors
    direct = mod.flex_attention_backward(q, k, v, saved_out, saved_lse, dout, *tables, **bufs, **kw)
    for label, got, want in zip(("dq", "dk", "dv"), direct, grads[3:6]):
        expect(np.array_equal(got.a, want.a), f"{name}: flex_attention_backward's {label} differs from the autograd path's")
    try:
        mod.flex_attention_backward(q, k, v, saved_out, saved_lse, dout[:, :, :1], *tables, **bufs, **kw)
        FAILURES.append(f"{name}: flex_attention_backward accepts a dout of another shape")
    except ValueError as e:
        expect("dout" in str(e), f"{name}: the dout error names it ({e})")
    # A default backward config the GPU cannot fit gives way to the next candidate, with one warning; the same
    # gradients as asking for that candidate. One the caller chose is refused.
    if len(mod.BWD_CANDIDATES) > 1:
        fallback = mod.BWD_CANDIDATES[1]
        mod.set_backward_config(fallback)
        want = cls.backward(ctx, dout, None)
        mod.set_backward_config(None)
        real = mod._flexattn_bwd
        big = mod.BWD_CONFIG

        class OutOfResources(Exception):
            pass

        class TooBig:
            def __getitem__(self, grid):
                launch = real[grid]

                def run(*a, **kw):
                    if (kw["BLOCK_M1"], kw["num_warps"], kw["num_stages"]) == (
                            mod._fit_tile(big["BLOCK_M1"], mod.SPARSE_BLOCK[0]), big["num_warps"], big["num_stages"]) and \
                            kw["BLOCK_N1"] == mod._fit_tile(big["BLOCK_N1"], mod.SPARSE_BLOCK[1]):
                        raise OutOfResources("out of resource: shared memory")
                    return launch(*a, **kw)
                return run

        mod._flexattn_bwd = TooBig()
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                got = cls.backward(ctx, dout, None)
            for i, (a, b) in enumerate(zip(got, want)):
                if a is not None:
                    expect(np.array_equal(a.a, b.a), f"{name}: the fallback backward's output {i} differs from {fallback}'s")
            expect(any("cannot run" in str(w.message) and "backward config" in str(w.message) for w in seen), f"{name}: the backward fallback is reported")
            mod.set_backward_config(big)
            try:
                cls.backward(ctx, dout, None)
                FAILURES.append(f"{name}: a chosen backward config that does not fit is accepted")
            except ValueError as e:
                expect("cannot run" in str(e) and "shared memory" in str(e), f"{name}: the refusal says why ({e})")
            mod.set_backward_config(None)
        finally:
            mod._flexattn_bwd = real
            mod._unrunnable.clear()
    for i, spec in enumerate(mod.BUFFERS):
        if spec[0] not in case["gradBuffers"]:
            expect(grads[6 + i] is None, f"{name}: {spec[0]} (no requires_grad) gets no gradient")

    # Buffers that do not require grad: no gradient for them (their accumulation is switched off), the same dq.
    if case["gradBuffers"]:
        for n in case["gradBuffers"]:
            bufs[n].requires_grad_(False)
        out = mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=False)
        cls, ctx = out._ctx
        frozen = cls.backward(ctx, dout, None)
        expect(all(g is None for g in frozen[6:]), f"{name}: buffers without requires_grad get no gradient")
        expect(np.array_equal(frozen[3].a, grads[3].a), f"{name}: dq does not depend on which buffers require grad")
        for n in case["gradBuffers"]:
            bufs[n].requires_grad_(True)

    # Errors a caller can make.
    try:
        mod.flex_attention(q, k, v, *tables, **bufs, **kw, out=empty(out.shape, out.dtype), return_lse=False)
        FAILURES.append(f"{name}: out= under autograd is accepted")
    except ValueError as e:
        expect("out=" in str(e), f"{name}: the out= error names it ({e})")
    for n in mod.MASK_BUFFERS:
        if bufs[n].dtype == "float32":
            bufs[n].requires_grad_(True)
            try:
                mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=False)
                FAILURES.append(f"{name}: a mask-mod buffer that requires grad is accepted")
            except ValueError as e:
                expect("mask mod" in str(e), f"{name}: the mask-buffer error says why ({e})")
            bufs[n].requires_grad_(False)
    GRAD_ENABLED[0] = False
    out = mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=False)
    expect(out._ctx is None, f"{name}: no autograd record with grad disabled")
    GRAD_ENABLED[0] = True
    check_backward_tuning(mod, name, q, k, v, tables, bufs, kw, dout, ref, case["tolerance"])
    print("\n".join(FAILURES))


@contextlib.contextmanager
def quiet():
    """Tuning's progress lines (stderr) and warnings are not what these checks read."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def check_backward_tuning(mod, name, q, k, v, tables, bufs, kw, dout, ref, tol):
    """The backward's config resolution: BWD_CONFIG by default; tune_backward() times every BWD_CANDIDATES (a
    stand-in do_bench reports set timings, in candidate order), caches the fastest under the backward's own key, and
    later backwards take it ("cache") and still match the reference; set_backward_config beats the cache; with
    FLEXATTN_AUTOTUNE=1 and an empty cache the first backward under autograd tunes ("tuned")."""
    cands = mod.BWD_CANDIDATES
    if len(cands) < 3:
        return
    fastest = 2
    times = iter([])
    testing = sys.modules["triton.testing"]

    def fake_bench(fn, **_):
        return next(times)

    def backward_once():
        out = mod.flex_attention(q, k, v, *tables, **bufs, **kw, return_lse=False)
        cls, ctx = out._ctx
        return cls.backward(ctx, dout, None)

    def fresh_cache():
        os.environ["FLEXATTN_CACHE_DIR"] = tempfile.mkdtemp(prefix="flexattn-bwd-tune-")
        mod._disk_entries = None

    text = mod.backward_config_text
    real_bench = testing.do_bench
    testing.do_bench = fake_bench
    try:
        fresh_cache()
        backward_once()
        last = mod.last_backward_config()
        expect(last["source"] == "default" and text(last["config"]) == text(mod.BWD_CONFIG),
               f"{name}: the backward runs BWD_CONFIG by default, got {last}")
        times = iter([1.0 if i == fastest else 2.0 + i for i in range(len(cands))])
        with quiet():
            pick = mod.tune_backward(q, k, v, *tables, dout=dout, **bufs, **kw)
        expect(text(pick) == text(cands[fastest]), f"{name}: tune_backward picks the fastest candidate, got {pick}")
        tuned = mod.last_backward_config()
        expect(tuned["source"] == "tuned" and len(tuned["timings"]) == len(cands), f"{name}: tune_backward reports its timings: {tuned}")
        on_disk = json.load(open(mod.cache_path()))["entries"]
        keys = [key for key in on_disk if key.startswith(mod.SPEC_HASH + mod.BACKWARD_ROLE + "|")]
        expect(len(keys) == 1 and text(on_disk[keys[0]]["config"]) == text(cands[fastest]),
               f"{name}: the pick is cached under the backward's key: {list(on_disk)}")
        mod._disk_entries = None  # a new process reads the file
        grads = backward_once()
        last = mod.last_backward_config()
        expect(last["source"] == "cache" and text(last["config"]) == text(cands[fastest]), f"{name}: later backwards take the cached pick: {last}")
        for label, got, want in (("dq", grads[3], ref["dq"]), ("dk", grads[4], ref["dk"]), ("dv", grads[5], ref["dv"])):
            err, nan = rel_err(got.a, want)
            expect(nan == 0 and err <= tol, f"{name}: {label} with the tuned backward config: error {err:.2e} (NaN {nan})")
        exported = os.path.join(tempfile.mkdtemp(), "picks.json")
        expect(mod.export_tuning(exported) >= 1 and any(key in json.load(open(exported))["entries"] for key in keys),
               f"{name}: export_tuning carries the backward's pick")
        mod.set_backward_config(cands[1])
        backward_once()
        expect(mod.last_backward_config()["source"] == "explicit", f"{name}: set_backward_config beats the cache")
        mod.set_backward_config(None)
        fresh_cache()
        os.environ["FLEXATTN_AUTOTUNE"] = "1"
        times = iter([1.0 if i == fastest else 2.0 + i for i in range(2 * len(cands))])  # the forward tunes too
        with quiet():
            backward_once()
        last = mod.last_backward_config()
        expect(last["source"] == "tuned", f"{name}: FLEXATTN_AUTOTUNE=1 tunes the first backward: {last}")
    finally:
        os.environ.pop("FLEXATTN_AUTOTUNE", None)
        testing.do_bench = real_bench


if __name__ == "__main__":
    main()
