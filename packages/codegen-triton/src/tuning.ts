/**
 * Config resolution in the generated module: its candidate configs, the tuned tables shipped for
 * known GPUs, and the Python that picks a call's config (explicit > on-disk tuning cache > tuning
 * on first use > shipped table > default), tunes, and keeps the on-disk cache.
 *
 * The Python of resolutionSource() uses the standard library only (no torch, no triton), so tests
 * run it on its own; the torch side (device name, timing a candidate) is passed in by the launcher.
 */
import type { KernelConfig, KernelSpec } from "@flexattn/template";
import { type TritonOptions, modTraits, nextPow2, tileKey, tritonConfigCandidates } from "./options.js";
import { pyString } from "./python.js";
import { TUNE_TIE_MARGIN } from "@flexattn/autotune";
import h100 from "./tuned/h100.json";
import h200 from "./tuned/h200.json";

export const TUNE_CACHE_FORMAT = "flexattn.triton-tune/1";
export const SHIPPED_FORMAT = "flexattn.triton-shipped/1";

/**
 * A tuned table for one GPU (src/tuned/<gpu>.json): the device name as torch.cuda.get_device_name
 * reports it, then structure class → problem bucket → [BLOCK_M, BLOCK_N, num_warps, num_stages].
 */
export interface ShippedTable {
  format: typeof SHIPPED_FORMAT;
  device: string;
  entries: Record<string, Record<string, [number, number, number, number]>>;
}

const SHIPPED_TABLES = [h100, h200] as ShippedTable[];

/**
 * The structure class a shipped entry applies to: what decides which tile wins besides the
 * problem's sizes (dtype, padded head dims, BlockMask block, kind of mask and score mod, the
 * options that change the kernel's cost). Kernels of one class share tuned picks.
 */
export function structureClass(spec: KernelSpec, options: TritonOptions): string {
  const { transcendental, dataDependent } = modTraits(spec);
  const pad = (d: number) => Math.max(16, nextPow2(d));
  const mask = !spec.mask ? "nomask" : dataDependent ? "datamask" : "mask";
  const score = !spec.score ? "noscore" : transcendental ? (options.approxTanh ? "approxscore" : "tscore") : "score";
  return [spec.dtype, `d${pad(spec.qkHeadDim)}x${pad(spec.vHeadDim)}`, `b${spec.sparseBlock.join("x")}`, mask, score,
    ...(options.tma ? ["tma"] : [])].join("-");
}

/** The module's candidates: the spec's own config first, then tritonConfigCandidates for its problem. */
export function moduleCandidates(spec: KernelSpec): KernelConfig[] {
  const all = [spec.config, ...tritonConfigCandidates(spec, spec.sparseBlock, spec)];
  return all.filter((c, i) => all.findIndex((d) => tileKey(d) === tileKey(c)) === i);
}

const pyConfig = (c: Pick<KernelConfig, "blockM" | "blockN" | "numWarps" | "numStages">): string =>
  `dict(BLOCK_M=${c.blockM}, BLOCK_N=${c.blockN}, num_warps=${c.numWarps}, num_stages=${c.numStages})`;

/** Module constants: the default CONFIG, CANDIDATES and the SHIPPED picks of this structure class. */
export function configConstants(spec: KernelSpec, options: TritonOptions, tables: readonly ShippedTable[] = SHIPPED_TABLES): string[] {
  const structure = structureClass(spec, options);
  const shipped = tables.flatMap((t) => {
    const byBucket = Object.entries(t.entries[structure] ?? {});
    if (!byBucket.length) return [];
    const rows = byBucket.map(([bucket, [blockM, blockN, numWarps, numStages]]) =>
      `        ${pyString(bucket)}: ${pyConfig({ blockM, blockN, numWarps, numStages })},`);
    return [`    ${pyString(t.device)}: {`, ...rows, "    },"];
  });
  return [
    `STRUCTURE = ${pyString(structure)}  # structure class: kernels of one class share shipped tuned picks`,
    `CONFIG = ${pyConfig(spec.config)}  # the default`,
    "# Configs the tuner times, best guess first; the kernel source is the same for each.",
    "CANDIDATES = (",
    ...moduleCandidates(spec).map((c) => `    ${pyConfig(c)},`),
    ")",
    "# Tuned picks shipped with flexattn for this structure class: device name -> problem bucket -> config.",
    ...(shipped.length ? ["SHIPPED = {", ...shipped, "}"] : ["SHIPPED = {}"]),
  ];
}

/**
 * The standard-library-only Python: problem buckets, config checks, the on-disk tuning cache,
 * the tuner loop and resolve_config. Reads the module globals SPEC_HASH, SPARSE_BLOCK, CONFIG,
 * CANDIDATES and SHIPPED.
 */
export function resolutionSource(): string {
  return `
# ---- config resolution and tuning (standard library only) ----

CACHE_FORMAT = ${pyString(TUNE_CACHE_FORMAT)}
_CONFIG_KEYS = ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages")
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


def config_text(c):
    return f'{c["BLOCK_M"]}x{c["BLOCK_N"]} w{c["num_warps"]} s{c["num_stages"]}'


def check_config(c, what="config"):
    """c as a launch config dict, or a ValueError naming the bad key: BLOCK_M / BLOCK_N powers of two >= 16 that
    divide the BlockMask block SPARSE_BLOCK, num_warps a power of two <= 16, num_stages in [1, 8]."""
    if not isinstance(c, dict):
        raise ValueError(f"{what} must be a dict with keys {', '.join(_CONFIG_KEYS)}, got {type(c).__name__}")
    unknown = sorted(set(c) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{what} has unknown key(s) {', '.join(unknown)}; known: {', '.join(_CONFIG_KEYS)}")
    for key in _CONFIG_KEYS:
        val = c.get(key)
        if not isinstance(val, int) or isinstance(val, bool):
            raise ValueError(f"{what}[{key!r}] must be an int, got {val!r}")
    for key, sparse in (("BLOCK_M", SPARSE_BLOCK[0]), ("BLOCK_N", SPARSE_BLOCK[1])):
        t = c[key]
        if t < 16 or t & (t - 1) or sparse % t:
            raise ValueError(f"{what}[{key!r}] = {t} must be a power of two >= 16 dividing the BlockMask block "
                             f"{SPARSE_BLOCK[0]}x{SPARSE_BLOCK[1]}")
    w = c["num_warps"]
    if w < 1 or w > 16 or w & (w - 1):
        raise ValueError(f"{what}['num_warps'] = {w} must be a power of two in [1, 16]")
    if not 1 <= c["num_stages"] <= 8:
        raise ValueError(f"{what}['num_stages'] = {c['num_stages']} must be in [1, 8]")
    return {key: c[key] for key in _CONFIG_KEYS}


def cache_path():
    """The tuning cache file: $FLEXATTN_CACHE_DIR/triton-tune.json, else $XDG_CACHE_HOME/flexattn/triton-tune.json,
    else ~/.cache/flexattn/triton-tune.json."""
    folder = os.environ.get("FLEXATTN_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "flexattn")
    return os.path.join(folder, "triton-tune.json")


def _warn_once(key, msg):
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _well_formed(e):
    """An entry of any module: {"config": {BLOCK_M, BLOCK_N, num_warps, num_stages: ints}, ...}. Whether the
    config suits this module (its BlockMask block) is checked where it is used."""
    c = e.get("config") if isinstance(e, dict) else None
    return isinstance(c, dict) and all(isinstance(c.get(k), int) and not isinstance(c.get(k), bool) for k in _CONFIG_KEYS)


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
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".triton-tune.", suffix=".tmp")
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


def cache_key(device, bucket):
    return f"{SPEC_HASH}|{device}|{bucket}"


def _entries():
    global _disk_entries
    if _disk_entries is None:
        _disk_entries = read_cache(cache_path())
    return _disk_entries


def _record(device, bucket, config, ms, seconds, timings):
    global _disk_entries
    entry = {"config": config, "ms": round(ms, 5), "tuning_s": round(seconds, 1), "candidates": len(CANDIDATES),
             "timings": timings}
    new = {cache_key(device, bucket): entry}
    try:
        _disk_entries = write_cache(cache_path(), new)
    except OSError as e:  # a read-only home must not fail the call: keep the pick for this process
        _warn_once(("write", cache_path()), f"flexattn: cannot write the tuning cache {cache_path()} ({e}); "
                   "tuned picks last for this process only")
        _entries().update(new)


def tune_budget_s():
    return float(os.environ.get("FLEXATTN_TUNE_BUDGET_S", "45"))


# A candidate replaces the fastest so far only when it is this much faster (@flexattn/autotune's TUNE_TIE_MARGIN).
TUNE_MARGIN = ${TUNE_TIE_MARGIN}


def tune_candidates(bucket, bench, candidates=None, budget_s=None, log=None):
    """Time each candidate with bench(config) -> milliseconds (an exception marks a candidate unusable, e.g. out of
    shared memory) and return (fastest config, its ms, {config_text: ms} of every candidate timed); timings within
    TUNE_MARGIN go to the earlier candidate. Candidates go best guess first; after budget_s seconds no further
    candidate starts (the first always runs). Progress goes to stderr."""
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
            log(f"flexattn: tuning {bucket} candidate {i + 1}/{n} {config_text(c)} failed: {type(e).__name__}: "
                f"{str(e)[:120]}")
            continue
        log(f"flexattn: tuning {bucket} candidate {i + 1}/{n} {config_text(c)} ... {ms:.4f} ms")
        timings[config_text(c)] = round(ms, 5)
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


def _usable(entry):
    """A cache entry whose config this module can launch, else None (a hand-edited file must not break a call)."""
    try:
        return entry and {"config": check_config(entry["config"])}
    except ValueError:
        return None


def resolve_config(device, bucket, config=None, autotune=None, bench=None):
    """The config a call runs with and where it came from, in this order: an explicit config ("explicit"); this
    module's entry for (device, bucket) in the tuning cache ("cache"); tuning now, when autotune is on and bench is
    given ("tuned", then cached); the pick shipped for this device and bucket ("shipped"); CONFIG ("default")."""
    if config is not None:
        picked = (check_config(config), "explicit")
    else:
        hit = None if autotune == _FORCE else _usable(_entries().get(cache_key(device, bucket)))
        shipped = SHIPPED.get(device, {}).get(bucket)
        if hit is not None:
            picked = (dict(hit["config"]), "cache")
        elif bench is not None and (autotune == _FORCE or autotune_enabled(autotune)):
            start = time.monotonic()
            # The shipped pick, where there is one, is the best guess: timed first, it wins ties.
            guesses = None if shipped is None else [dict(shipped)] + [c for c in CANDIDATES if c != shipped]
            best, ms, timings = tune_candidates(bucket, bench, guesses)
            _record(device, bucket, best, ms, time.monotonic() - start, timings)
            picked = (best, "tuned")
            _last["timings"] = timings
        elif shipped is not None:
            picked = (dict(shipped), "shipped")
        else:
            picked = (dict(CONFIG), "default")
    _last.pop("fallback", None)
    if picked[1] != "tuned":
        _last.pop("timings", None)
    _last.update(config=picked[0], source=picked[1], device=device, bucket=bucket)
    return picked


def last_config():
    """The config the last call ran with: {"config", "source" (explicit, cache, tuned, shipped or default),
    "device", "bucket", after tuning "timings" (ms of each candidate timed), and "fallback" (why) when the
    resolved config did not fit the GPU and a smaller candidate ran}; None before the first call."""
    return dict(_last) if _last else None


def export_tuning(path):
    """Write this module's tuning-cache entries (every device and bucket) to path, in the cache's format, for
    load_tuning on another machine. Returns how many entries were written."""
    mine = {k: e for k, e in _entries().items() if k.startswith(SPEC_HASH + "|")}
    mine.update({k: e for k, e in read_cache(cache_path()).items() if k.startswith(SPEC_HASH + "|")})
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
