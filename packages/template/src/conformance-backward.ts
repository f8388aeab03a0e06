/**
 * Backward conformance: cases (every library score mod, GQA, ragged lengths, fully masked rows,
 * offsets, learnable bias tables, f16/bf16) and one checker of a backend's dQ, dK, dV and
 * captured-buffer gradients against the float64 reference backward, on fresh random inputs.
 * The forward's out and LSE handed to the backend are the reference's (rounded to the storage
 * dtype and f32), so a backward is judged on its own. Outputs are poisoned with NaN first.
 */
import { abs, buffer, min } from "@flexattn/ir";
import {
  LIBRARY_SCORE_MODS, causal, documentCausal, mulberry32, randomDocumentIds, slidingWindow,
} from "@flexattn/masks";
import { type BackwardInvocation, backwardMods } from "./backward-steps.js";
import { type ConformanceCase, type ConformanceInstance, instantiateCase } from "./conformance.js";
import type { AttentionProblem } from "./problem.js";
import { referenceAttention } from "./reference.js";
import { type ReferenceGradients, referenceBackward } from "./reference-backward.js";
import { freshSeed, randomNormal } from "./random.js";
import { type StorageDType, bf16BitsToF32, contiguousStrides, f16BitsToF32, fromFloat32 } from "./tensor.js";

const base = { batch: 1, qHeads: 2, kvHeads: 2, qLen: 64, kvLen: 64, qkHeadDim: 32, vHeadDim: 32, dtype: "f32", returnLse: true } as const;

function c(name: string, problem: Partial<AttentionProblem>, mods: Pick<ConformanceCase, "mask" | "score">, blockSize: [number, number] = [16, 16], tags: string[] = []): ConformanceCase {
  return { name, problem: { ...base, ...problem }, ...mods, blockSize, tags };
}

const docIds = (rand: () => number, n: number, docs: number) => randomDocumentIds(n, docs, Math.floor(rand() * 2 ** 31));

/** The backward suite: small sizes (the reference backward evaluates mods and their derivatives per element). */
export const BACKWARD_CASES: readonly ConformanceCase[] = [
  c("noop", {}, {}),
  c("causal", { qLen: 70, kvLen: 70 }, { mask: () => causal() }, [32, 32], ["ragged"]),
  ...LIBRARY_SCORE_MODS.map((entry) =>
    c(`score-${entry.name}-causal`, { qHeads: 4, kvHeads: 4, qLen: 48, kvLen: 48 }, {
      mask: () => causal(), score: ({ problem: p }) => entry.create({ B: p.batch, H: p.qHeads, qLen: p.qLen, kvLen: p.kvLen }),
    }, [16, 16], ["library-score-mod"]),
  ),
  c("learnable-relative-bias-2N-1", { qLen: 56, kvLen: 56 }, {
    mask: () => causal(),
    score: ({ rand }) => {
      const table = buffer(randomNormal(2 * 56 - 1, rand), { name: "relBias" });
      return (s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(55)));
    },
  }, [16, 16], ["bias-table", "ragged"]),
  c("learnable-head-buckets-bias", { qHeads: 4, kvHeads: 2, qLen: 40, kvLen: 72 }, {
    mask: () => slidingWindow(24),
    score: ({ rand }) => {
      const table = buffer(randomNormal(4 * 8, rand), { shape: [4, 8], name: "bucketBias" });
      return (s, _b, h, q, kv) => s.add(table.at(h, min(abs(q.sub(kv)).floorDiv(4), 7)));
    },
  }, [8, 16], ["bias-table", "gqa"]),
  c("gqa-3-ragged", { qHeads: 6, kvHeads: 2, qLen: 50, kvLen: 45 }, { mask: () => causal() }, [16, 16], ["gqa", "ragged"]),
  c("gqa-8", { qHeads: 8, kvHeads: 1, qLen: 33, kvLen: 65 }, {}, [16, 32], ["gqa", "ragged"]),
  c("document-causal-scaled-score", { batch: 2, qLen: 60, kvLen: 60 }, {
    mask: ({ rand }) => documentCausal(docIds(rand, 60, 4)),
    score: () => (s, _b, _h, _q, _kv) => s.div(8).mul(8), // exercises a non-trivial ∂mod/∂s
  }, [16, 16], ["captured-i32"]),
  // A zero or negative scale is legal (PyTorch scales q·k before the mods and masks).
  c("negative-scale-causal", { qLen: 40, kvLen: 40, scale: -0.25 }, { mask: () => causal() }, [16, 16], ["scale"]),
  c("zero-scale-sliding-window", { qLen: 40, kvLen: 40, scale: 0 }, { mask: () => slidingWindow(12) }, [16, 16], ["scale"]),
  c("fully-masked-rows", { qLen: 48, kvLen: 48 }, { mask: () => (_b, _h, q, kv) => q.ge(20).and(kv.le(q)) }, [16, 16], ["fully-masked-rows"]),
  c("offsets-bias", { qLen: 40, kvLen: 40, qOffset: 30, kvOffset: 10 }, {
    mask: () => slidingWindow(16),
    score: ({ rand }) => {
      const table = buffer(randomNormal(128, rand), { name: "posBias" });
      return (s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(64)));
    },
  }, [16, 16], ["offsets", "bias-table"]),
  c("head-dim-64-qk-ne-v", { qkHeadDim: 64, vHeadDim: 48, qLen: 40, kvLen: 40 }, { mask: () => causal() }, [16, 16]),
  c("bf16-alibi-gqa", { dtype: "bf16", qHeads: 4, kvHeads: 2, qLen: 48, kvLen: 48 }, {
    mask: () => causal(), score: ({ problem: p }) => LIBRARY_SCORE_MODS.find((e) => e.name === "alibi")!.create({ B: 1, H: p.qHeads, qLen: 48, kvLen: 48 }),
  }, [16, 16], ["bf16", "gqa"]),
  c("f16-relative-bias", { dtype: "f16", qLen: 48, kvLen: 48 }, {
    mask: () => causal(),
    score: ({ rand }) => {
      const table = buffer(randomNormal(95, rand), { name: "relBias" });
      return (s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(47)));
    },
  }, [32, 16], ["f16", "bias-table"]),
  // Blocks taller in kv than in q: backward tiles with more key rows than query columns.
  c("learnable-head-relative-bias-gqa", { qHeads: 4, kvHeads: 2, qLen: 50, kvLen: 70 }, {
    score: ({ rand }) => {
      const table = buffer(randomNormal(4 * 119, rand), { shape: [4, 119], name: "headRelBias" });
      return (s, _b, h, q, kv) => s.add(table.at(h, q.sub(kv).add(69)));
    },
  }, [16, 32], ["bias-table", "gqa", "ragged"]),
];

/** A backward case with inputs, the reference forward's out and LSE, dO and poisoned gradients. */
export interface BackwardInstance extends BackwardInvocation {
  readonly case: ConformanceCase;
  readonly seed: number;
}

function poisoned(n: number, dtype: StorageDType): Float32Array | Uint16Array {
  if (dtype === "f32") return new Float32Array(n).fill(NaN);
  return new Uint16Array(n).fill(dtype === "bf16" ? 0x7fc0 : 0x7e00);
}

export function instantiateBackwardCase(cs: ConformanceCase, seed: number = freshSeed()): BackwardInstance {
  const fwd: ConformanceInstance = instantiateCase(cs, seed);
  const p = fwd.problem;
  const ref = referenceAttention(fwd);
  // The reference's out, in the instance's layout and dtype, and its LSE in f32.
  const [sb, sh, ss] = fwd.strides.out;
  const vals = new Float32Array(fwd.out.length);
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.qHeads; h++)
      for (let i = 0; i < p.qLen; i++)
        for (let d = 0; d < p.vHeadDim; d++) vals[b * sb + h * sh + i * ss + d] = ref.out[((b * p.qHeads + h) * p.qLen + i) * p.vHeadDim + d];
  fwd.out.set(fromFloat32(vals, p.dtype));
  fwd.lse.set(ref.lse);
  const shape = (h: number, n: number, d: number) => [p.batch, h, n, d];
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const doShape = shape(p.qHeads, p.qLen, p.vHeadDim);
  const dOut = { data: fromFloat32(randomNormal(size(doShape), mulberry32(seed ^ 0x5bd1e995)), p.dtype), shape: doShape, dtype: p.dtype, strides: contiguousStrides(doShape) };
  const dqShape = shape(p.qHeads, p.qLen, p.qkHeadDim);
  const dkShape = shape(p.kvHeads, p.kvLen, p.qkHeadDim);
  const dvShape = shape(p.kvHeads, p.kvLen, p.vHeadDim);
  const dBuffers = backwardMods(fwd.score).gradBuffers.map((g) => new Float32Array(g.size).fill(NaN));
  return {
    ...fwd, case: cs, seed, dOut,
    dq: poisoned(size(dqShape), p.dtype), dk: poisoned(size(dkShape), p.dtype), dv: poisoned(size(dvShape), p.dtype),
    gradStrides: { dq: contiguousStrides(dqShape), dk: contiguousStrides(dkShape), dv: contiguousStrides(dvShape) },
    dBuffers,
  };
}

/**
 * Max |gradient − ref| / max |ref| per output (ref is contiguous; the gradient has gradStrides);
 * for buffer gradients, / max Σ|contribution| (see BufferGradientResult.absSum).
 */
export interface BackwardErrors {
  dq: number;
  dk: number;
  dv: number;
  /** One per buffer gradient. */
  dBuffers: number[];
  /** Elements unwritten (NaN) or NaN where the reference is not. */
  badElements: number;
  firstBad: string;
}

/**
 * Max relative error per dtype. bf16 is looser than the forward's 1e-2: the backward reads out
 * in bf16, and delta = rowsum(dO ∘ out) carries its rounding into every dS of the row (the JS
 * backward, exact otherwise, reaches 7e-3 on bf16 cases).
 */
export const BACKWARD_TOLERANCE: Record<StorageDType, number> = { f32: 1e-4, f16: 1e-2, bf16: 2e-2 };

export function compareGradients(inst: BackwardInstance, ref: ReferenceGradients = referenceBackward(inst)): BackwardErrors {
  const p = inst.problem;
  const decode = p.dtype === "f32" ? (x: number) => x : p.dtype === "bf16" ? bf16BitsToF32 : f16BitsToF32;
  let badElements = 0;
  let firstBad = "";
  const compare = (name: string, got: ArrayLike<number>, want: Float64Array, strides: readonly number[] | null, dims: number[], dec: (x: number) => number, scaleOf: Float64Array = want) => {
    let maxRef = 0;
    for (const x of scaleOf) if (Number.isFinite(x)) maxRef = Math.max(maxRef, Math.abs(x));
    let err = 0;
    want.forEach((r, n) => {
      let at = n;
      if (strides) {
        // n is the contiguous [B, H, S, D] index of `dims`; `at` the strided one.
        let rest = n;
        at = 0;
        for (let axis = 3; axis >= 0; axis--) {
          at += (rest % dims[axis]) * strides[axis];
          rest = Math.floor(rest / dims[axis]);
        }
      }
      const g = dec(got[at]);
      if (Number.isNaN(r) && Number.isNaN(g)) return;
      if (Number.isNaN(g) || Number.isNaN(r)) {
        if (!badElements) firstBad = `${name}[${n}] = ${g}, reference ${r}`;
        badElements++;
        return;
      }
      err = Math.max(err, Math.abs(g - r) / Math.max(maxRef, 1e-6));
    });
    return err;
  };
  const gs = inst.gradStrides;
  return {
    dq: compare("dq", inst.dq, ref.dq, gs.dq, [p.batch, p.qHeads, p.qLen, p.qkHeadDim], decode),
    dk: compare("dk", inst.dk, ref.dk, gs.dk, [p.batch, p.kvHeads, p.kvLen, p.qkHeadDim], decode),
    dv: compare("dv", inst.dv, ref.dv, gs.dv, [p.batch, p.kvHeads, p.kvLen, p.vHeadDim], decode),
    dBuffers: backwardMods(inst.score).gradBuffers.map((g, i) => {
      const want = ref.dBuffers.find((d) => d.slot === g.slot)!;
      return compare(`d${g.name}`, inst.dBuffers[i], want.grad, null, [], (x) => x, want.absSum);
    }),
    badElements,
    firstBad,
  };
}

export interface BackwardCaseResult {
  name: string;
  seed: number;
  pass: boolean;
  errors: BackwardErrors | null;
  message: string;
}

export function checkBackwardInstance(inst: BackwardInstance, tol: number = BACKWARD_TOLERANCE[inst.problem.dtype]): BackwardCaseResult {
  const e = compareGradients(inst);
  const worst = Math.max(e.dq, e.dk, e.dv, ...e.dBuffers);
  const pass = e.badElements === 0 && worst <= tol;
  const message = pass
    ? "ok"
    : e.badElements
      ? `${e.badElements} gradient elements unwritten or NaN (first: ${e.firstBad})`
      : `error dq ${e.dq.toExponential(2)}, dk ${e.dk.toExponential(2)}, dv ${e.dv.toExponential(2)}, buffers [${e.dBuffers.map((x) => x.toExponential(2)).join(", ")}] (tol ${tol})`;
  return { name: inst.case.name, seed: inst.seed, pass, errors: e, message };
}

/** Run every backward case (or those given) through a backend's backward and check it. */
export async function runBackwardConformance(
  run: (inst: BackwardInstance) => void | Promise<void>,
  options: { cases?: readonly ConformanceCase[]; seed?: number; tolerance?: Partial<Record<StorageDType, number>> } = {},
): Promise<BackwardCaseResult[]> {
  const results: BackwardCaseResult[] = [];
  for (const cs of options.cases ?? BACKWARD_CASES) {
    const inst = instantiateBackwardCase(cs, options.seed ?? freshSeed());
    try {
      await run(inst);
      results.push(checkBackwardInstance(inst, options.tolerance?.[inst.problem.dtype] ?? BACKWARD_TOLERANCE[inst.problem.dtype]));
    } catch (e) {
      results.push({ name: cs.name, seed: inst.seed, pass: false, errors: null, message: `threw: ${e instanceof Error ? e.message : String(e)}` });
    }
  }
  return results;
}
