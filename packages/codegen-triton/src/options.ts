/** Triton-specific config options and the H100 default configs. */
import { FlexAttnError } from "@flexattn/ir";
import { type KernelConfig, type ModMix, type ResolvedProblem, type StorageDType, fitTile, modTraits } from "@flexattn/template";

export interface TritonOptions {
  /** Softcap & co: tanh via the SFU's `tanh.approx.f32` (abs. error ≲ 2^-10.99) instead of libdevice. */
  approxTanh: boolean;
  /** f32 only: let Q·Kᵀ and P·V run on tensor cores in TF32 (about 1e-3 relative error). */
  allowTf32: boolean;
  /** Launch the last query tiles first: with causal-like masks they hold the most work. */
  reverseQBlocks: boolean;
  /**
   * Load Q, K, V and store O through tensor descriptors (Hopper TMA) when the launch allows it
   * (CUDA capability ≥ 9, a Triton with `tl.make_tensor_descriptor`, 16-byte-aligned bases and
   * strides); otherwise the launcher takes the pointer path compiled into the same kernel.
   */
  tma: boolean;
}

export const DEFAULT_OPTIONS: TritonOptions = {
  approxTanh: false,
  allowTf32: false,
  reverseQBlocks: true,
  tma: false,
};

/**
 * Options that earlier versions took and that are now decided at launch (the launcher reads the
 * block-mask tables and picks the loop): a config that still sets them gets an error saying so.
 */
const LAUNCH_TIME_OPTIONS: Record<string, string> = {
  contiguousFullBlocks: "the launcher detects contiguous block rows from the tables itself; drop the option",
  contiguousPartialBlocks: "the launcher detects contiguous block rows from the tables itself; drop the option",
};

/** Read and check `config.options`; unknown keys are errors (a typo must not pass silently). */
export function tritonOptions(config: KernelConfig): TritonOptions {
  const out: TritonOptions = { ...DEFAULT_OPTIONS };
  for (const [key, value] of Object.entries(config.options ?? {})) {
    if (key in LAUNCH_TIME_OPTIONS) throw new FlexAttnError(`Triton option "${key}" is gone: ${LAUNCH_TIME_OPTIONS[key]}`);
    if (!(key in DEFAULT_OPTIONS)) {
      throw new FlexAttnError(
        `unknown Triton option "${key}"; known options: ${Object.keys(DEFAULT_OPTIONS).join(", ")}`,
      );
    }
    if (typeof value !== "boolean") throw new FlexAttnError(`Triton option ${key} must be a boolean, got ${JSON.stringify(value)}`);
    out[key as keyof TritonOptions] = value;
  }
  return out;
}


/**
 * H100 defaults [blockM, blockN, numWarps, numStages] by head-dim bucket (the larger of the
 * qk and v head dims, padded to a power of two), chosen from sweeps on the H100 (see
 * apps/bench/results/triton-h100-*.md).
 */
const H100_DEFAULTS: Record<"half" | "f32", Record<number, [number, number, number, number]>> = {
  half: { 16: [128, 64, 4, 4], 32: [128, 64, 4, 4], 64: [128, 64, 4, 4], 128: [128, 64, 8, 4], 256: [64, 32, 4, 2] },
  f32: { 16: [64, 64, 4, 2], 32: [64, 64, 4, 2], 64: [64, 32, 4, 2], 128: [32, 64, 4, 2], 256: [32, 32, 4, 2] },
};

export const nextPow2 = (x: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

/** Triton's tl.dot needs every tile side to be at least 16. */
export const MIN_TILE = 16;

/** What the config heuristics read of a problem (kvLen only refines the mod-aware pick). */
export type ConfigProblem = Pick<ResolvedProblem, "qkHeadDim" | "vHeadDim" | "dtype"> & Partial<Pick<ResolvedProblem, "kvLen">>;

type Tile = [blockM: number, blockN: number, numWarps: number, numStages: number];

/** The head-dim bucket the tables are indexed by: the larger head dim, padded to a power of two in [16, 256]. */
function headDimBucket(problem: ConfigProblem): number {
  return Math.min(256, Math.max(16, nextPow2(Math.max(problem.qkHeadDim, problem.vHeadDim))));
}

/** A tile fitted to the BlockMask block; small tiles (fitted to small blocks) want fewer warps. */
function fitted([bm, bn, numWarps, numStages]: Tile, sparseBlock: readonly [number, number]): KernelConfig {
  const blockM = fitTile(bm, sparseBlock[0]);
  const blockN = fitTile(bn, sparseBlock[1]);
  const warps = Math.max(1, Math.min(numWarps, (blockM * blockN) / 256));
  return { blockM, blockN, numWarps: nextPow2(warps), numStages, prescaleQk: false };
}

/** The heuristic default: the H100-measured head-dim table, or a mod-aware tile where one measured better. */
export function tritonDefaultConfig(problem: ConfigProblem, sparseBlock: readonly [number, number], mods?: ModMix): KernelConfig {
  const d = headDimBucket(problem);
  const table = H100_DEFAULTS[problem.dtype === "f32" ? "f32" : "half"];
  return fitted((mods && problem.dtype !== "f32" && modAwareTile(d, problem.kvLen, mods)) || table[d], sparseBlock);
}

/**
 * The search space besides the default, best guess first, by dtype class and head-dim bucket.
 * Half precision: the large tiles that win on Hopper at d ≤ 128 (128×128 w8 s3, 128×64 w8 s4,
 * 128×128 w8 s2, 128×64 w4 s3) and the small tile that wins with expensive mods (64×64 w4 s2);
 * d = 256 has room for narrow tiles only. f32 tiles are half as wide (twice the bytes per element).
 */
const SEARCH_SPACE: Record<"half" | "f32", Record<number, Tile[]>> = {
  half: {
    16: [[128, 64, 4, 4], [128, 128, 4, 2], [64, 64, 4, 2], [128, 64, 4, 3], [128, 128, 8, 3], [64, 64, 4, 4], [128, 128, 4, 3]],
    32: [[128, 64, 4, 4], [128, 128, 4, 2], [64, 64, 4, 2], [128, 64, 4, 3], [128, 128, 8, 3], [64, 64, 4, 4], [128, 128, 4, 3]],
    64: [[128, 64, 4, 4], [128, 128, 4, 2], [64, 64, 4, 2], [128, 64, 4, 3], [128, 128, 8, 3], [128, 64, 8, 4], [64, 64, 4, 4], [128, 128, 4, 3]],
    128: [[128, 128, 8, 3], [128, 64, 8, 4], [128, 128, 8, 2], [64, 64, 4, 2], [128, 64, 4, 3], [128, 64, 8, 3], [64, 64, 4, 4], [64, 128, 4, 2]],
    256: [[64, 32, 4, 2], [64, 64, 4, 2], [128, 32, 8, 2], [32, 64, 4, 2], [64, 32, 4, 3], [128, 64, 8, 2]],
  },
  f32: {
    16: [[64, 64, 4, 2], [64, 32, 4, 2], [32, 64, 4, 2], [64, 64, 4, 3], [128, 64, 8, 2], [32, 32, 4, 2]],
    32: [[64, 64, 4, 2], [64, 32, 4, 2], [32, 64, 4, 2], [64, 64, 4, 3], [128, 64, 8, 2], [32, 32, 4, 2]],
    64: [[64, 32, 4, 2], [64, 64, 4, 2], [32, 64, 4, 2], [32, 32, 4, 2], [64, 32, 4, 3], [128, 32, 8, 2]],
    128: [[32, 64, 4, 2], [64, 32, 4, 2], [32, 32, 4, 2], [64, 64, 4, 2], [32, 64, 4, 3], [16, 64, 4, 2]],
    256: [[32, 32, 4, 2], [16, 32, 4, 2], [32, 16, 4, 2], [64, 32, 4, 2], [32, 32, 4, 3]],
  },
};

/** The device limits the candidates respect (a DeviceTarget's `limits` for Triton). */
export interface TritonLimits {
  /** Shared memory one program may use, in bytes (default: Hopper's 227 KiB). */
  sharedMemoryBytes?: number;
}

/** Shared memory a Hopper SM gives one program (227 KiB); the estimate below stays under it. */
const SHARED_MEMORY_BYTES = 227 * 1024;

/**
 * Rough shared memory of a config: the Q tile plus (stages − 1) pipelined K and V tiles, as
 * Triton's software pipeliner allocates them. Rough on purpose: a candidate it lets through and
 * that still does not fit fails to compile and the tuner skips it.
 */
function sharedMemoryBytes(c: KernelConfig, problem: ConfigProblem): number {
  const bytes = problem.dtype === "f32" ? 4 : 2;
  const pad = (d: number) => Math.max(16, nextPow2(d));
  const [dqk, dv] = [pad(problem.qkHeadDim), pad(problem.vHeadDim)];
  return bytes * (c.blockM * dqk + Math.max(1, c.numStages - 1) * c.blockN * (dqk + dv));
}

/**
 * Every config worth timing for a problem, best guess first: element [0] is tritonDefaultConfig's
 * pick, the rest the search space fitted to the BlockMask block, without duplicates, tiles under
 * MIN_TILE (tl.dot) or configs over the shared memory. Every candidate runs the same generated
 * kernel source: only the constexpr tile sizes and the launch's warps and stages differ.
 */
export function tritonConfigCandidates(
  problem: ConfigProblem,
  sparseBlock: readonly [number, number],
  mods?: ModMix,
  limits: TritonLimits = {},
): KernelConfig[] {
  const first = tritonDefaultConfig(problem, sparseBlock, mods);
  const space = SEARCH_SPACE[problem.dtype === "f32" ? "f32" : "half"][headDimBucket(problem)];
  const budget = limits.sharedMemoryBytes ?? SHARED_MEMORY_BYTES;
  const out = [first];
  const seen = new Set([tileKey(first)]);
  for (const tile of space) {
    const c = fitted(tile, sparseBlock);
    if (seen.has(tileKey(c)) || c.blockM < MIN_TILE || c.blockN < MIN_TILE || sharedMemoryBytes(c, problem) > budget) continue;
    seen.add(tileKey(c));
    out.push(c);
  }
  return out;
}

export const tileKey = (c: Pick<KernelConfig, "blockM" | "blockN" | "numWarps" | "numStages">): string =>
  `${c.blockM}x${c.blockN} w${c.numWarps} s${c.numStages}`;

/**
 * Tiles that beat the head-dim default in the H100 runs' tuned column
 * (apps/bench/results/triton-h100-final.md, bf16): a transcendental score mod at d ≤ 64 wants
 * 64×64 tiles in 2 stages (softcap 1.67× / 1.96× flex instead of 1.15× / 1.37×); a data-dependent
 * mask at d ≤ 64 wants 128×128 in 2 stages (document-causal 1.18× / 1.40× instead of 1.15× / 1.27×),
 * and at d = 128 up to 4k keys 64×64 in 2 stages (1.04× instead of 0.98×). A score mod that
 * gathers a table entry per element does not fit the d = 128 default (128×64, 4 stages) or
 * 128×128 in 3 stages in an H100's shared memory (Triton: out of resources); 128×128 in 2 does.
 */
function modAwareTile(d: number, kvLen: number | undefined, mods: ModMix): Tile | undefined {
  const { transcendental, dataDependent, gathersPerElement } = modTraits(mods);
  if (d <= 64 && transcendental) return [64, 64, 4, 2];
  if (d <= 64 && dataDependent) return [128, 128, 4, 2];
  if (d === 128 && dataDependent && kvLen !== undefined && kvLen <= 4096) return [64, 64, 4, 2];
  if (d === 128 && gathersPerElement) return [128, 128, 8, 2];
  return undefined;
}

export function isHalf(dtype: StorageDType): boolean {
  return dtype !== "f32";
}
