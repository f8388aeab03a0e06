/**
 * The Python side of the one config path, for generated PyTorch modules (Triton, CUDA): problem
 * buckets, the on-disk tuning cache, the tuner loop and resolve_config (explicit > cache > tuning
 * now > shipped > default), last_config, export_tuning / load_tuning. Standard library only (no
 * torch), so tests run it on its own; the module supplies how to time a candidate.
 *
 * The module defines SPEC_HASH, CONFIG, CANDIDATES, SHIPPED and three functions of its config
 * shape: config_text(c) (a short label), check_config(c, what="config") (a normalized config or a
 * ValueError naming the problem) and config_well_formed(c) (could c be a config of this kind of
 * module at all; used to drop malformed cache entries).
 */
import { FlexAttnError } from "@flexattn/ir";
import { TUNE_TIE_MARGIN } from "./tune.js";

/** The version tag of a kind's cache file ("flexattn.triton-tune/1"). */
export function tuningCacheFormat(kind: string): string {
  return `flexattn.${kind}-tune/1`;
}

/** Python literal of a string (JSON's escaping is valid Python). */
const pyString = (s: string) => JSON.stringify(s);

/** The runtime for modules of one kind ("triton", "cuda"): their cache file is <kind>-tune.json. */
export function pythonTuningRuntime(kind: string): string {
  if (!/^[a-z0-9]+$/.test(kind)) throw new FlexAttnError(`pythonTuningRuntime: kind must be lowercase letters and digits, got ${JSON.stringify(kind)}`);
  return `
# ---- config resolution and tuning (standard library only) ----

CACHE_FORMAT = ${pyString(tuningCacheFormat(kind))}
_FORCE = "force"  # autotune=_FORCE: tune even when the cache has a pick (tune())
_disk_entries = None  # the cache file's entries, read once per process (then kept in step with our writes)
_warned = set()
_last = {}


def _pow2(x):
    return 1 << max(0, int(x) - 1).bit_length()


def problem_bucket(q_len, kv_len, batch_heads):
    """The problem bucket a tuned pick applies to: q_len, kv_len and batch*q_heads, each rounded up to a power of
    two. The lengths set the loop trip counts and tails, batch*heads (with q_len / BLOCK_M) how many programs fill
    the GPU: the things that move the best tile. Rounding keeps one pick for nearby sizes instead of one per size."""
    return f"q{_pow2(q_len)}-kv{_pow2(kv_len)}-bh{_pow2(batch_heads)}"


def cache_path():
    """The tuning cache file: $FLEXATTN_CACHE_DIR/${kind}-tune.json, else $XDG_CACHE_HOME/flexattn/${kind}-tune.json,
    else ~/.cache/flexattn/${kind}-tune.json."""
    folder = os.environ.get("FLEXATTN_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "flexattn")
    return os.path.join(folder, "${kind}-tune.json")


def _warn_once(key, msg):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _well_formed(e):
    """An entry of any module of this kind: {"config": <a config of the kind's shape>, ...}. Whether the config
    suits this module is checked where it is used (check_config)."""
    return isinstance(e, dict) and config_well_formed(e.get("config"))


def read_cache(path):
    """The entries of a tuning cache file ({} when there is none). A file that is not JSON, has another format
    version or holds malformed entries is reported once (warnings.warn) and read as empty or without them; the next
    write rebuilds it."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        _warn_once(("corrupt", path), f"flexattn: tuning cache {path} is unreadable ({e}); it will be rebuilt")
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("entries"), dict):
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        _warn_once(("format", path), f"flexattn: tuning cache {path} has format {found!r}, not {CACHE_FORMAT!r}; "
                   "it will be rebuilt")
        return {}
    entries = {k: e for k, e in data["entries"].items() if _well_formed(e)}
    if len(entries) != len(data["entries"]):
        _warn_once(("entries", path), f"flexattn: tuning cache {path}: {len(data['entries']) - len(entries)} "
                   "malformed entries dropped")
    return entries


def write_cache(path, new_entries):
    """Merge new_entries into the cache file: under an exclusive lock on <path>.lock the file is read again, merged
    and replaced atomically (temporary file + os.replace), so concurrent writers lose nothing and readers never
    see a half-written file. Returns the merged entries."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    with open(path + ".lock", "a") as lock:
        if fcntl is not None:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            entries = read_cache(path)
            entries.update(new_entries)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".${kind}-tune.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"format": CACHE_FORMAT, "entries": entries}, f, indent=1, sort_keys=True)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        finally:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return entries


def cache_key(device, bucket, role=""):
    """The cache entry of this module's pick for (device, bucket); role names another config of the module (e.g. a
    backward's) tuned beside the forward's."""
    return f"{SPEC_HASH}{role}|{device}|{bucket}"


def _mine(key):
    """Whether a cache key is one of this module's (any role)."""
    return key.split("|", 1)[0].startswith(SPEC_HASH)


def _entries():
    global _disk_entries
    if _disk_entries is None:
        _disk_entries = read_cache(cache_path())
    return _disk_entries


def _record(device, bucket, config, ms, seconds, timings, role="", candidates=None):
    global _disk_entries
    entry = {"config": config, "ms": round(ms, 5), "tuning_s": round(seconds, 1),
             "candidates": len(CANDIDATES if candidates is None else candidates), "timings": timings}
    new = {cache_key(device, bucket, role): entry}
    try:
        _disk_entries = write_cache(cache_path(), new)
    except OSError as e:  # a read-only home must not fail the call: keep the pick for this process
        _warn_once(("write", cache_path()), f"flexattn: cannot write the tuning cache {cache_path()} ({e}); "
                   "tuned picks last for this process only")
        _entries().update(new)


def tune_budget_s():
    return float(os.environ.get("FLEXATTN_TUNE_BUDGET_S", "45"))


# A candidate replaces the fastest so far only when it is this much faster (TUNE_TIE_MARGIN).
TUNE_MARGIN = ${TUNE_TIE_MARGIN}


def tune_candidates(bucket, bench, candidates=None, budget_s=None, log=None, text=None):
    """Time each candidate with bench(config) -> milliseconds (an exception marks a candidate unusable, e.g. out of
    shared memory) and return (fastest config, its ms, {text(config): ms} of every candidate timed); timings within
    TUNE_MARGIN go to the earlier candidate. Candidates go best guess first; after budget_s seconds no further
    candidate starts (the first always runs). Progress goes to stderr. text labels a config (default config_text)."""
    text = text or config_text
    candidates = CANDIDATES if candidates is None else candidates
    budget_s = tune_budget_s() if budget_s is None else budget_s
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    start = time.monotonic()
    best = None
    timings = {}
    n = len(candidates)
    for i, c in enumerate(candidates):
        if i > 0 and time.monotonic() - start > budget_s:
            log(f"flexattn: tuning {bucket}: budget of {budget_s:.0f} s spent, {n - i} candidate(s) not timed")
            break
        try:
            ms = float(bench(c))
        except Exception as e:
            if i == 0 and len(candidates) == 1:
                raise
            log(f"flexattn: tuning {bucket} candidate {i + 1}/{n} {text(c)} failed: {type(e).__name__}: "
                f"{str(e)[:120]}")
            continue
        log(f"flexattn: tuning {bucket} candidate {i + 1}/{n} {text(c)} ... {ms:.4f} ms")
        timings[text(c)] = round(ms, 5)
        if best is None or ms < best[1] * (1 - TUNE_MARGIN):
            best = (dict(c), ms)
    if best is None:
        raise RuntimeError(f"flexattn: tuning {bucket}: no candidate config ran")
    return best[0], best[1], timings


def autotune_enabled(autotune):
    """autotune=True / False decides; None follows the environment variable FLEXATTN_AUTOTUNE=1."""
    if autotune is None:
        return os.environ.get("FLEXATTN_AUTOTUNE", "") == "1"
    return bool(autotune)


class ConfigRole:
    """One config a module resolves, by one rule: its forward's (the module's CONFIG, CANDIDATES and SHIPPED), or
    another tuned beside it (a backward's). key suffixes its tuning-cache entries; check(c) is a normalized config
    or a ValueError naming the problem; text(c) its label; candidates go best guess first; shipped is
    {device: {bucket: config}}; last is the record that last_config-style functions report; what names it in
    messages."""

    def __init__(self, key, check, text, candidates, default, shipped, last, what):
        self.key, self.check, self.text, self.what = key, check, text, what
        self.candidates, self.default, self.shipped, self.last = candidates, default, shipped, last


def _forward_role():
    # Built at each use: the module defines CONFIG, CANDIDATES and SHIPPED after this runtime (tests swap them).
    return ConfigRole("", check_config, config_text, CANDIDATES, CONFIG, SHIPPED, _last, "config")


def _usable(role, entry):
    """A cache entry's config when this module can launch it, else None (a hand-edited file must not break a call)."""
    try:
        return entry and role.check(entry["config"])
    except (ValueError, KeyError, TypeError):
        return None


def resolve_config(device, bucket, config=None, autotune=None, bench=None, role=None):
    """The config a call runs with and where it came from, in this order: an explicit config ("explicit"); this
    module's entry for (device, bucket) in the tuning cache ("cache"); tuning now, when autotune is on and bench is
    given ("tuned", then cached); the pick shipped for this device and bucket ("shipped"); the default ("default").
    role: which of the module's configs (default: the forward's)."""
    role = role or _forward_role()
    timings = None
    if config is not None:
        picked = (role.check(config), "explicit")
    else:
        hit = None if autotune == _FORCE else _usable(role, _entries().get(cache_key(device, bucket, role.key)))
        shipped = role.shipped.get(device, {}).get(bucket)
        if hit is not None:
            picked = (dict(hit), "cache")
        elif bench is not None and (autotune == _FORCE or autotune_enabled(autotune)):
            start = time.monotonic()
            # The shipped pick, where there is one, is the best guess: timed first, it wins ties.
            guesses = role.candidates if shipped is None else [dict(shipped)] + [c for c in role.candidates if c != shipped]
            best, ms, timings = tune_candidates(bucket, bench, guesses, text=role.text)
            _record(device, bucket, best, ms, time.monotonic() - start, timings, role.key, role.candidates)
            picked = (best, "tuned")
        elif shipped is not None:
            picked = (dict(shipped), "shipped")
        else:
            picked = (dict(role.default), "default")
    role.last.clear()
    role.last.update(config=picked[0], source=picked[1], device=device, bucket=bucket)
    if timings is not None:
        role.last["timings"] = timings
    return picked


_unrunnable = set()  # (device, config text) of configs this module's kernel cannot run there


def first_that_runs(device, choices, launch, cannot_run, text=config_text, refuse=None, what="config"):
    """launch(c) for the first of choices this GPU can run: cannot_run(exception) says which failures mean it cannot
    (out of shared memory, another architecture), and one that failed so is skipped for the rest of the process.
    Returns (the config that ran, what launch returned, why choices[0] could not run in this call, or None). With
    refuse (the caller chose choices[0]) only that one is tried, and its failure is ValueError(refuse(c, error))."""
    why = None
    for c in choices[:1] if refuse else choices:
        if not refuse and (device, text(c)) in _unrunnable:
            continue
        try:
            result = launch(c)
        except Exception as e:
            if not cannot_run(e):
                raise
            if refuse:
                raise ValueError(refuse(c, e)) from None
            _unrunnable.add((device, text(c)))
            if c is choices[0]:
                why = str(e)
            continue
        return c, result, why
    raise ValueError(f"no {what} of this module runs on {device}")


def launch_resolved(device, picked, source, launch, cannot_run, role=None):
    """launch(config) with resolve_config's pick. A pick the GPU cannot run was made for other kernels or GPUs, so it
    gives way to the first of the role's candidates that runs (first_that_runs), warned once and reported by the
    role's record ("fallback"); a config the caller chose is refused instead, with the reason. Returns (the config
    that ran, what launch returned)."""
    role = role or _forward_role()
    refuse = None
    if source == "explicit":
        refuse = lambda c, e: f"{role.what} {role.text(c)} cannot run on {device}: {e}; pass another, or none"  # noqa: E731
    c, result, why = first_that_runs(device, (picked, *role.candidates), launch, cannot_run, role.text, refuse, role.what)
    if role.text(c) != role.text(picked):
        role.last.update(config=dict(c), fallback=f"{role.text(picked)} ({source}) cannot run on {device}"
                         + (f": {why}" if why else ""))
        _warn_once((role.what, "fallback", device), f"flexattn: the {role.what} {role.text(picked)} ({source}) cannot run "
                   f"on {device}; using {role.text(c)}")
    return c, result


def last_config():
    """The config the last call ran with: {"config", "source" (explicit, cache, tuned, shipped or default),
    "device", "bucket", after tuning "timings" (ms of each candidate timed), and "fallback" (why) when the
    resolved config could not run on the GPU and another candidate ran}; None before the first call."""
    return dict(_last) if _last else None


def export_tuning(path):
    """Write this module's tuning-cache entries (every device and bucket) to path, in the cache's format, for
    load_tuning on another machine. Returns how many entries were written."""
    mine = {k: e for k, e in _entries().items() if _mine(k)}
    mine.update({k: e for k, e in read_cache(cache_path()).items() if _mine(k)})
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"format": CACHE_FORMAT, "entries": mine}, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return len(mine)


def load_tuning(path):
    """Merge the entries of an exported tuning file (any module's) into this machine's tuning cache; calls then
    resolve them as "cache". Raises ValueError for a file that is not a tuning file. Returns how many were loaded."""
    global _disk_entries
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path} is not a flexattn tuning file: {e}") from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("entries"), dict):
        raise ValueError(f"{path} is not a flexattn tuning file of format {CACHE_FORMAT!r}")
    entries = {k: e for k, e in data["entries"].items() if _well_formed(e)}
    try:
        _disk_entries = write_cache(cache_path(), entries)
    except OSError as e:
        _warn_once(("write", cache_path()), f"flexattn: cannot write the tuning cache {cache_path()} ({e}); "
                   "loaded picks last for this process only")
        _entries().update(entries)
    return len(entries)
`;
}
