/**
 * Tile geometry of the WGSL kernel, derived from a KernelSpec's config. One workgroup owns a
 * BM-row query tile; its T invocations form G = BM / RM row groups of TC = T / G invocations.
 * An invocation holds an RM × RN register tile of S = Q·Kᵀ (columns c, c + TC, …) and an
 * RM × (CV vec4) tile of O (vec4 columns c, c + TC, …), so both products are register-tiled.
 */
import { FlexAttnError } from "@flexattn/ir";
import type { KernelSpec } from "@flexattn/template";

/** WGSL-specific knobs in `KernelConfig.options`. */
export interface WgslOptions {
  /** Query rows per invocation (RM): 1, 2, 4 or 8. */
  rowsPerThread: number;
  /** Invocations per workgroup; default numWarps × 32. */
  workgroupSize: number;
  /** q, k, v and out bound as array<vec4<f32>> (f32 only; strides must be multiples of 4). */
  vec4: boolean;
  /** Row-max and row-sum exchange through subgroup shuffles instead of workgroup memory (needs `subgroups`). */
  subgroups: boolean;
  /** Read Q from global memory (cached) in Q·Kᵀ instead of staging it in workgroup memory (needs vec4). */
  qGlobal: boolean;
  /** Two K/V buffers, so the end-of-tile barrier is not needed. */
  doubleBuffer: boolean;
  /**
   * K and Vᵀ share one workgroup array (V is stored after Q·Kᵀ has read K, behind one more
   * barrier): wider kv tiles fit, e.g. 128×32 at head dim 128 in 33 KB instead of 50. The
   * subgroupMatrix kernel does the same with its f16 K and V tiles, with no extra barrier (the one
   * that publishes S also ends the reads of K): 128×32 at head dim 64 fits in 45 KB.
   */
  shareKV: boolean;
  /** Load the V tile into registers with the K tile (hides its latency, costs registers). */
  prefetchV: boolean;
  /**
   * Load the next kv tile's K and V into registers while this tile is computed, so no tile waits
   * on global memory before its first barrier (costs a vec4 register per share of each, and one
   * more per V share with shareKV). subgroupMatrix configs only; the plain kernel ignores it, as
   * it ignores prefetchV where V is not staged after Q·Kᵀ, so options forced on every candidate
   * stay valid.
   */
  prefetchNext: boolean;
  /** Unroll of the head-dim loop of Q·Kᵀ (vec4 steps) and the key loop of P·V; 0 = full. */
  unrollD: number;
  unrollN: number;
  /** tanh as the guarded builtin ("guarded") or as 1 − 2/(exp(2x) + 1) ("exp"); see renderer.ts. */
  tanh: "guarded" | "exp";
  /**
   * Q·Kᵀ and P·V on subgroup matrices (tensor cores) with f16 hi/lo operands, three products per
   * f32 product (emitter-matrix.ts). Needs the adapter features shader-f16, subgroups (size 32) and
   * chromium-experimental-subgroup-matrix with f16 16×16 matrices; head dims multiples of 16.
   */
  subgroupMatrix: boolean;
  /**
   * subgroupMatrix: each S (and O) row in sc is padded by 4 floats (16 bytes). Unpadded, every
   * row starts on one of two banks (BN = 16) or on the same one (BN = 32), so the two lanes of a
   * row reading its S values collide 8 or 16 ways; padded, 2 ways. The plain kernel ignores it.
   */
  padS: boolean;
  /**
   * subgroupMatrix: the f16 hi/lo stores of a staged K, V or Q share write the second half of
   * the vec4 first in lanes 16–31. A row's vec4s sit on even banks only, so the two half-warps
   * collide 2 ways on every store; staggered, they take the odd banks. The plain kernel ignores it.
   */
  staggerSplit: boolean;
  /**
   * subgroupMatrix: lanes 16–31 (rows 8–15 of a subgroup's 16) take their row's S columns in an
   * order rotated by one step, so each S read and P store of a row's lanes falls on distinct
   * banks once padS spreads the rows (otherwise rows r and r + 8 collide). Each value keeps its
   * key index for the mods; only the order in which a lane visits its columns changes.
   */
  staggerS: boolean;
}

export const DEFAULT_WGSL_OPTIONS: Omit<WgslOptions, "workgroupSize" | "vec4"> = {
  rowsPerThread: 4,
  subgroups: false,
  qGlobal: false,
  doubleBuffer: false,
  shareKV: false,
  prefetchV: true,
  prefetchNext: false,
  unrollD: 0,
  unrollN: 0,
  tanh: "exp",
  subgroupMatrix: false,
  padS: true,
  staggerSplit: true,
  staggerS: true,
};

export interface WgslGeometry {
  readonly opts: WgslOptions;
  readonly BM: number;
  readonly BN: number;
  readonly T: number;
  readonly RM: number;
  /** Row groups and invocations per row group. */
  readonly G: number;
  readonly TC: number;
  /** S columns per invocation. */
  readonly RN: number;
  /** Head dims, and their size in vec4 (rounded up). */
  readonly D: number;
  readonly DV: number;
  readonly D4: number;
  readonly DV4: number;
  /** O vec4 columns per invocation; the V tile is VW = CV·TC vec4 wide (padding past DV4 unused). */
  readonly CV: number;
  readonly VW: number;
  /**
   * Workgroup arrays are arrays of rows; every row length is odd (in 16-byte or row-vector
   * units) so that invocations reading different rows at one offset hit different banks:
   *   Q  [G][QGS]  vec4, a row group's RM rows back to back
   *   K  [BN][KS]  vec4, one key per row
   *   Vᵀ [VW][VS]  vec4, one vec4 column of V per row, keys along the row
   *   P  [G·U][PS] row-vectors (RM rows as vecW), keys along the row
   *   MX [G·U][MS] row-vectors, one per invocation of the row group
   * With shareKV, K and Vᵀ are one [max(BN, VW)][KS = VS] array.
   */
  readonly QGS: number;
  readonly KS: number;
  readonly VS: number;
  readonly PS: number;
  readonly MS: number;
  /** Row-vector unit: RM rows travel as vecW (W = min(RM, 4)), U units per row group. */
  readonly W: number;
  readonly U: number;
  readonly buffers: number;
  readonly useQShared: boolean;
  readonly useMx: boolean;
  readonly sharedBytes: number;
  readonly sparseBlock: readonly [number, number];
  /** The subgroup-matrix layout, with `subgroupMatrix` (then RM = 1, G = BM, TC = LPR, RN = CPL). */
  readonly matrix?: MatrixGeometry;
}

/**
 * Subgroup-matrix kernel layout: NSG subgroups of 32 invocations, each owning R = 16·RF query rows
 * (RF fragment rows); a row's S values are spread over LPR = 32 / R lanes, CPL columns each.
 * Workgroup memory (f16 unless noted), row strides in elements:
 *   sm  K hi, K lo [BN][KS], V hi, V lo [BN][VKS]; with shareKV, V hi, V lo take K's place after Q·Kᵀ
 *   sc  f32 [NSG·R][SS]: each subgroup's S tile, and its O fragments when they are rescaled or stored
 *       (SS = BN + 4 with padS, so that a row's lanes reading S spread over the banks)
 *   pp  [NSG·2R][PS]: each subgroup's P tile, hi rows then lo rows (Q passes through it first, QCW
 *       columns of every row at a time)
 * PS is padded past BN: NVIDIA's driver computes wrong products from P tiles whose row stride is
 * exactly 16 halves (32 bytes).
 */
export interface MatrixGeometry {
  readonly RF: number;
  readonly NSG: number;
  readonly R: number;
  readonly LPR: number;
  readonly CPL: number;
  /** 16-wide fragments along the qk head dim, the v head dim and the kv tile. */
  readonly DF: number;
  readonly DVF: number;
  readonly NF: number;
  readonly KS: number;
  readonly VKS: number;
  readonly SS: number;
  readonly PS: number;
  /** Sizes of sm (halves), sc (floats) and pp (halves); the head-dim columns of Q staged per pass through pp (all BM rows, hi and lo). */
  readonly smHalves: number;
  readonly scFloats: number;
  readonly ppHalves: number;
  readonly QCW: number;
}

/** A P/V/K tile row padded by 8 halves (16 bytes) keeps every fragment 16-byte aligned. */
const MATRIX_PAD = 8;
/** An S row padded by 4 floats (16 bytes; padS): rows 8 apart share banks, no more. */
const S_PAD = 4;

function matrixGeometry(spec: KernelSpec, BM: number, BN: number, T: number, { shareKV, padS }: WgslOptions, fail: (m: string) => never): MatrixGeometry {
  const { qkHeadDim: D, vHeadDim: DV } = spec;
  if (D % 16 !== 0 || DV % 16 !== 0) fail("subgroupMatrix needs head dims that are multiples of 16");
  if (BN % 16 !== 0) fail("subgroupMatrix needs blockN a multiple of 16");
  if (T % 32 !== 0) fail("subgroupMatrix needs a workgroup of whole subgroups of 32");
  const NSG = T / 32;
  const RF = BM / (16 * NSG);
  if (RF !== 1 && RF !== 2) fail(`subgroupMatrix needs blockM = 16 or 32 rows per subgroup (${NSG} subgroups)`);
  const R = 16 * RF;
  const LPR = 32 / R;
  const KS = D + MATRIX_PAD;
  const VKS = DV + MATRIX_PAD;
  const smHalves = shareKV ? 2 * BN * Math.max(KS, VKS) : 2 * BN * (KS + VKS);
  const [SS, PS] = [padS ? BN + S_PAD : BN, BN + MATRIX_PAD];
  const ppHalves = NSG * 2 * R * PS;
  // Q is staged in column chunks of every row at once, so each fragment is loaded exactly once
  // (a value, not a variable assigned in a branch): the widest multiple of 16 dividing D that fits
  // pp (BM rows of hi and lo, BN + PAD halves each: 16 columns always fit).
  let QCW = D;
  while (QCW > 16 && (D % QCW !== 0 || 2 * BM * (QCW + MATRIX_PAD) > ppHalves)) QCW -= 16;
  return {
    RF, NSG, R, LPR, CPL: BN / LPR, DF: D / 16, DVF: DV / 16, NF: BN / 16, KS, VKS, SS, PS,
    smHalves, scFloats: NSG * R * SS, ppHalves, QCW,
  };
}

const odd = (x: number) => (x % 2 === 0 ? x + 1 : x);
const isPow2 = (x: number) => Number.isInteger(x) && x > 0 && (x & (x - 1)) === 0;

export function wgslOptions(spec: KernelSpec): WgslOptions {
  const o = spec.config.options ?? {};
  const known = new Set(["rowsPerThread", "workgroupSize", "vec4", "subgroups", "qGlobal", "doubleBuffer", "shareKV", "prefetchV", "prefetchNext", "unrollD", "unrollN", "tanh", "subgroupMatrix", "padS", "staggerSplit", "staggerS"]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw new FlexAttnError(`unknown WGSL option "${k}" (known: ${[...known].join(", ")})`);
  const num = (k: string, d: number) => {
    const v = o[k] ?? d;
    if (typeof v !== "number" || !Number.isInteger(v)) throw new FlexAttnError(`WGSL option ${k} must be an integer, got ${String(v)}`);
    return v;
  };
  const bool = (k: string, d: boolean) => {
    const v = o[k] ?? d;
    if (typeof v !== "boolean") throw new FlexAttnError(`WGSL option ${k} must be a boolean, got ${String(v)}`);
    return v;
  };
  const D = DEFAULT_WGSL_OPTIONS;
  return {
    rowsPerThread: num("rowsPerThread", D.rowsPerThread),
    workgroupSize: num("workgroupSize", spec.config.numWarps * 32),
    vec4: bool("vec4", false),
    subgroups: bool("subgroups", D.subgroups),
    qGlobal: bool("qGlobal", D.qGlobal),
    doubleBuffer: bool("doubleBuffer", D.doubleBuffer),
    shareKV: bool("shareKV", D.shareKV),
    prefetchV: bool("prefetchV", D.prefetchV),
    prefetchNext: bool("prefetchNext", D.prefetchNext),
    unrollD: num("unrollD", D.unrollD),
    unrollN: num("unrollN", D.unrollN),
    tanh: tanhMode(o.tanh ?? D.tanh),
    subgroupMatrix: bool("subgroupMatrix", D.subgroupMatrix),
    padS: bool("padS", D.padS),
    staggerSplit: bool("staggerSplit", D.staggerSplit),
    staggerS: bool("staggerS", D.staggerS),
  };
}

function tanhMode(v: unknown): "guarded" | "exp" {
  if (v !== "guarded" && v !== "exp") throw new FlexAttnError(`WGSL option tanh must be "guarded" or "exp", got ${String(v)}`);
  return v;
}

/** Derive and check the geometry; throws FlexAttnError naming the broken constraint. */
export function wgslGeometry(spec: KernelSpec): WgslGeometry {
  const opts = wgslOptions(spec);
  const { blockM: BM, blockN: BN } = spec.config;
  const T = opts.workgroupSize;
  const RM = Math.min(opts.rowsPerThread, BM);
  const fail = (msg: string): never => {
    throw new FlexAttnError(`WGSL config (blockM ${BM}, blockN ${BN}, workgroup ${T}, rowsPerThread ${opts.rowsPerThread}): ${msg}`);
  };
  if (!isPow2(T) || T > 1024) fail("workgroupSize must be a power of two ≤ 1024");
  if (opts.subgroupMatrix) return subgroupMatrixGeometry(spec, opts, fail);
  if (![1, 2, 4, 8].includes(RM)) fail("rowsPerThread must be 1, 2, 4 or 8");
  if (BN % 4 !== 0) fail("blockN must be a multiple of 4 (the BlockMask kv block size must allow it)");
  if (BM % RM !== 0) fail("rowsPerThread must divide blockM");
  const G = BM / RM;
  if (T % G !== 0) fail(`the workgroup must hold a whole number of invocations per row group (${G} row groups)`);
  const TC = T / G;
  if (BN % TC !== 0) fail(`blockN must be a multiple of the ${TC} invocations per row group`);
  if (opts.unrollD < 0 || opts.unrollN < 0) fail("unrollD and unrollN must be ≥ 0 (0 = full)");
  if (opts.vec4 && (spec.dtype !== "f32" || spec.qkHeadDim % 4 !== 0 || spec.vHeadDim % 4 !== 0)) {
    fail("vec4 needs f32 storage and head dims that are multiples of 4");
  }
  if (opts.qGlobal && !opts.vec4) fail("qGlobal needs vec4");
  const RN = BN / TC;
  const D = spec.qkHeadDim;
  const DV = spec.vHeadDim;
  const D4 = Math.ceil(D / 4);
  const DV4 = Math.ceil(DV / 4);
  const CV = Math.ceil(DV4 / TC);
  const VW = CV * TC;
  const W = Math.min(RM, 4);
  const U = RM / W;
  const QGS = odd(RM * D4);
  const KS = opts.shareKV ? Math.max(odd(D4), odd(BN)) : odd(D4);
  const VS = opts.shareKV ? KS : odd(BN);
  const PS = odd(BN);
  const MS = odd(TC);
  const buffers = opts.doubleBuffer ? 2 : 1;
  const useQShared = !opts.qGlobal;
  const useMx = !opts.subgroups && TC > 1;
  const kvVec4s = opts.shareKV ? Math.max(BN, VW) * KS : BN * KS + VW * VS;
  const vec4s = (useQShared ? G * QGS : 0) + buffers * kvVec4s;
  const units = G * U * PS + (useMx ? G * U * MS : 0);
  const sharedBytes = vec4s * 16 + units * W * 4;
  return {
    opts, BM, BN, T, RM, G, TC, RN, D, DV, D4, DV4, CV, VW, QGS, KS, VS, PS, MS, W, U, buffers, useQShared, useMx,
    sharedBytes, sparseBlock: spec.sparseBlock,
  };
}

/** The geometry of a subgroupMatrix config: the fields the shared mod and softmax code reads, plus the layout. */
function subgroupMatrixGeometry(spec: KernelSpec, opts: WgslOptions, fail: (m: string) => never): WgslGeometry {
  const { blockM: BM, blockN: BN } = spec.config;
  const T = opts.workgroupSize;
  if (opts.doubleBuffer || opts.qGlobal) fail("subgroupMatrix stages Q, K and V itself: doubleBuffer and qGlobal do not apply");
  if (opts.vec4 && spec.dtype !== "f32") fail("vec4 needs f32 storage");
  const m = matrixGeometry(spec, BM, BN, T, opts, fail);
  const D = spec.qkHeadDim;
  const DV = spec.vHeadDim;
  const sharedBytes = 2 * m.smHalves + 4 * m.scFloats + 2 * m.ppHalves + 16; // + the rescale flag, padded to 16 bytes
  return {
    // Each lane holds one query row (RM = 1) and CPL of its columns (c, c + LPR, …), as the
    // register tile of the plain kernel does with TC = LPR: the mods and row exchanges are shared.
    // V is prefetched into registers only where it is stored after Q·Kᵀ (shareKV), and with
    // prefetchNext it is already in registers.
    opts: { ...opts, rowsPerThread: 1, subgroups: true, prefetchV: opts.shareKV && opts.prefetchV && !opts.prefetchNext },
    BM, BN, T, RM: 1, G: BM, TC: m.LPR, RN: m.CPL, D, DV, D4: D / 4, DV4: DV / 4, CV: 0, VW: 0,
    QGS: 0, KS: 0, VS: 0, PS: 0, MS: 0, W: 1, U: 1, buffers: 1, useQShared: false, useMx: false,
    sharedBytes, sparseBlock: spec.sparseBlock, matrix: m,
  };
}
