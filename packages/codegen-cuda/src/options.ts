/**
 * CUDA config space: which kernel a spec gets (tensor-core or CUDA-core), the tile constraints
 * each one has, the shared memory a config takes, and the candidate configs best-first.
 */
import { FlexAttnError } from "@flexattn/ir";
import {
  type DeviceTarget, type KernelConfig, type KernelSpec, type ModMix, type ResolvedProblem, type StorageDType, fitTile, modTraits,
} from "@flexattn/template";

/**
 * "wgmma": warpgroup tensor cores (wgmma.mma_async m64nNk16 from swizzled shared memory), f16/bf16,
 * sm_90a only (H100/H200): each 4-warp warpgroup owns 64 query rows.
 * "mma": warp-level tensor cores (mma.sync m16n8k16, ldmatrix, cp.async pipeline), f16/bf16, sm_80+.
 * "simt": one thread per query row on CUDA cores, exact f32 arithmetic; f32 inputs always take it, and
 * half inputs whose BlockMask blocks are too small for 16-row tensor-core tiles.
 */
export type CudaKernelKind = "wgmma" | "mma" | "simt";

/** The GPU architecture a kernel is generated for: sm_90a adds the wgmma kernel to the candidates. */
export type CudaArch = "sm_80" | "sm_90a";

/** A DeviceTarget's `limits` for CUDA. */
export interface CudaLimits {
  arch?: CudaArch;
}

/** The architecture a target names (DeviceTarget.limits.arch); sm_80 (portable to every tensor-core GPU) by default. */
export function cudaArch(target?: DeviceTarget): CudaArch {
  const arch = (target?.limits as CudaLimits | undefined)?.arch ?? "sm_80";
  if (arch !== "sm_80" && arch !== "sm_90a") {
    throw new FlexAttnError(`a CUDA target is "sm_80" (every GPU from A100 on) or "sm_90a" (H100/H200: the wgmma kernel), got ${JSON.stringify(arch)}`);
  }
  return arch;
}

/** The DeviceTarget that asks for kernels of one architecture. */
export function cudaTarget(arch: CudaArch): DeviceTarget {
  const target = { signature: `cuda ${arch}`, limits: { arch } };
  cudaArch(target); // refuses any other name than sm_80 and sm_90a
  return target;
}

export interface CudaOptions {
  kernel: CudaKernelKind;
  /**
   * wgmma only: issue S = Q·Kᵀ of the next kv tile before this tile's mods and softmax, so the
   * tensor cores work while the warpgroup computes the softmax (FlashAttention-3's intra-warpgroup
   * overlap). Costs a second S in registers and needs numStages ≥ 3 (the next K is loaded a tile early).
   */
  overlap: boolean;
  /**
   * wgmma only: warp specialization. A producer warpgroup (beyond numWarps) loads Q and the K/V
   * stages and hands them over through mbarriers; the numWarps warps only compute, with registers
   * moved to them from the producer (setmaxnreg). No block-wide barrier is left in the kv loop, so
   * one warpgroup's softmax runs while the other's wgmma keeps the tensor cores busy.
   */
  warpSpecialized: boolean;
  /**
   * wgmma with warpSpecialized only: one producer thread loads each tile with the Tensor Memory
   * Accelerator (cp.async.bulk.tensor, 128-byte swizzle written by the copy engine), and the tile's
   * mbarrier completes when its bytes have landed; the rest of the producer warpgroup exits. The
   * launcher passes tensor maps of q, k and v (a kernel parameter after the ABI's), so head dims
   * must be whole multiples of 64 (a map's box is one 128-byte swizzle row wide).
   */
  tma: boolean;
  /**
   * wgmma with tma only: 1 (the default) or 2 blocks per SM. Two blocks give the SM twice the warps
   * to hide each other's softmax, at the price of the compute warps' registers (the per-block pool
   * that setmaxnreg shares out is halved: 104 instead of 240) and of half the shared memory each.
   */
  blocksPerSm: 1 | 2;
  /**
   * Every kernel: a mod's tanh (softcapping) through the SFU's tanh.approx.f32, one instruction with
   * absolute error ≲ 2^-10.99, instead of tanhf's exact sequence; as the Triton backend's approxTanh.
   */
  approxTanh: boolean;
  /**
   * Tensor-core kernels: keep a row's running max (the softmax's reference) until a tile raises it by
   * more than RESCALE_SLACK_LOG2, so most tiles skip rescaling O and l. Exact: O and l share the
   * reference, and P stays ≤ 2^RESCALE_SLACK_LOG2, well inside f16/bf16 and f32 sums.
   */
  lazyRescale: boolean;
  /**
   * Tensor-core kernels: of every 8 eight-key accumulator tiles of S, this many (0–4) take exp2 as a
   * polynomial on the FMA units instead of the SFU's ex2, which shares out 16 results per clock per SM
   * and at small head dims is as busy as the tensor cores.
   */
  polyExp2: number;
}

/** The lazy rescale's slack in log2 units: P ≤ 2^8. */
export const RESCALE_SLACK_LOG2 = 8;

/**
 * Registers per thread when one producer thread issues TMA copies: the producer drops to the fewest
 * setmaxnreg takes, and the compute warpgroups take what that frees. setmaxnreg moves registers
 * within a block's own pool, the registers its threads were launched with: 64K over the SM's blocks,
 * in steps of 8 per thread. One block per SM: 168 at launch, 128·24 + 256·240 after; two: 80, and 104.
 */
export const TMA_PRODUCER_REGISTERS = 24;
export function tmaConsumerRegisters(blocksPerSm: 1 | 2): number {
  const computeThreads = 256;  // two warpgroups: warpSpecialized takes blockM 128
  const roundDown8 = (x: number) => Math.floor(x / 8) * 8;
  const launched = roundDown8(65536 / ((computeThreads + PRODUCER_THREADS) * blocksPerSm));
  return launched + roundDown8((PRODUCER_THREADS * (launched - TMA_PRODUCER_REGISTERS)) / computeThreads);
}
/** Shared memory one block may take when two share an SM (228 KB, less 1 KB reserved per block). */
export const SM90_PAIRED_SHARED_LIMIT = (228 - 2) * 512;

/** Rows of one mma.sync tile (m16n8k16): every tensor-core tile side is a multiple of it. */
export const MMA_TILE = 16;
/**
 * Query rows each warp of the tensor-core kernel may own: one or two 16-row mma tiles. Two halve
 * the shared-memory reads of K and V per flop, at the price of twice the accumulator registers.
 */
export const MMA_WARP_ROWS: readonly number[] = [16, 32];
/** Query rows of one warpgroup MMA (wgmma m64nNk16): the wgmma kernel's blockM is a multiple of it. */
export const WGMMA_ROWS = 64;
/** Head dims of the wgmma kernel's tiles are padded to whole 128-byte swizzle rows (64 f16/bf16 elements). */
export const WGMMA_DIM_ALIGN = 64;
/** Largest N of one wgmma: bounds blockN (Q·Kᵀ) and the padded v head dim (P·V). */
export const WGMMA_MAX_N = 256;
/** Threads of the warp-specialized wgmma kernel's producer warpgroup. */
export const PRODUCER_THREADS = 128;
/**
 * Registers per thread of the producer warpgroup and the compute warpgroups after setmaxnreg, within
 * the SM's 64K: 40 hold the producer's copy loop without spills, and 232 the compute warps' S and O.
 */
export const PRODUCER_REGISTERS = 40;
export const CONSUMER_REGISTERS = 232;
/** Dynamic shared memory a block may take on sm_80 (A100: 163 KB). */
export const SM80_SHARED_LIMIT = 163 * 1024;
/** Dynamic shared memory a block may take on sm_90 (H100/H200: 227 KB). */
export const SM90_SHARED_LIMIT = 227 * 1024;
/**
 * The CUDA-core kernel's limit: 48 KB, what every GPU gives a block without opting in (its tiles are
 * f32, so larger ones would only buy fewer, slower blocks per SM).
 */
export const SIMT_SHARED_LIMIT = 48 * 1024;
/** Launches above this much dynamic shared memory must first raise the kernel's limit (cudaFuncAttributeMaxDynamicSharedMemorySize). */
export const DEFAULT_DYNAMIC_SHARED_LIMIT = 48 * 1024;
/** The wgmma kernel rounds its shared base up to the 1024-byte period of the 128-byte swizzle; it asks for this much slack. */
export const WGMMA_SMEM_ALIGN = 1024;

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;

/** Read and check `config.options`; unknown keys and values are errors. */
export function cudaOptions(config: KernelConfig, dtype: StorageDType): CudaOptions {
  let kernel: CudaKernelKind = dtype === "f32" ? "simt" : "mma";
  // The wgmma kernel's switches, and those of every kernel (numerics and softmax), all off unless named.
  const flags = { overlap: false, warpSpecialized: false, tma: false };
  const numerics = { approxTanh: false, lazyRescale: false };
  let polyExp2 = 0;
  let blocksPerSm: 1 | 2 = 1;
  for (const [key, value] of Object.entries(config.options ?? {})) {
    if (key === "kernel") {
      if (value !== "wgmma" && value !== "mma" && value !== "simt") {
        throw new FlexAttnError(`CUDA option kernel must be "wgmma", "mma" or "simt", got ${JSON.stringify(value)}`);
      }
      kernel = value;
    } else if (key === "overlap" || key === "warpSpecialized" || key === "tma") {
      if (typeof value !== "boolean") throw new FlexAttnError(`CUDA option ${key} must be a boolean, got ${JSON.stringify(value)}`);
      flags[key] = value;
    } else if (key === "blocksPerSm") {
      if (value !== 1 && value !== 2) throw new FlexAttnError(`CUDA option blocksPerSm must be 1 or 2, got ${JSON.stringify(value)}`);
      blocksPerSm = value;
    } else if (key === "approxTanh" || key === "lazyRescale") {
      if (typeof value !== "boolean") throw new FlexAttnError(`CUDA option ${key} must be a boolean, got ${JSON.stringify(value)}`);
      numerics[key] = value;
    } else if (key === "polyExp2") {
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 4) {
        throw new FlexAttnError(`CUDA option polyExp2 is how many of every 8 accumulator tiles take exp2 on the FMA units: an integer 0–4, got ${JSON.stringify(value)}`);
      }
      polyExp2 = value as number;
    } else {
      throw new FlexAttnError(`unknown CUDA option "${key}"; known options: kernel, ${[...Object.keys(flags), "blocksPerSm", ...Object.keys(numerics), "polyExp2"].join(", ")}`);
    }
  }
  if (kernel !== "simt" && dtype === "f32") {
    throw new FlexAttnError(`the CUDA tensor-core kernel ("${kernel}") takes f16 or bf16 inputs; f32 runs on the "simt" kernel`);
  }
  for (const [name, on] of Object.entries(flags)) {
    if (on && kernel !== "wgmma") throw new FlexAttnError(`CUDA option ${name} applies to the "wgmma" kernel only, not "${kernel}"`);
  }
  if (flags.tma && !flags.warpSpecialized) {
    throw new FlexAttnError("CUDA option tma loads through the producer warpgroup: it needs warpSpecialized: true");
  }
  if (blocksPerSm === 2 && !flags.tma) {
    throw new FlexAttnError("CUDA option blocksPerSm 2 applies to the TMA kernel (warpSpecialized and tma) only");
  }
  if (kernel === "simt" && (numerics.lazyRescale || polyExp2 > 0)) {
    throw new FlexAttnError(`CUDA options lazyRescale and polyExp2 apply to the tensor-core kernels ("mma", "wgmma"), not "simt"`);
  }
  return { kernel, ...flags, blocksPerSm, ...numerics, polyExp2 };
}

/** Shared memory (bytes) of one row of a head-dim tile in the tensor-core kernel (see mmaLayout). */
export function mmaRowBytes(dim: number): number {
  const chunks = roundUp(dim, MMA_TILE) / 8;
  return 16 * (chunks % 8 === 0 || chunks === 2 || chunks === 4 ? chunks : chunks + 1);
}

/** Whether a tensor map's box (one 128-byte swizzle row) covers both head dims exactly: what the TMA kernel needs. */
function tmaHeadDims(problem: Pick<KernelSpec, "qkHeadDim" | "vHeadDim">): boolean {
  return problem.qkHeadDim % WGMMA_DIM_ALIGN === 0 && problem.vHeadDim % WGMMA_DIM_ALIGN === 0;
}

/** A head dim padded to whole 128-byte swizzle rows, as the wgmma kernel's tiles store it. */
export function wgmmaPaddedDim(dim: number): number {
  return roundUp(dim, WGMMA_DIM_ALIGN);
}

/**
 * The dynamic shared memory a spec's kernel is launched with (every kernel kind takes all of its
 * shared memory dynamically, so this is the one number the launchers pass and opt into): the Q tile
 * plus numStages K/V stages (mma, wgmma), or the f32 K/V tiles (simt).
 */
export function cudaSharedBytes(spec: Pick<KernelSpec, "qkHeadDim" | "vHeadDim" | "dtype" | "config">): number {
  const c = spec.config;
  const o = cudaOptions(c, spec.dtype);
  if (o.kernel === "simt") return 4 * c.blockN * (spec.qkHeadDim + 1 + spec.vHeadDim);
  if (o.kernel === "wgmma") {
    const qk = 2 * wgmmaPaddedDim(spec.qkHeadDim), v = 2 * wgmmaPaddedDim(spec.vHeadDim);
    const tiles = c.blockM * qk + c.numStages * c.blockN * (qk + v) + WGMMA_SMEM_ALIGN;
    if (!o.warpSpecialized) return tiles;
    // Plus the mbarriers (Q, and full and empty per stage). Unless two blocks are to share an SM, at
    // least half an SM's shared memory keeps one there: the registers setmaxnreg shares out are the
    // block's own, counted for the blocks the SM holds.
    const withBarriers = tiles + 8 * (2 * c.numStages + 1);
    return o.blocksPerSm === 2 ? withBarriers : Math.max(withBarriers, SM90_SHARED_LIMIT / 2 + 1024);
  }
  const stage = c.blockN * (mmaRowBytes(spec.qkHeadDim) + mmaRowBytes(spec.vHeadDim));
  return c.blockM * mmaRowBytes(spec.qkHeadDim) + c.numStages * stage;
}

/** Threads per block: one per query row (simt), 32 per warp, plus the producer warpgroup when warp-specialized. */
export function cudaBlockThreads(spec: Pick<KernelSpec, "dtype" | "config">): number {
  const o = cudaOptions(spec.config, spec.dtype);
  if (o.kernel === "simt") return spec.config.blockM;
  return 32 * spec.config.numWarps + (o.warpSpecialized ? PRODUCER_THREADS : 0);
}

/** The shared memory a kernel may take: the limit its candidates and checks respect. */
export function cudaSharedLimit(options: Pick<CudaOptions, "kernel" | "blocksPerSm">): number {
  if (options.kernel === "simt") return SIMT_SHARED_LIMIT;
  if (options.kernel === "mma") return SM80_SHARED_LIMIT;
  return options.blocksPerSm === 2 ? SM90_PAIRED_SHARED_LIMIT : SM90_SHARED_LIMIT;
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
  if (o.kernel === "wgmma") return checkWgmmaConfig(spec, shared);
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

function checkWgmmaConfig(spec: KernelSpec, shared: number): CudaOptions {
  const c = spec.config;
  const where = `the CUDA wgmma kernel (sm_90a) with tile ${c.blockM}×${c.blockN}`;
  if (c.blockM % WGMMA_ROWS !== 0) {
    throw new FlexAttnError(`${where}: blockM must be a multiple of ${WGMMA_ROWS} (one warpgroup per ${WGMMA_ROWS} rows); use a BlockMask q block of at least ${WGMMA_ROWS}, or options.kernel "mma"`);
  }
  if (c.numWarps !== c.blockM / 16) throw new FlexAttnError(`${where}: numWarps must be ${c.blockM / 16} (4 warps per ${WGMMA_ROWS} rows), got ${c.numWarps}`);
  if (c.blockN % MMA_TILE !== 0 || c.blockN > WGMMA_MAX_N) {
    throw new FlexAttnError(`${where}: blockN must be a multiple of ${MMA_TILE} up to ${WGMMA_MAX_N}`);
  }
  if (wgmmaPaddedDim(spec.vHeadDim) > WGMMA_MAX_N) {
    throw new FlexAttnError(`${where}: v head dim ${spec.vHeadDim} exceeds ${WGMMA_MAX_N} (one wgmma's N); use options.kernel "mma"`);
  }
  const options = cudaOptions(c, spec.dtype);
  const { overlap, warpSpecialized } = options;
  const minStages = overlap ? 3 : 2;
  if (c.numStages < minStages) {
    throw new FlexAttnError(
      `${where}: numStages must be at least ${minStages} (the K/V pipeline${overlap ? ", loading the next K a tile early for overlap" : ""}), got ${c.numStages}`,
    );
  }
  const threads = cudaBlockThreads(spec);
  if (threads > 1024) throw new FlexAttnError(`${where}: ${threads} threads exceed 1024`);
  if (options.tma && !tmaHeadDims(spec)) {
    throw new FlexAttnError(
      `${where}: tma takes head dims that are multiples of ${WGMMA_DIM_ALIGN} (a tensor map's box is one swizzle row), got ${spec.qkHeadDim}/${spec.vHeadDim}; leave tma off`,
    );
  }
  if (warpSpecialized && c.blockM !== 2 * WGMMA_ROWS) {
    throw new FlexAttnError(`${where}: warpSpecialized takes blockM ${2 * WGMMA_ROWS} (two compute warpgroups beside the producer), got ${c.blockM}`);
  }
  const limit = cudaSharedLimit(options);
  if (shared > limit) {
    const needs = `${where} and ${c.numStages} stages needs ${shared} bytes of shared memory for head dims ${spec.qkHeadDim}/${spec.vHeadDim}`;
    throw new FlexAttnError(options.blocksPerSm === 2
      ? `${needs}; two blocks per SM take at most ${limit} each: use fewer stages, a smaller blockN, or blocksPerSm 1`
      : `${needs} (limit ${limit}); use fewer stages or a smaller blockN`);
  }
  return options;
}

type Problem = Pick<ResolvedProblem, "qkHeadDim" | "vHeadDim" | "dtype">;

/** tiles with `lead` moved to the front (none: as they are); tiles compare by their text. */
function leadWith<T extends string | readonly number[]>(tiles: T[], lead: T | null): T[] {
  return lead ? [lead, ...tiles.filter((t) => String(t) !== String(lead))] : tiles;
}

/**
 * [blockM, blockN, numStages, rows per warp] for the mma kernel by the wider head dim, best guess
 * first. Two stages: on sm_80/sm_90 a third stage's shared memory costs more (fewer blocks per SM)
 * than it hides. Rows per warp: at d ≤ 64 the doubled accumulators of 32 rows per warp still fit
 * in registers and each K/V fragment then serves two row tiles, halving shared-memory reads; at
 * d = 128 a warp's registers hold 16 rows × 64 keys or 32 rows × 32 keys, which do about equally.
 * A mask that gathers per element (document ids) at d ≤ 64 leaves 32 rows per warp no registers
 * for its indices: 16 rows per warp over 128 keys leads there.
 */
function mmaTiles(widest: number, mods: ModMix): [number, number, number, number][] {
  if (widest <= 64) {
    return leadWith([[128, 64, 2, 32], [128, 128, 2, 32], [128, 64, 3, 16], [128, 128, 2, 16], [64, 64, 2, 32], [64, 64, 3, 16]],
      modTraits(mods).dataDependent ? [128, 128, 2, 16] : null);
  }
  if (widest <= 128) return [[128, 64, 2, 16], [128, 32, 2, 32], [128, 64, 2, 32], [128, 64, 3, 16], [64, 64, 3, 16], [64, 32, 3, 32]];
  return [[64, 16, 2, 16], [64, 32, 2, 16], [64, 64, 2, 16], [32, 64, 2, 16], [128, 32, 2, 16]];
}

/**
 * The wgmma kernel's shapes by the wider head dim, best guess first, each named as cudaConfigName
 * names it ("128x64 s2 ws tma x2": tile, stages, then overlap, warpSpecialized, tma, blocksPerSm 2).
 * Two warpgroups (128 rows) share each K/V tile; S (blockN/2 registers per thread) and O (dv/2) stay
 * within the compute warps' registers.
 * Where the head dims are multiples of 64 (a tensor map's box), the warp-specialized kernel with TMA
 * loads leads: one producer thread keeps the stages full, each tile is handed over the moment it
 * lands, and the compute warpgroups never meet at a block barrier, so one's softmax runs beside the
 * other's wgmma. At d = 128 the Q·Kᵀ tile is long enough that issuing the next tile's S during this
 * tile's softmax (overlap) pays on top. At d ≤ 64 the softmax weighs as much as the matmuls: two
 * blocks per SM (128×64, whose S and O fit the 104 registers each compute thread then gets) give the
 * SM twice the warpgroups to hide it, for every mod; one block of 128×128 follows.
 * Without TMA (other head dims) the plain kernel leads, with the cp.async-loading warp-specialized
 * form under a transcendental score mod at d = 128, where its barrier-free loop pays.
 */
function wgmmaTiles(widest: number, mods: ModMix, tma: boolean): string[] {
  const { transcendental, dataDependent } = modTraits(mods);
  if (widest <= 64) {
    const plain = leadWith(["128x64 s2", "128x128 s3 overlap", "128x128 s2", "128x64 s3 overlap", "64x128 s2", "128x128 s4 overlap ws", "128x64 s4 ws"],
      dataDependent ? "128x128 s3 overlap" : null);
    return tma ? ["128x64 s2 ws tma x2", "128x128 s4 ws tma", "128x128 s4 overlap ws tma", "128x64 s4 ws tma x2", ...plain] : plain;
  }
  if (widest <= 128) {
    const plain = leadWith(["128x128 s3 overlap", "128x128 s3 ws", "128x128 s2", "128x64 s3 overlap", "128x64 s2", "64x128 s2", "128x128 s2 ws"],
      transcendental ? "128x128 s3 ws" : null);
    return tma ? ["128x128 s3 overlap ws tma", "128x128 s3 ws tma", "128x128 s2 ws tma", ...plain] : plain;
  }
  return ["128x64 s2", "64x64 s2", "64x128 s2"];
}

/** A wgmmaTiles shape as its tile, stages and the wgmma kernel's options. */
function wgmmaShape(name: string): { blockM: number; blockN: number; numStages: number; options: Record<string, string | boolean | number> } {
  const [tile, stages, ...flags] = name.split(" ");
  const [blockM, blockN] = tile.split("x").map(Number);
  const options: Record<string, string | boolean | number> = { kernel: "wgmma" };
  for (const flag of flags) {
    if (flag === "x2") options.blocksPerSm = 2;
    else options[{ ws: "warpSpecialized", overlap: "overlap", tma: "tma" }[flag] ?? flag] = true;
  }
  return { blockM, blockN, numStages: Number(stages.slice(1)), options };
}

/**
 * Every config valid for the problem on the target, best guess first; [0] is the heuristic default.
 * On sm_90a the wgmma kernel's configs come first, then the mma kernel's (which run there too),
 * then the CUDA-core kernel's. Tiles are fitted to the BlockMask block size; duplicates after
 * fitting and configs over their kernel's shared-memory limit are dropped.
 */
export function cudaConfigCandidates(
  problem: Problem, sparseBlock: readonly [number, number], mods: ModMix = { mask: null, score: null }, target?: DeviceTarget,
): KernelConfig[] {
  const widest = Math.max(problem.qkHeadDim, problem.vHeadDim);
  const out: KernelConfig[] = [];
  const seen = new Set<string>();
  const push = (c: KernelConfig) => {
    const key = JSON.stringify(c);
    if (seen.has(key)) return;
    const spec = { ...problem, config: c };
    if (cudaSharedBytes(spec) > cudaSharedLimit(cudaOptions(c, problem.dtype))) return;
    seen.add(key);
    out.push(c);
  };
  const half = problem.dtype !== "f32";
  if (half && cudaArch(target) === "sm_90a" && wgmmaPaddedDim(problem.vHeadDim) <= WGMMA_MAX_N) {
    for (const shape of wgmmaTiles(widest, mods, tmaHeadDims(problem)).map(wgmmaShape)) {
      const blockM = fitTile(shape.blockM, sparseBlock[0]);
      const blockN = fitTile(shape.blockN, sparseBlock[1]);
      if (blockM % WGMMA_ROWS !== 0 || blockN % MMA_TILE !== 0) continue;
      if (shape.options.warpSpecialized && blockM !== 2 * WGMMA_ROWS) continue;
      // Two blocks per SM hold their registers only at the 128×64 tile the shape names.
      if (shape.options.blocksPerSm === 2 && (blockM !== shape.blockM || blockN !== shape.blockN)) continue;
      push({ blockM, blockN, numWarps: blockM / 16, numStages: shape.numStages, prescaleQk: false, options: shape.options });
    }
  }
  if (half && sparseBlock[0] % MMA_TILE === 0 && sparseBlock[1] % MMA_TILE === 0) {
    for (const [bm, bn, stages, warpRows] of mmaTiles(widest, mods)) {
      const blockM = fitTile(bm, sparseBlock[0]);
      const blockN = fitTile(bn, sparseBlock[1]);
      push({ blockM, blockN, numWarps: Math.max(1, blockM / warpRows), numStages: stages, prescaleQk: false });
    }
  }
  const simt = half ? { kernel: "simt" as const } : undefined;
  for (const blockN of widest > 128 ? [16, 8] : [32, 16]) {
    const blockM = fitTile(64, sparseBlock[0]);
    push({ blockM, blockN: fitTile(blockN, sparseBlock[1]), numWarps: 2, numStages: 1, prescaleQk: false, ...(simt ? { options: simt } : {}) });
  }
  return out;
}

/**
 * Every TMA-loading form of a problem's warp-specialized wgmma candidates, with and without overlap
 * where the stages allow (one block per SM: overlap's second S does not fit two blocks' registers);
 * none where the head dims are not multiples of 64. The
 * conformance runs check each of them, and the bench times the ones no candidate list holds.
 */
export function cudaTmaConfigs(problem: Problem, sparseBlock: readonly [number, number], mods: ModMix = { mask: null, score: null }): KernelConfig[] {
  if (!tmaHeadDims(problem)) return [];
  const forms = cudaConfigCandidates(problem, sparseBlock, mods, cudaTarget("sm_90a"))
    .filter((c) => c.options?.warpSpecialized === true)
    .flatMap((c) => {
      const paired: Record<string, number> = c.options?.blocksPerSm === 2 ? { blocksPerSm: 2 } : {};
      // Overlap's second S takes registers two blocks per SM do not leave.
      const overlaps = [false, true].filter((overlap) => !overlap || (c.numStages >= 3 && !paired.blocksPerSm));
      return overlaps.map((overlap) => ({ ...c, options: { kernel: "wgmma", ...(overlap ? { overlap: true } : {}), warpSpecialized: true, tma: true, ...paired } }));
    });
  return forms.filter((c, i) => forms.findIndex((d) => JSON.stringify(d) === JSON.stringify(c)) === i);
}

/** A config's name in a generated module ("128x128 w8 s3 wgmma overlap"): its tile, warps, stages and kernel. */
export function cudaConfigName(config: KernelConfig, dtype: StorageDType): string {
  const o = cudaOptions(config, dtype);
  return `${config.blockM}x${config.blockN} w${config.numWarps} s${config.numStages} ${o.kernel}${o.overlap ? " overlap" : ""}${o.warpSpecialized ? " ws" : ""}${o.tma ? " tma" : ""}${o.blocksPerSm === 2 ? " x2" : ""}${o.approxTanh ? " approx-tanh" : ""}${o.lazyRescale ? " lazy" : ""}${o.polyExp2 ? ` poly${o.polyExp2}` : ""}`;
}
