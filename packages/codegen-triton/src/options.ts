/** Triton-specific config options and the H100 default configs. */
import { FlexAttnError } from "@flexattn/ir";
import { type KernelConfig, type ModMix, type ResolvedProblem, type StorageDType, fitTile } from "@flexattn/template";

export interface TritonOptions {
  /** Softcap & co: tanh via the SFU's `tanh.approx.f32` (abs. error ≲ 2^-10.99) instead of libdevice. */
  approxTanh: boolean;
  /** f32 only: let Q·Kᵀ and P·V run on tensor cores in TF32 (about 1e-3 relative error). */
  allowTf32: boolean;
  /** Promise: each row's full blocks are one ascending run (start, start+1, ...), so no index loads. */
  contiguousFullBlocks: boolean;
  /** Promise: each row's partial blocks are one ascending run. */
  contiguousPartialBlocks: boolean;
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
  contiguousFullBlocks: false,
  contiguousPartialBlocks: false,
  reverseQBlocks: true,
  tma: false,
};

/** Read and check `config.options`; unknown keys are errors (a typo must not pass silently). */
export function tritonOptions(config: KernelConfig): TritonOptions {
  const out: TritonOptions = { ...DEFAULT_OPTIONS };
  for (const [key, value] of Object.entries(config.options ?? {})) {
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

export function tritonDefaultConfig(
  problem: Pick<ResolvedProblem, "qkHeadDim" | "vHeadDim" | "dtype"> & Partial<Pick<ResolvedProblem, "kvLen">>,
  sparseBlock: readonly [number, number],
  mods?: ModMix,
): KernelConfig {
  const d = Math.min(256, Math.max(16, nextPow2(Math.max(problem.qkHeadDim, problem.vHeadDim))));
  const table = H100_DEFAULTS[problem.dtype === "f32" ? "f32" : "half"];
  const [bm, bn, numWarps, numStages] = (mods && problem.dtype !== "f32" && modAwareTile(d, problem.kvLen, mods)) || table[d];
  const blockM = fitTile(bm, sparseBlock[0]);
  const blockN = fitTile(bn, sparseBlock[1]);
  // Small tiles (fitted to small BlockMask blocks) want fewer warps.
  const warps = Math.max(1, Math.min(numWarps, (blockM * blockN) / 256));
  return { blockM, blockN, numWarps: nextPow2(warps), numStages, prescaleQk: false };
}

const TRANSCENDENTAL = new Set(["exp", "exp2", "log", "log2", "tanh", "sigmoid"]);

/**
 * Tiles that beat the head-dim default in the H100 runs' tuned column
 * (apps/bench/results/triton-h100-final.md, bf16): a transcendental score mod at d ≤ 64 wants
 * 64×64 tiles in 2 stages (softcap 1.67× / 1.96× flex instead of 1.15× / 1.37×); a data-dependent
 * mask at d ≤ 64 wants 128×128 in 2 stages (document-causal 1.18× / 1.40× instead of 1.15× / 1.27×),
 * and at d = 128 up to 4k keys 64×64 in 2 stages (1.04× instead of 0.98×).
 */
function modAwareTile(d: number, kvLen: number | undefined, mods: ModMix): [number, number, number, number] | undefined {
  const transcendental = mods.score?.nodes.some((n) => TRANSCENDENTAL.has(n.op)) ?? false;
  const dataDependent = mods.mask?.nodes.some((n) => n.op === "load") ?? false;
  if (d <= 64 && transcendental) return [64, 64, 4, 2];
  if (d <= 64 && dataDependent) return [128, 128, 4, 2];
  if (d === 128 && dataDependent && kvLen !== undefined && kvLen <= 4096) return [64, 64, 4, 2];
  return undefined;
}

export function isHalf(dtype: StorageDType): boolean {
  return dtype !== "f32";
}
