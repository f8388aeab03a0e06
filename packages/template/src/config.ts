/** The config space open to the autotuner, shared by every backend. */
import { FlexAttnError } from "@flexattn/ir";

export interface KernelConfig {
  /** Query rows per program (tile height). Must divide the BlockMask's q block size. */
  blockM: number;
  /** Key columns per inner iteration. Must divide the BlockMask's kv block size. */
  blockN: number;
  /** Warps per program (CUDA/Triton); WGSL derives its workgroup size from it (×32 invocations). */
  numWarps: number;
  /** Software pipelining depth (Triton/CUDA); ignored where meaningless. */
  numStages: number;
  /** Fold scale·log2(e) into Q once before the loop (only when the score mod is the identity). */
  prescaleQk: boolean;
  /** Backend-specific knobs (e.g. WGSL rows per invocation, Triton approximate tanh). */
  options?: Readonly<Record<string, number | boolean | string>>;
}

export const DEFAULT_CONFIG: KernelConfig = { blockM: 64, blockN: 64, numWarps: 4, numStages: 2, prescaleQk: false };

/** The full search space; backends filter it with their own constraints. */
export const CONFIG_SPACE = {
  blockM: [16, 32, 64, 128],
  blockN: [16, 32, 64, 128],
  numWarps: [1, 2, 4, 8],
  numStages: [1, 2, 3, 4],
  prescaleQk: [false, true],
} as const;

const isPow2 = (x: number) => Number.isInteger(x) && x > 0 && (x & (x - 1)) === 0;

/** Check a config against the problem's BlockMask block size. */
export function validateConfig(c: KernelConfig, sparseBlock: readonly [number, number]): KernelConfig {
  for (const k of ["blockM", "blockN", "numWarps"] as const) {
    if (!isPow2(c[k])) throw new FlexAttnError(`config.${k} must be a power of two, got ${c[k]}`);
  }
  if (!Number.isInteger(c.numStages) || c.numStages < 1 || c.numStages > 8) {
    throw new FlexAttnError(`config.numStages must be an integer in [1, 8], got ${c.numStages}`);
  }
  if (sparseBlock[0] % c.blockM !== 0 || sparseBlock[1] % c.blockN !== 0) {
    throw new FlexAttnError(
      `config tile ${c.blockM}×${c.blockN} must divide the BlockMask block size ${sparseBlock[0]}×${sparseBlock[1]}`,
    );
  }
  return c;
}

/** Largest tile ≤ wanted that divides the BlockMask block size (block sizes may be any integer). */
export function fitTile(wanted: number, sparse: number): number {
  let t = wanted;
  while (t > 1 && sparse % t !== 0) t >>= 1;
  return t;
}
