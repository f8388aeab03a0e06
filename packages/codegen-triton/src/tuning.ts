/**
 * Config resolution in the generated module: its candidate configs, the tuned tables shipped for
 * known GPUs, and the Python that picks a call's config (explicit > on-disk tuning cache > tuning
 * on first use > shipped table > default), tunes, and keeps the on-disk cache.
 *
 * The Python of resolutionSource() uses the standard library only (no torch, no triton), so tests
 * run it on its own; the torch side (device name, timing a candidate) is passed in by the launcher.
 */
import { type KernelConfig, type KernelSpec, modTraits } from "@flexattn/template";
import { type TritonOptions, nextPow2, tileKey, tritonConfigCandidates } from "./options.js";
import { pyString } from "./python.js";
import { pythonTuningRuntime, tuningCacheFormat } from "@flexattn/autotune";
import h100 from "./tuned/h100.json";
import h200 from "./tuned/h200.json";

export const TUNE_CACHE_FORMAT = tuningCacheFormat("triton");
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
  const { transcendental, dataDependent, gathersPerElement } = modTraits(spec);
  const pad = (d: number) => Math.max(16, nextPow2(d));
  const mask = !spec.mask ? "nomask" : dataDependent ? "datamask" : "mask";
  const score = !spec.score ? "noscore" : transcendental ? (options.approxTanh ? "approxscore" : "tscore") : gathersPerElement ? "gscore" : "score";
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
 * The Python of the config shape (BLOCK_M, BLOCK_N, num_warps, num_stages), then @flexattn/autotune's
 * tuning runtime for "triton" modules. Reads the module globals SPEC_HASH, SPARSE_BLOCK, CONFIG,
 * CANDIDATES and SHIPPED.
 */
export function resolutionSource(): string {
  return `
# ---- config shape ----

_CONFIG_KEYS = ("BLOCK_M", "BLOCK_N", "num_warps", "num_stages")


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


_BACKWARD_KEYS = ("BLOCK_M1", "BLOCK_N1", "BLOCK_M2", "BLOCK_N2", "num_warps", "num_stages")


def config_well_formed(c):
    """A forward or backward config of any Triton module (ints for its keys); check_config / backward_config say
    whether it suits this one."""
    def ints(keys):
        return all(isinstance(c.get(k), int) and not isinstance(c.get(k), bool) for k in keys)
    return isinstance(c, dict) and (ints(_CONFIG_KEYS) or ints(_BACKWARD_KEYS))
${pythonTuningRuntime("triton")}`;
}
