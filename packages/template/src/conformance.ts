/**
 * Backend-agnostic conformance: cases (mods × shapes × dtypes × GQA × ragged lengths × fully
 * masked rows × head dims × offsets × layouts) and one checker against the float64 reference
 * on fresh random inputs. Outputs are poisoned with NaN first, so an unwritten element fails.
 */
import { type MaskMod, type ScoreMod, toF32, traceMaskMod, traceScoreMod, where } from "@flexattn/ir";
import {
  alibi, andMasks, causal, chunked, dilatedSlidingWindow, document, documentCausal, mulberry32, prefixLM,
  randomDocumentIds, relativePosition, slidingWindow, softcap,
} from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import { type AttentionProblem, type ResolvedProblem, defaultStrides, resolveProblem } from "./problem.js";
import { type QueryRow, type ReferenceResult, referenceAttention, referenceRows } from "./reference.js";
import { freshSeed, randomNormal } from "./random.js";
import { type StorageDType, type Tensor, bf16BitsToF32, f16BitsToF32, fromFloat32 } from "./tensor.js";
import type { KernelInvocation } from "./backend.js";

export interface CaseContext {
  problem: ResolvedProblem;
  rand: () => number;
}

export interface ConformanceCase {
  name: string;
  problem: AttentionProblem;
  /** Mods are built per instance, so captured buffers get fresh data from the case's rng. */
  mask?: (ctx: CaseContext) => MaskMod;
  score?: (ctx: CaseContext) => ScoreMod;
  blockSize: [number, number];
  tags: readonly string[];
}

const base = { batch: 1, qHeads: 2, kvHeads: 2, qLen: 96, kvLen: 96, qkHeadDim: 32, vHeadDim: 32, dtype: "f32", returnLse: true } as const;

function c(name: string, problem: Partial<AttentionProblem>, mods: Pick<ConformanceCase, "mask" | "score">, blockSize: [number, number] = [32, 32], tags: string[] = []): ConformanceCase {
  return { name, problem: { ...base, ...problem }, ...mods, blockSize, tags };
}

const docIds = (ctx: CaseContext, n: number, docs: number) => randomDocumentIds(n, docs, Math.floor(ctx.rand() * 2 ** 31));

/** The conformance suite. Sizes are small: WGSL runs it on a CPU rasterizer in CI. */
export const CONFORMANCE_CASES: readonly ConformanceCase[] = [
  c("noop", {}, {}),
  c("causal", { qLen: 130, kvLen: 130 }, { mask: () => causal() }, [32, 32], ["ragged"]),
  c("causal-q<kv", { qLen: 70, kvLen: 150 }, { mask: () => causal() }, [32, 64], ["ragged"]),
  c("causal-q>kv", { qLen: 150, kvLen: 70 }, { mask: () => causal() }, [64, 32], ["ragged", "fully-masked-rows"]),
  c("sliding-window-causal", { qLen: 160, kvLen: 160 }, { mask: () => slidingWindow(40) }),
  c("sliding-window-two-sided", { qLen: 128, kvLen: 128 }, { mask: () => slidingWindow(24, { causal: false }) }, [16, 16]),
  c("prefix-lm", { qLen: 128, kvLen: 128 }, { mask: () => prefixLM(40) }),
  c("prefix-lm-per-batch", { batch: 3, qLen: 64, kvLen: 64 }, {
    mask: (ctx) => prefixLM(Int32Array.from({ length: 3 }, () => Math.floor(ctx.rand() * 64))),
  }, [16, 16], ["captured-i32"]),
  c("document", { qLen: 120, kvLen: 120 }, { mask: (ctx) => document(docIds(ctx, 120, 5)) }, [32, 32], ["captured-i32", "ragged"]),
  c("document-causal", { qLen: 128, kvLen: 128, batch: 2 }, { mask: (ctx) => documentCausal(docIds(ctx, 128, 6)) }, [16, 32], ["captured-i32"]),
  c("dilated-sliding-window", { qLen: 96, kvLen: 96 }, { mask: () => dilatedSlidingWindow(48, 3) }),
  c("chunked", { qLen: 100, kvLen: 100 }, { mask: () => chunked(24) }, [16, 16], ["ragged"]),
  c("alibi-causal", { qHeads: 4, kvHeads: 4 }, { mask: () => causal(), score: () => alibi(4) }, [32, 32], ["captured-f32"]),
  c("softcap-causal", {}, { mask: () => causal(), score: () => softcap(5) }),
  c("relative-position", {}, { score: () => relativePosition() }),
  // The row max rises by 12 every 16 keys, so every kernel's online-softmax rescaling (lazy or not)
  // runs on nearly every key tile.
  c("rising-scores", {}, { score: () => (s, _b, _h, _q, kv) => s.add(toF32(kv).mul(0.75)) }, [16, 16]),
  c("softcap-document-causal", { qLen: 112, kvLen: 112 }, {
    mask: (ctx) => documentCausal(docIds(ctx, 112, 4)), score: () => softcap(8),
  }, [16, 16], ["captured-i32", "ragged"]),
  c("gqa-2", { qHeads: 4, kvHeads: 2 }, { mask: () => causal() }, [32, 32], ["gqa"]),
  c("gqa-3", { qHeads: 6, kvHeads: 2, qLen: 50, kvLen: 50 }, { mask: () => causal() }, [16, 16], ["gqa", "ragged"]),
  c("gqa-4-alibi", { qHeads: 8, kvHeads: 2, qLen: 40, kvLen: 72 }, { mask: () => causal(), score: () => alibi(8) }, [16, 16], ["gqa"]),
  c("gqa-8", { qHeads: 8, kvHeads: 1, qLen: 33, kvLen: 65 }, {}, [16, 32], ["gqa", "ragged"]),
  c("head-dim-16", { qkHeadDim: 16, vHeadDim: 16 }, { mask: () => causal() }),
  c("head-dim-64", { qkHeadDim: 64, vHeadDim: 64, qLen: 80, kvLen: 80 }, { mask: () => causal() }),
  c("head-dim-80", { qkHeadDim: 80, vHeadDim: 80, qLen: 70, kvLen: 70 }, { mask: () => slidingWindow(20) }, [32, 32], ["ragged"]),
  c("head-dim-128", { qkHeadDim: 128, vHeadDim: 128, qLen: 64, kvLen: 64, qHeads: 1, kvHeads: 1 }, { mask: () => causal() }),
  c("qk-dim-ne-v-dim", { qkHeadDim: 48, vHeadDim: 24, qLen: 72, kvLen: 72 }, { mask: () => causal() }),
  c("fully-masked-rows", { qLen: 64, kvLen: 64 }, { mask: () => (_b, _h, q, kv) => q.ge(20).and(kv.le(q)) }, [16, 16], ["fully-masked-rows"]),
  c("score-mod-masks-everything-in-rows", { qLen: 48, kvLen: 48 }, {
    score: () => (s, _b, _h, q, kv) => where(q.lt(8).or(kv.gt(q)), -Infinity, s),
  }, [16, 16], ["fully-masked-rows"]),
  c("offsets", { qLen: 48, kvLen: 144, qOffset: 96 }, { mask: () => causal() }, [16, 16], ["offsets"]),
  c("offsets-both", { qLen: 40, kvLen: 40, qOffset: 30, kvOffset: 10 }, { mask: () => slidingWindow(16), score: () => relativePosition() }, [16, 16], ["offsets"]),
  c("layout-bshd", { layout: "bshd", qHeads: 4, kvHeads: 2, qLen: 72, kvLen: 72 }, { mask: () => causal() }, [32, 32], ["layout"]),
  c("batch-head-mods", { batch: 2, qHeads: 3, kvHeads: 3, qLen: 48, kvLen: 48 }, {
    mask: () => (b, h, q, kv) => kv.le(q.add(b.mul(8)).sub(h.mul(4))),
    score: () => (s, b, h, _q, _kv) => s.mul(h.add(1)).add(b),
  }, [16, 16], []),
  c("combined-and", { qLen: 96, kvLen: 96 }, { mask: () => andMasks(causal(), slidingWindow(64), chunked(48)) }, [16, 16]),
  c("bf16-causal", { dtype: "bf16", qLen: 96, kvLen: 96, qkHeadDim: 64, vHeadDim: 64 }, { mask: () => causal() }, [32, 32], ["bf16"]),
  c("f16-softcap", { dtype: "f16", qLen: 64, kvLen: 64 }, { mask: () => causal(), score: () => softcap(20) }, [32, 32], ["f16"]),
  c("bf16-document-gqa", { dtype: "bf16", qHeads: 4, kvHeads: 2, qLen: 80, kvLen: 80 }, {
    mask: (ctx) => documentCausal(docIds(ctx, 80, 3)),
  }, [16, 16], ["bf16", "gqa", "captured-i32"]),
  // A zero or negative scale is legal (PyTorch scales q·k before the mods and masks).
  c("negative-scale-causal", { qLen: 70, kvLen: 70, scale: -0.2 }, { mask: () => causal() }, [32, 32], ["ragged", "scale"]),
  c("block-128", { qLen: 200, kvLen: 260, qkHeadDim: 64, vHeadDim: 64 }, { mask: () => causal() }, [128, 128], ["ragged"]),
];

/** A case with concrete inputs and poisoned output buffers, ready for a backend to run. */
export interface ConformanceInstance extends KernelInvocation {
  readonly case: ConformanceCase;
  readonly seed: number;
}

function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function poisoned(n: number, dtype: StorageDType): Float32Array | Uint16Array {
  if (dtype === "f32") return new Float32Array(n).fill(NaN);
  return new Uint16Array(n).fill(dtype === "bf16" ? 0x7fc0 : 0x7e00);
}

function randomTensor(shape: number[], strides: readonly number[], dtype: StorageDType, rand: () => number): Tensor {
  return { data: fromFloat32(randomNormal(sizeOf(shape), rand), dtype), shape, dtype, strides };
}

export function instantiateCase(cs: ConformanceCase, seed: number = freshSeed()): ConformanceInstance {
  const problem = resolveProblem(cs.problem);
  const rand = mulberry32(seed);
  const ctx: CaseContext = { problem, rand };
  const strides = defaultStrides(problem);
  const p = problem;
  const q = randomTensor([p.batch, p.qHeads, p.qLen, p.qkHeadDim], strides.q, p.dtype, rand);
  const k = randomTensor([p.batch, p.kvHeads, p.kvLen, p.qkHeadDim], strides.k, p.dtype, rand);
  const v = randomTensor([p.batch, p.kvHeads, p.kvLen, p.vHeadDim], strides.v, p.dtype, rand);
  const maskFn = cs.mask?.(ctx);
  const mask = maskFn ? traceMaskMod(maskFn) : null;
  const score = cs.score ? traceScoreMod(cs.score(ctx)) : null;
  // The BlockMask sees global positions, as the kernel's mods do.
  const allTrue: MaskMod = (_b, _h, _q, _kv) => true;
  const shifted: MaskMod | undefined = maskFn && ((b, h, qi, kv) => maskFn(b, h, qi.add(p.qOffset), kv.add(p.kvOffset)));
  const blockMask = createBlockMask(
    (p.qOffset || p.kvOffset ? shifted : maskFn) ?? allTrue,
    { B: p.batch, H: p.qHeads, qLen: p.qLen, kvLen: p.kvLen, blockSize: cs.blockSize },
  );
  return {
    case: cs, seed, problem, strides, q, k, v, mask, score, blockMask,
    out: poisoned(p.batch * p.qHeads * p.qLen * p.vHeadDim, p.dtype),
    lse: new Float32Array(p.batch * p.qHeads * p.qLen).fill(NaN),
  };
}

export interface Tolerance {
  /** Max |out − ref| / max(1, max |ref|). */
  out: number;
  /** Max |lse − ref| / max(1, |ref|). */
  lse: number;
}

export const DEFAULT_TOLERANCE: Record<StorageDType, Tolerance> = {
  f32: { out: 1e-3, lse: 1e-3 },
  f16: { out: 1e-2, lse: 1e-2 },
  bf16: { out: 1e-2, lse: 1e-2 },
};

export interface CaseResult {
  name: string;
  seed: number;
  pass: boolean;
  outError: number;
  lseError: number;
  /** Elements still poisoned or NaN where the reference is not. */
  badElements: number;
  message: string;
}

/** How far a call's outputs are from the reference, on the rows compared. */
export interface RowErrors {
  /** Max |out − ref| / max(1, max |ref| over the rows). */
  outError: number;
  /** Max |lse − ref| / max(1, |ref|) (0 when the problem returns no LSE). */
  lseError: number;
  /** Elements still poisoned, NaN where the reference is not, or infinite where it differs. */
  badElements: number;
  /** The first bad element, for messages ("" when none). */
  firstBad: string;
}

/**
 * Compare the outputs (already written into `inv.out` and `inv.lse`) on `rows` with `ref`, the
 * reference for exactly those rows in that order (referenceAttention's for every row, or
 * referenceRows'). Elements are decoded one by one: a spot check of a large call reads only its rows.
 */
export function compareRows(inv: KernelInvocation, ref: ReferenceResult, rows: readonly QueryRow[]): RowErrors {
  const p = inv.problem;
  const decode = p.dtype === "f32" ? (x: number) => x : p.dtype === "bf16" ? bf16BitsToF32 : f16BitsToF32;
  const [sb, sh, ss] = inv.strides.out;
  let maxRef = 0;
  for (const x of ref.out) if (Number.isFinite(x)) maxRef = Math.max(maxRef, Math.abs(x));
  let outError = 0;
  let lseError = 0;
  let badElements = 0;
  let firstBad = "";
  const bad = (what: string) => {
    if (!badElements) firstBad = what;
    badElements++;
  };
  rows.forEach(({ b, h, i }, n) => {
    for (let d = 0; d < p.vHeadDim; d++) {
      const r = ref.out[n * p.vHeadDim + d];
      const g = decode(inv.out[b * sb + h * sh + i * ss + d]);
      if (Number.isNaN(r) && Number.isNaN(g)) continue;
      if (Number.isNaN(g) || Number.isNaN(r)) {
        bad(`out[${b},${h},${i},${d}] = ${g}, reference ${r}`);
        continue;
      }
      outError = Math.max(outError, Math.abs(g - r) / Math.max(1, maxRef));
    }
    if (!p.returnLse) return;
    const at = (b * p.qHeads + h) * p.qLen + i;
    const r = ref.lse[n];
    const g = inv.lse[at];
    if (Object.is(r, g) || (Number.isNaN(r) && Number.isNaN(g))) return;
    if (!Number.isFinite(r) || !Number.isFinite(g)) bad(`lse[${at}] = ${g}, reference ${r}`);
    else lseError = Math.max(lseError, Math.abs(g - r) / Math.max(1, Math.abs(r)));
  });
  return { outError, lseError, badElements, firstBad };
}

/**
 * A spot check's errors: each of `rows` compared with the float64 reference of those rows only,
 * on its own scale (max(1, max |ref| of that row)).
 */
export function compareEachRow(inv: KernelInvocation, rows: readonly QueryRow[]): RowErrors[] {
  const dv = inv.problem.vHeadDim;
  const ref = referenceRows(inv, rows);
  return rows.map((row, n) => compareRows(inv, { out: ref.out.subarray(n * dv, (n + 1) * dv), lse: ref.lse.subarray(n, n + 1) }, [row]));
}

/** Every query row of a problem, in the reference's order. */
function allRows(p: ResolvedProblem): QueryRow[] {
  const rows: QueryRow[] = [];
  for (let b = 0; b < p.batch; b++) for (let h = 0; h < p.qHeads; h++) for (let i = 0; i < p.qLen; i++) rows.push({ b, h, i });
  return rows;
}

/** Compare a backend's outputs (already written into the instance) with the float64 reference. */
export function checkInstance(inst: ConformanceInstance, tol: Tolerance = DEFAULT_TOLERANCE[inst.problem.dtype]): CaseResult {
  const e = compareRows(inst, referenceAttention(inst), allRows(inst.problem));
  const pass = e.badElements === 0 && e.outError <= tol.out && e.lseError <= tol.lse;
  const message = pass
    ? "ok"
    : e.badElements
      ? `${e.badElements} elements unwritten or NaN (first: ${e.firstBad})`
      : `error out ${e.outError.toExponential(2)} (tol ${tol.out}), lse ${e.lseError.toExponential(2)} (tol ${tol.lse})`;
  return { name: inst.case.name, seed: inst.seed, pass, outError: e.outError, lseError: e.lseError, badElements: e.badElements, message };
}

export interface ConformanceBackend {
  readonly name: string;
  /** Write out (and lse when requested) into the instance's buffers. */
  run(inst: ConformanceInstance): void | Promise<void>;
  tolerance?: Partial<Record<StorageDType, Tolerance>>;
}

export interface ConformanceReport {
  backend: string;
  results: CaseResult[];
  passed: number;
  failed: number;
}

/** Run every case (or those selected) on a backend: one call per backend. */
export async function runConformance(
  backend: ConformanceBackend,
  options: { cases?: readonly ConformanceCase[]; filter?: (c: ConformanceCase) => boolean; seed?: number } = {},
): Promise<ConformanceReport> {
  const cases = (options.cases ?? CONFORMANCE_CASES).filter(options.filter ?? (() => true));
  const results: CaseResult[] = [];
  for (const cs of cases) {
    const inst = instantiateCase(cs, options.seed ?? freshSeed());
    try {
      await backend.run(inst);
      results.push(checkInstance(inst, backend.tolerance?.[inst.problem.dtype] ?? DEFAULT_TOLERANCE[inst.problem.dtype]));
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      results.push({ name: cs.name, seed: inst.seed, pass: false, outError: NaN, lseError: NaN, badElements: -1, message: `threw: ${message}` });
    }
  }
  const passed = results.filter((r) => r.pass).length;
  return { backend: backend.name, results, passed, failed: results.length - passed };
}

export function formatReport(r: ConformanceReport): string {
  const lines = r.results.map(
    (x) => `${x.pass ? "PASS" : "FAIL"} ${x.name.padEnd(36)} out ${x.outError.toExponential(2)} lse ${x.lseError.toExponential(2)} seed ${x.seed}${x.pass ? "" : "  " + x.message}`,
  );
  return [...lines, `${r.backend}: ${r.passed} passed, ${r.failed} failed`].join("\n");
}
