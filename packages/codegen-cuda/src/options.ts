/**
 * CUDA config space: which kernel a spec gets (tensor-core or CUDA-core), the tile constraints
 * each one has, the shared memory a config takes, and the candidate configs best-first.
 */
import { FlexAttnError } from "@flexattn/ir";
import { type KernelConfig, type KernelSpec, type ModMix, type ResolvedProblem, type StorageDType, fitTile } from "@flexattn/template";

/**
 * "mma": warp-level tensor cores (mma.sync m16n8k16, ldmatrix, cp.async pipeline), f16/bf16, sm_80+.
 * "simt": one thread per query row on CUDA cores, exact f32 arithmetic; f32 inputs always take it, and
 * half inputs whose BlockMask blocks are too small for 16-row tensor-core tiles.
 */
export type CudaKernelKind = "mma" | "simt";

export interface CudaOptions {
  kernel: CudaKernelKind;
}

/** Rows of one mma.sync tile (m16n8k16): every tensor-core tile side is a multiple of it. */
export const MMA_TILE = 16;
/**
 * Query rows each warp of the tensor-core kernel may own: one or two 16-row mma tiles. Two halve
 * the shared-memory reads of K and V per flop, at the price of twice the accumulator registers.
 */
export const MMA_WARP_ROWS: readonly number[] = [16, 32];
/** Dynamic shared memory a block may take on sm_80 (A100: 163 KB); sm_90 allows 227 KB. */
export const SM80_SHARED_LIMIT = 163 * 1024;
/** The CUDA-core kernel uses static shared memory. */
export const SIMT_SHARED_LIMIT = 48 * 1024;

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;

/** Read and check `config.options`; unknown keys and values are errors. */
export function cudaOptions(config: KernelConfig, dtype: StorageDType): CudaOptions {
  let kernel: CudaKernelKind = dtype === "f32" ? "simt" : "mma";
  for (const [key, value] of Object.entries(config.options ?? {})) {
    if (key !== "kernel") throw new FlexAttnError(`unknown CUDA option "${key}"; known options: kernel`);
    if (value !== "mma" && value !== "simt") throw new FlexAttnError(`CUDA option kernel must be "mma" or "simt", got ${JSON.stringify(value)}`);
    kernel = value;
  }
  if (kernel === "mma" && dtype === "f32") {
    throw new FlexAttnError('the CUDA tensor-core kernel ("mma") takes f16 or bf16 inputs; f32 runs on the "simt" kernel');
  }
  return { kernel };
}

/** Shared memory (bytes) of one row of a head-dim tile in the tensor-core kernel (see mmaLayout). */
export function mmaRowBytes(dim: number): number {
  const chunks = roundUp(dim, MMA_TILE) / 8;
  return 16 * (chunks % 8 === 0 || chunks === 2 || chunks === 4 ? chunks : chunks + 1);
}

/** Shared memory a spec's kernel takes: the Q tile plus numStages K/V stages (mma), or the f32 K/V tiles (simt). */
export function cudaSharedBytes(spec: Pick<KernelSpec, "qkHeadDim" | "vHeadDim" | "dtype" | "config">): number {
  const c = spec.config;
  if (cudaOptions(c, spec.dtype).kernel === "simt") return 4 * c.blockN * (spec.qkHeadDim + 1 + spec.vHeadDim);
  const stage = c.blockN * (mmaRowBytes(spec.qkHeadDim) + mmaRowBytes(spec.vHeadDim));
  return c.blockM * mmaRowBytes(spec.qkHeadDim) + c.numStages * stage;
}

/** Reject configs the chosen kernel cannot run, with what to change. */
export function checkCudaConfig(spec: KernelSpec): CudaOptions {
  const o = cudaOptions(spec.config, spec.dtype);
  const c = spec.config;
  const shared = cudaSharedBytes(spec);
  if (o.kernel === "simt") {
    if (c.blockM > 1024) throw new FlexAttnError(`CUDA blockM ${c.blockM} exceeds 1024 threads per block`);
    if (shared > SIMT_SHARED_LIMIT) {
      throw new FlexAttnError(`CUDA config blockN ${c.blockN} needs ${shared} bytes of shared memory for head dims ${spec.qkHeadDim}/${spec.vHeadDim}; use a smaller blockN`);
    }
    return o;
  }
  if (c.blockM < MMA_TILE || c.blockN < MMA_TILE) {
    throw new FlexAttnError(
      `the CUDA tensor-core kernel needs tiles of at least ${MMA_TILE}×${MMA_TILE}, got ${c.blockM}×${c.blockN}; ` +
        `use a BlockMask block size that is a multiple of ${MMA_TILE}, or options.kernel "simt"`,
    );
  }
  const warpRows = c.blockM / c.numWarps;
  if (!MMA_WARP_ROWS.includes(warpRows)) {
    throw new FlexAttnError(
      `the CUDA tensor-core kernel gives each warp ${MMA_WARP_ROWS.join(" or ")} query rows: blockM ${c.blockM} needs numWarps ` +
        `${MMA_WARP_ROWS.map((r) => c.blockM / r).filter((w) => w >= 1).join(" or ")}, got ${c.numWarps}`,
    );
  }
  if (c.numStages < 2) throw new FlexAttnError(`the CUDA tensor-core kernel pipelines K/V loads: numStages must be at least 2, got ${c.numStages}`);
  if (shared > SM80_SHARED_LIMIT) {
    throw new FlexAttnError(
      `CUDA config ${c.blockM}×${c.blockN} with ${c.numStages} stages needs ${shared} bytes of shared memory for head dims ` +
        `${spec.qkHeadDim}/${spec.vHeadDim} (limit ${SM80_SHARED_LIMIT}); use fewer stages or a smaller blockN`,
    );
  }
  return o;
}

type Problem = Pick<ResolvedProblem, "qkHeadDim" | "vHeadDim" | "dtype">;

/** [blockM, blockN, numStages, rows per warp] for the tensor-core kernel by the wider head dim, best guess first. */
function mmaTiles(widest: number): [number, number, number, number][] {
  if (widest <= 64) return [[128, 64, 3, 16], [128, 64, 2, 32], [128, 128, 2, 32], [128, 128, 2, 16], [64, 64, 3, 16], [64, 64, 2, 32]];
  if (widest <= 128) return [[128, 64, 2, 16], [128, 32, 2, 32], [128, 64, 2, 32], [128, 64, 3, 16], [64, 64, 3, 16], [64, 32, 3, 32]];
  return [[64, 16, 2, 16], [64, 32, 2, 16], [64, 64, 2, 16], [32, 64, 2, 16], [128, 32, 2, 16]];
}

/**
 * Every config valid for the problem, best guess first; [0] is the heuristic default. Tiles are
 * fitted to the BlockMask block size; duplicates after fitting are dropped.
 */
export function cudaConfigCandidates(problem: Problem, sparseBlock: readonly [number, number], _mods?: ModMix): KernelConfig[] {
  const widest = Math.max(problem.qkHeadDim, problem.vHeadDim);
  const out: KernelConfig[] = [];
  const seen = new Set<string>();
  const push = (c: KernelConfig) => {
    const key = JSON.stringify(c);
    if (seen.has(key)) return;
    const spec = { ...problem, config: c };
    if (cudaSharedBytes(spec) > (cudaOptions(c, problem.dtype).kernel === "mma" ? SM80_SHARED_LIMIT : SIMT_SHARED_LIMIT)) return;
    seen.add(key);
    out.push(c);
  };
  if (problem.dtype !== "f32" && sparseBlock[0] % MMA_TILE === 0 && sparseBlock[1] % MMA_TILE === 0) {
    for (const [bm, bn, stages, warpRows] of mmaTiles(widest)) {
      const blockM = fitTile(bm, sparseBlock[0]);
      const blockN = fitTile(bn, sparseBlock[1]);
      push({ blockM, blockN, numWarps: Math.max(1, blockM / warpRows), numStages: stages, prescaleQk: false });
    }
  }
  const simt = problem.dtype === "f32" ? undefined : { kernel: "simt" as const };
  for (const blockN of widest > 128 ? [16, 8] : [32, 16]) {
    const blockM = fitTile(64, sparseBlock[0]);
    push({ blockM, blockN: fitTile(blockN, sparseBlock[1]), numWarps: 2, numStages: 1, prescaleQk: false, ...(simt ? { options: simt } : {}) });
  }
  return out;
}
