"""Runs a generated module's config resolution, tuning cache, loop-form detection and launcher (used by
tuning.test.ts) without torch, triton or a GPU: stand-ins for the torch/triton names the module touches, a
numpy-backed stand-in tensor, a kernel that records its launches and a do_bench that reports set timings.

    python3 tuning_module.py MODULE.py [MODULE.py ...]

Prints one line per failed expectation; no output means all held.
"""
import contextlib
import importlib.util
import io
import json
import multiprocessing
import os
import sys
import tempfile
import types
import warnings

import numpy as np

import numpy_tensor  # beside this script: python puts its folder on sys.path

FAILURES = []


def expect(cond, what):
    if not cond:
        FAILURES.append(what)


# ---- stand-ins ----
SYNCS = [0]  # how many times loop_form read tables back from the "device"


class T(numpy_tensor.T):
    """numpy_tensor's tensor with what the launcher checks need on top: a data_ptr a check can set (a new tensor at a
    cached one's address), the element size of the dtype named (bf16 and f16 data is held as float32 here) and
    tolist counting loop_form's reads back from the "device" (SYNCS)."""

    _ptr = None  # None: its own address, id(self)

    def data_ptr(self):
        return id(self) if self._ptr is None else self._ptr

    def element_size(self):
        return 2 if self.dtype in ("bfloat16", "float16") else 4

    def tolist(self):
        SYNCS[0] += 1
        return super().tolist()


def tensor(data, dtype=None, ptr=None):
    """A T over data (float32, int32 or bool), dtype its torch name; ptr sets its data_ptr."""
    t = T.of(np.asarray(data), dtype)
    t._ptr = ptr
    return t


torch = types.ModuleType("torch")
for name in ("bfloat16", "float16", "float32", "int32"):
    setattr(torch, name, name)
torch.Tensor = T
torch.arange = lambda n, device=None, dtype=None: tensor(np.arange(n, dtype=np.int32))
torch.stack = lambda ts: tensor(np.stack([t.a for t in ts]))
_NP = {"int32": np.int32}
torch.empty = lambda shape, dtype=None, device=None: tensor(np.zeros(shape, _NP.get(dtype, np.float32)), dtype=dtype)
torch.zeros = torch.empty
torch.full = lambda shape, value, dtype=None, device=None: tensor(np.full(shape, value, _NP.get(dtype, np.float32)), dtype=dtype)
torch.empty_like = lambda t: tensor(np.zeros_like(t.a), dtype=t.dtype)
torch.version = types.SimpleNamespace(hip=None)
torch.autograd = types.SimpleNamespace(Function=object)  # the module subclasses it (its backward)
torch.is_grad_enabled = lambda: False
torch.cuda = types.SimpleNamespace(device=lambda d: contextlib.nullcontext(), get_device_name=lambda i: "Stand-in GPU",
                                   current_device=lambda: 0, get_device_capability=lambda d=None: (9, 0))
triton = types.ModuleType("triton")
triton.jit = lambda fn: fn
triton.cdiv = lambda a, b: -(-a // b)
tl = types.ModuleType("triton.language")
tl.constexpr = object
triton.language = tl
extra = types.ModuleType("triton.language.extra")
extra.libdevice = types.SimpleNamespace()
testing = types.ModuleType("triton.testing")
TIMINGS = {}  # config text -> ms reported by the stand-in do_bench for a launch with that config
LAUNCHES = []  # (grid, args, kwargs) of every kernel launch
WARMUPS = []  # kwargs of every compile-only launch


def do_bench(fn, warmup=25, rep=100, return_mode="mean"):
    fn()
    kw = LAUNCHES[-1][2]
    return TIMINGS.get(_text(kw), 5.0)


testing.do_bench = do_bench
triton.testing = testing


class AsyncCompileMode:
    def __init__(self, executor):
        self.executor = executor

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


triton.AsyncCompileMode = AsyncCompileMode


TOO_BIG = set()  # config texts the stand-in GPU refuses, as Triton does a kernel over its shared memory


class OutOfResources(Exception):
    """Named as Triton's own (triton.runtime.errors.OutOfResources)."""


def _text(kw):
    return f'{kw["BLOCK_M"]}x{kw["BLOCK_N"]} w{kw["num_warps"]} s{kw["num_stages"]}'


class Kernel:
    """Stands in for the @triton.jit kernel: records launches and compile-only warmups; refuses TOO_BIG configs."""

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            if _text(kwargs) in TOO_BIG:
                raise OutOfResources(f"out of resource: shared memory, Required: 262144, Hardware limit: 232448")
            LAUNCHES.append((grid, args, kwargs))
        return launch

    def warmup(self, *args, grid, **kwargs):
        WARMUPS.append(kwargs)


sys.modules.update({"torch": torch, "triton": triton, "triton.language": tl, "triton.language.extra": extra,
                    "triton.testing": testing})


def load(path):
    spec = importlib.util.spec_from_file_location("generated", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod._flexattn_fwd_kernel = Kernel()
    return mod


def fresh(mod, cache_dir):
    """A process's view of the module: the cache folder set, nothing read yet."""
    os.environ["FLEXATTN_CACHE_DIR"] = cache_dir
    os.environ.pop("FLEXATTN_AUTOTUNE", None)
    mod._disk_entries = None
    mod._warned.clear()
    mod._last.clear()
    mod._unrunnable.clear()
    mod.SHIPPED = {}


def quiet(fn, *args, **kwargs):
    """fn's result and what it printed to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        return fn(*args, **kwargs), err.getvalue()


def raises(fn, *args, match=""):
    try:
        fn(*args)
    except ValueError as e:
        return match in str(e)
    return False


# ---- the checks ----
def check_bucket(mod):
    expect(mod.problem_bucket(16384, 16384, 16) == "q16384-kv16384-bh16", "bucket of a power-of-two problem")
    expect(mod.problem_bucket(1000, 3000, 24) == "q1024-kv4096-bh32", "bucket rounds each size up to a power of two")
    expect(mod.problem_bucket(1, 1, 1) == "q1-kv1-bh1", "bucket of a one-element problem")
    expect(mod.problem_bucket(4097, 4096, 256) != mod.problem_bucket(4096, 4096, 256), "4097 and 4096 are other buckets")


def check_configs(mod):
    good = dict(BLOCK_M=64, BLOCK_N=32, num_warps=4, num_stages=3)
    expect(mod.check_config(good) == good, "a valid config passes check_config")
    for bad, msg in ((dict(good, BLOCK_M=48), "'BLOCK_M'] = 48"), (dict(good, BLOCK_N=256), "'BLOCK_N'] = 256"),
                     (dict(good, BLOCK_M=8), "'BLOCK_M'] = 8"), (dict(good, num_warps=3), "num_warps"),
                     (dict(good, num_stages=0), "num_stages"), (dict(good, BLOCK_m=64), "unknown key(s) BLOCK_m"),
                     (dict(good, num_warps=True), "must be an int"), ([64, 64, 4, 2], "must be a dict")):
        expect(raises(mod.check_config, bad, match=msg), f"check_config rejects {bad} naming {msg!r}")
    for c in mod.CANDIDATES:
        expect(mod.check_config(c) == c, f"candidate {c} passes check_config")
    expect(mod.CANDIDATES[0] == mod.CONFIG, "CANDIDATES[0] is CONFIG")


def check_cache_path(mod):
    env = dict(os.environ)
    try:
        os.environ["FLEXATTN_CACHE_DIR"] = "/x/fa"
        expect(mod.cache_path() == "/x/fa/triton-tune.json", "FLEXATTN_CACHE_DIR holds the cache")
        del os.environ["FLEXATTN_CACHE_DIR"]
        os.environ["XDG_CACHE_HOME"] = "/x/xdg"
        expect(mod.cache_path() == "/x/xdg/flexattn/triton-tune.json", "XDG_CACHE_HOME is respected")
        del os.environ["XDG_CACHE_HOME"]
        os.environ["HOME"] = "/x/home"
        expect(mod.cache_path() == "/x/home/.cache/flexattn/triton-tune.json", "~/.cache/flexattn by default")
    finally:
        os.environ.clear()
        os.environ.update(env)


def check_cache_file(mod, folder):
    path = os.path.join(folder, "c", "triton-tune.json")
    cfg = dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=2)
    expect(mod.read_cache(path) == {}, "a missing cache file reads as empty")
    mod.write_cache(path, {"a": {"config": cfg}})
    mod.write_cache(path, {"b": {"config": cfg, "ms": 1.0}})
    data = json.load(open(path))
    expect(data["format"] == "flexattn.triton-tune/1", "the cache file carries its format version")
    expect(sorted(data["entries"]) == ["a", "b"], "a second write merges with the first")
    expect(not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")], "no temporary file is left")
    for name, text in (("corrupt", '{"format": "flexattn.triton-tune/1", "entr'),
                       ("version", json.dumps({"format": "flexattn.triton-tune/0", "entries": {"a": {"config": cfg}}})),
                       ("list", "[1, 2]")):
        open(path, "w").write(text)
        mod._warned.clear()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            first = mod.read_cache(path)
            second = mod.read_cache(path)
        expect(first == {} and second == {}, f"a {name} cache file reads as empty")
        expect(len(seen) == 1 and "will be rebuilt" in str(seen[0].message),
               f"a {name} cache file is reported once ({[str(w.message) for w in seen]})")
        mod.write_cache(path, {"c": {"config": cfg}})
        data = json.load(open(path))
        expect(data["format"] == "flexattn.triton-tune/1" and list(data["entries"]) == ["c"],
               f"a write rebuilds a {name} cache file")
    open(path, "w").write(json.dumps({"format": "flexattn.triton-tune/1",
                                      "entries": {"ok": {"config": cfg}, "bad": {"config": {"BLOCK_M": "x"}}, "n": 3}}))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        entries = mod.read_cache(path)
    expect(list(entries) == ["ok"], "malformed entries are dropped")
    expect(any("malformed" in str(w.message) for w in seen), "dropped entries are reported")
    other = dict(BLOCK_M=256, BLOCK_N=256, num_warps=8, num_stages=2)  # another module's (a larger BlockMask block)
    mod.write_cache(path, {"other-module": {"config": other}})
    expect("other-module" in mod.read_cache(path), "entries of other modules survive a write")


def _writer(args):
    path, worker, count = args
    mod = sys.modules["generated"]
    cfg = dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=2)
    for i in range(count):
        mod.write_cache(path, {f"w{worker}-{i}": {"config": cfg}})
    return worker


def check_concurrent_writers(mod, folder):
    path = os.path.join(folder, "concurrent", "triton-tune.json")
    workers, count = 6, 15
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(_writer, [(path, w, count) for w in range(workers)])
    entries = mod.read_cache(path)
    expect(len(entries) == workers * count, f"concurrent writers lose nothing ({len(entries)} of {workers * count})")


def check_resolution(mod, folder):
    fresh(mod, os.path.join(folder, "resolve"))
    timings = {}  # config text -> ms, what the stand-in timer reports
    timed = []

    def bench(c):
        timed.append(mod.config_text(c))
        ms = timings.get(mod.config_text(c), 5.0)
        if ms is None:
            raise RuntimeError("out of shared memory")
        return ms

    cands = mod.CANDIDATES
    b = "q4096-kv4096-bh64"
    got, src = mod.resolve_config("GPU", b, bench=bench)
    expect((got, src) == (mod.CONFIG, "default"), f"no cache, no tuning, nothing shipped: the default ({src})")
    expect(not timed, "nothing is timed unless tuning is on")
    shipped = dict(cands[2])
    mod.SHIPPED = {"GPU": {b: shipped}}
    expect(mod.resolve_config("GPU", b, bench=bench) == (shipped, "shipped"), "the shipped pick for this device")
    expect(mod.resolve_config("OTHER", b, bench=bench)[1] == "default", "another device's shipped pick is not used")
    expect(mod.last_config()["source"] == "default" and mod.last_config()["bucket"] == b, "last_config tells the source")

    timings.update({mod.config_text(cands[1]): None, mod.config_text(cands[3]): 1.5, mod.config_text(cands[4]): 2.0})
    (got, src), err = quiet(mod.resolve_config, "GPU", b, autotune=True, bench=bench)
    expect((got, src) == (cands[3], "tuned"), f"autotune picks the fastest candidate ({got}, {src})")
    expect(len(timed) == len(cands), "every candidate is timed")
    expect(f"flexattn: tuning {b} candidate 1/{len(cands)}" in err, "tuning prints progress to stderr")
    expect("failed: RuntimeError" in err, "a failing candidate is reported and skipped")
    entries = mod.read_cache(mod.cache_path())
    expect(mod.cache_key("GPU", b) in entries, "the pick is written to the cache file")
    expect(entries[mod.cache_key("GPU", b)]["config"] == cands[3], "the cached pick is the tuned one")
    times = entries[mod.cache_key("GPU", b)]["timings"]
    expect(times[mod.config_text(cands[3])] == 1.5 and mod.config_text(cands[1]) not in times,
           "the entry keeps every timed candidate's ms (not the failed one)")
    expect(mod.last_config()["timings"] == times, "last_config of a tuning call has the timings")

    timed.clear()
    expect(mod.resolve_config("GPU", b, bench=bench) == (cands[3], "cache"), "the cache beats the shipped table")
    expect("timings" not in mod.last_config(), "only a tuning call reports timings")
    expect(mod.resolve_config("GPU", b, autotune=True, bench=bench)[1] == "cache", "a cached pick is not tuned again")
    expect(not timed, "a cache hit times nothing")
    explicit = dict(BLOCK_M=32, BLOCK_N=32, num_warps=2, num_stages=1)
    expect(mod.resolve_config("GPU", b, config=explicit, bench=bench) == (explicit, "explicit"), "config= beats all")
    expect(raises(mod.resolve_config, "GPU", b, dict(explicit, BLOCK_M=24), match="BLOCK_M"),
           "a bad explicit config is a ValueError naming the key")

    mod._disk_entries = None  # another process: reads the file
    expect(mod.resolve_config("GPU", b)[1] == "cache", "another process finds the pick on disk")

    b2 = "q1024-kv1024-bh512"
    os.environ["FLEXATTN_AUTOTUNE"] = "1"
    expect(quiet(mod.resolve_config, "GPU", b2, autotune=False, bench=bench)[0][1] == "default",
           "autotune=False wins over FLEXATTN_AUTOTUNE=1")
    expect(quiet(mod.resolve_config, "GPU", b2, bench=bench)[0][1] == "tuned", "FLEXATTN_AUTOTUNE=1 tunes")
    del os.environ["FLEXATTN_AUTOTUNE"]

    timings.clear()
    timings[mod.config_text(cands[5])] = 0.5
    (got, src), _ = quiet(mod.resolve_config, "GPU", b, autotune=mod._FORCE, bench=bench)
    expect((got, src) == (cands[5], "tuned"), "forced tuning (tune()) re-tunes a cached bucket")
    expect(mod.resolve_config("GPU", b)[0] == cands[5], "and its pick replaces the cached one")

    (best, ms, times), err = quiet(mod.tune_candidates, "bb", bench, budget_s=0.0)
    expect(best == cands[0] and "budget of 0 s spent" in err and list(times) == [mod.config_text(cands[0])],
           "past the budget only the default is timed")

    margin = mod.TUNE_MARGIN
    close = {mod.config_text(cands[0]): 1.0, mod.config_text(cands[1]): 1.0 - margin / 2}
    (best, _, _), _ = quiet(mod.tune_candidates, "bb", lambda c: close.get(mod.config_text(c), 2.0))
    expect(best == cands[0], "a candidate faster by less than TUNE_MARGIN does not displace an earlier one")
    close[mod.config_text(cands[2])] = 1.0 - 2 * margin
    (best, _, _), _ = quiet(mod.tune_candidates, "bb", lambda c: close.get(mod.config_text(c), 2.0))
    expect(best == cands[2], "one faster by more than TUNE_MARGIN does")

    exported = os.path.join(folder, "export", "picks.json")
    n = mod.export_tuning(exported)
    expect(n == 2, f"export_tuning writes this module's two picks ({n})")
    fresh(mod, os.path.join(folder, "elsewhere"))
    expect(mod.resolve_config("GPU", b)[1] == "default", "a new machine has no picks")
    expect(mod.load_tuning(exported) == 2, "load_tuning loads both")
    expect(mod.resolve_config("GPU", b) == (cands[5], "cache"), "loaded picks resolve as cache entries")
    mod._disk_entries = None
    expect(mod.resolve_config("GPU", b2)[1] == "cache", "loaded picks are in this machine's cache file")
    bad = os.path.join(folder, "bad.json")
    open(bad, "w").write('{"format": "something-else", "entries": {}}')
    expect(raises(mod.load_tuning, bad, match="not a flexattn tuning file"), "load_tuning refuses a foreign file")


def check_loop_form(mod):
    LOOP_NONE, LOOP_RANGE, LOOP_INDEXED = mod.LOOP_NONE, mod.LOOP_RANGE, mod.LOOP_INDEXED
    # 1 x 1 x 3 rows of 4 columns; padding past each row's count is arbitrary.
    num = tensor(np.array([[[2, 1, 3]]], dtype=np.int32))
    runs = tensor(np.array([[[[4, 5, 9, 0], [7, 1, 1, 1], [0, 1, 2, 7]]]], dtype=np.int32))
    holes = tensor(np.array([[[[4, 6, 0, 0], [7, 0, 0, 0], [0, 1, 2, 0]]]], dtype=np.int32))
    zero = tensor(np.zeros((1, 1, 3), dtype=np.int32))
    expect(mod.loop_form(num, runs) == LOOP_RANGE, "ascending runs: one range per row")
    expect(mod.loop_form(num, holes) == LOOP_INDEXED, "a row with a gap: indexed")
    expect(mod.loop_form(zero, holes) == LOOP_NONE, "no blocks at all: no loop")
    expect(mod.blocks_are_contiguous(num, runs) and not mod.blocks_are_contiguous(num, holes),
           "blocks_are_contiguous agrees with loop_form")
    before = SYNCS[0]
    for _ in range(5):
        mod.loop_form(num, runs)
    expect(SYNCS[0] == before, "unchanged tables are not read again")
    runs.a[0, 0, 0, 1] = 8  # in place: row 0 is now 4, 8
    runs._version += 1
    expect(mod.loop_form(num, runs) == LOOP_INDEXED, "an in-place change (a new _version) is read again")
    same_address = tensor(np.array([[[[4, 5, 6, 0], [7, 0, 0, 0], [0, 1, 2, 0]]]], dtype=np.int32), ptr=holes.data_ptr())
    expect(mod.loop_form(num, same_address) == LOOP_RANGE, "a new tensor at a cached tensor's address is read again")


def check_launcher(mod, folder):
    """flex_attention and tune() end to end against the recording kernel: loop forms, dense and missing tables,
    the config each launch gets, tuning into scratch outputs, explicit configs."""
    fresh(mod, os.path.join(folder, "launcher"))
    B, H, L = 2, 4, 512
    bm0 = mod.CONFIG["BLOCK_M"]
    q = tensor(np.zeros((B, H, L, mod.QK_HEAD_DIM), np.float32), dtype=mod.DTYPE)
    k = tensor(np.zeros((B, H, L, mod.QK_HEAD_DIM), np.float32), dtype=mod.DTYPE)
    v = tensor(np.zeros((B, H, L, mod.V_HEAD_DIM), np.float32), dtype=mod.DTYPE)
    bufs = {name: tensor(np.zeros(shape, np.int32), dtype=dt) for name, dt, shape in mod.BUFFERS}
    QB, KVB = L // mod.SPARSE_BLOCK[0], L // mod.SPARSE_BLOCK[1]
    causal_num = tensor(np.ones((1, 1, QB), np.int32))
    causal_idx = tensor(np.array([[[[i] + [0] * (KVB - 1) for i in range(QB)]]], np.int32))
    full_num = tensor(np.arange(QB, dtype=np.int32).reshape(1, 1, QB))
    full_idx = np.tile(np.arange(KVB, dtype=np.int32), (1, 1, QB, 1))
    full_idx[0, 0, QB - 1, :3] = [0, 2, 1]  # the last row's blocks are not one run
    full_idx = tensor(full_idx)
    tables = (causal_num, causal_idx, full_num, full_idx)

    def launched(**kw):
        LAUNCHES.clear()
        WARMUPS.clear()
        result, err = quiet(mod.flex_attention, q, k, v, *kw.pop("tables", tables), **bufs, **kw)
        return result, LAUNCHES[-1], err

    out, (grid, args, kw), _ = launched(autotune=False)
    expect(len(LAUNCHES) == 1, "an untuned call launches once")
    expect(args[3] is out and tuple(out.shape) == (B, H, L, mod.V_HEAD_DIM), "the call writes the out it returns")
    expect({key: kw[key] for key in ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages")} == mod.CONFIG, "default config launched")
    expect(grid == (-(-L // bm0), H, B), f"grid {grid}")
    expect(kw["TILES_PER_KV_BLOCK"] == mod.SPARSE_BLOCK[1] // kw["BLOCK_N"], "TILES_PER_KV_BLOCK follows BLOCK_N")
    expect((kw["PARTIAL_LOOP"], kw["FULL_LOOP"]) == (mod.LOOP_RANGE, mod.LOOP_INDEXED),
           f"causal-like tables: partial range, full (one row with a gap) indexed, got {kw['PARTIAL_LOOP'], kw['FULL_LOOP']}")
    expect(mod.last_config()["source"] == "default" and mod.last_config()["bucket"] == mod.problem_bucket(L, L, B * H),
           "last_config of an untuned call")

    _, (_, dense1, kw), _ = launched(tables=(None,) * 4)
    _, (_, dense2, _), _ = launched(tables=(None,) * 4)
    expect((kw["PARTIAL_LOOP"], kw["FULL_LOOP"]) == (mod.LOOP_NONE, mod.LOOP_RANGE), "no mask: one full range per row")
    expect(all(a is b for a, b in zip(dense1[5:9], dense2[5:9])), "calls without a mask reuse one set of dense tables")
    _, (_, args, kw), _ = launched(tables=(causal_num, causal_idx, None, None))
    expect(kw["FULL_LOOP"] == mod.LOOP_NONE and args[7] is causal_num and args[8] is causal_idx,
           "without full tables the full loop is dropped and the partial tables stand in")

    explicit = dict(BLOCK_M=32, BLOCK_N=32, num_warps=2, num_stages=1)
    _, (grid, _, kw), _ = launched(config=explicit)
    expect(kw["BLOCK_M"] == 32 and kw["num_stages"] == 1 and grid[0] == L // 32, "config= is launched")
    try:
        mod.flex_attention(q, k, v, *tables, **bufs, config=dict(explicit, BLOCK_N=40))
        expect(False, "a bad config= is refused")
    except ValueError as e:
        expect("BLOCK_N" in str(e), f"a bad config= names the key ({e})")

    cands = mod.CANDIDATES
    # A shipped pick the GPU cannot run (made for other kernels of the structure class) gives way to the first
    # candidate that runs, remembered: later calls do not try it again. An explicit one is refused.
    big, fits = cands[1], next(c for c in cands if c != cands[1] and c != cands[0])
    TOO_BIG.update({mod.config_text(big), mod.config_text(cands[0])})
    mod.SHIPPED = {"Stand-in GPU": {mod.problem_bucket(L, L, B * H): dict(big)}}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _, (_, _, kw), _ = launched()
    expect(any("cannot run" in str(w.message) and mod.config_text(big) in str(w.message) for w in seen),
           f"the fallback is warned, naming the pick that could not run ({[str(w.message) for w in seen]})")
    expect(mod.config_text(kw) == mod.config_text(fits), f"an unfit shipped pick falls back to {mod.config_text(fits)}")
    last = mod.last_config()
    expect(last["config"] == fits and "cannot run" in last.get("fallback", "") and "shared memory" in last["fallback"],
           f"last_config tells the fallback and why {last}")
    LAUNCHES.clear()
    mod.flex_attention(q, k, v, *tables, **bufs)
    expect(len(LAUNCHES) == 1 and mod.config_text(LAUNCHES[0][2]) == mod.config_text(fits),
           "the next call goes straight to the config that fits")
    expect("cannot run" in mod.last_config().get("fallback", ""), "and still reports the fallback")
    try:
        mod.flex_attention(q, k, v, *tables, **bufs, config=dict(big))
        expect(False, "an explicit config over the GPU's resources is refused")
    except ValueError as e:
        expect(mod.config_text(big) in str(e) and "cannot run" in str(e), f"the refusal names the config ({e})")
    mod.SHIPPED = {}
    mod._unrunnable.clear()
    TOO_BIG.clear()
    _, _, _ = launched()
    expect("fallback" not in mod.last_config(), "a call that runs its pick reports no fallback")

    TIMINGS.clear()
    TIMINGS[mod.config_text(cands[-1])] = 1.0
    user_out = tensor(np.zeros((B, H, L, mod.V_HEAD_DIM), np.float32), dtype=mod.DTYPE)
    result, (_, args, kw), err = launched(autotune=True, out=user_out)
    tuning = LAUNCHES[:-1]
    expect(mod.last_config()["source"] == "tuned" and mod.last_config()["config"] == cands[-1], "autotune picks the fastest")
    expect(kw["BLOCK_M"] == cands[-1]["BLOCK_M"] and args[3] is user_out and result is user_out,
           "the call then runs the pick into the caller's out")
    expect(len(tuning) >= len(cands) and all(a[3] is not user_out for _, a, _ in tuning),
           "tuning launches write scratch outputs, never the caller's out")
    expect(len(WARMUPS) == len(cands), f"every candidate is compiled up front ({len(WARMUPS)})")
    expect("flexattn: tuning q512-kv512-bh8 candidate" in err, "tuning reports progress")
    expect(mod.last_config()["device"] == "Stand-in GPU", "picks are filed under torch.cuda.get_device_name")
    _, (_, _, kw), _ = launched()
    expect(mod.last_config()["source"] == "cache" and kw["BLOCK_M"] == cands[-1]["BLOCK_M"], "the next call uses the cache")

    TIMINGS.clear()
    TIMINGS[mod.config_text(cands[0])] = 0.5
    pick, _ = quiet(mod.tune, q, k, v, *tables, **bufs)
    expect(pick == cands[0], "tune() re-times and returns the new pick")
    _, (_, _, kw), _ = launched()
    expect(kw["BLOCK_M"] == cands[0]["BLOCK_M"] and mod.last_config()["source"] == "cache", "calls use tune()'s pick")
    try:
        mod.tune(q, k, v, *tables, **bufs, scal=1.0)
        expect(False, "tune() refuses an unknown keyword")
    except ValueError as e:
        expect("scal" in str(e), "tune() names the unknown keyword")


def main():
    for path in sys.argv[1:]:
        mod = load(path)
        sys.modules["generated"] = mod
        start = len(FAILURES)
        with tempfile.TemporaryDirectory() as folder:
            for check in (check_bucket, check_configs, check_cache_path):
                check(mod)
            check_cache_file(mod, folder)
            check_concurrent_writers(mod, folder)
            check_resolution(mod, folder)
            check_loop_form(mod)
            check_launcher(mod, folder)
        FAILURES[start:] = [f"{os.path.basename(path)}: {f}" for f in FAILURES[start:]]
    print("\n".join(FAILURES))


if __name__ == "__main__":
    main()
