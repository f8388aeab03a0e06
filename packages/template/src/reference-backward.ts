/**
 * The float64 reference backward: dQ, dK, dV and captured-buffer gradients of
 * L = Σ dOut ∘ out, row by row over the dense problem, with the mods' derivatives from
 * @flexattn/ir's differentiateScoreMod evaluated by the IR evaluator (f32 mod semantics, as the
 * forward reference). It recomputes its own out and LSE, so it depends on no kernel's forward.
 *
 *   s = mod(x), x = q·k·scale;  P = exp(s − lse);  dV += Pᵀ·dO;  dP = dO·Vᵀ;  delta = rowsum(dO ∘ O)
 *   dS = P ∘ (dP − delta);  dX = dS ∘ ∂mod/∂x;  dQ += dX·K·scale;  dK += dXᵀ·Q·scale
 *   dBuffer[offset] += dS · ∂mod/∂load at every load site of every element
 *
 * Elements with P = 0 (masked, skipped, or -inf scores) contribute nothing, so a fully masked
 * row has zero gradients (PyTorch would compute 0·∂mod/∂x there, NaN where that is infinite).
 * The recomputed out follows the forward reference (NUMERICS.zeroWeights): the listed keys with
 * P = 0 add 0·V, so a NaN/±inf there makes out, delta and the row's dQ and dK NaN, as a kernel
 * fed that forward's out computes them.
 */
import { type ScoreModGradient, differentiateScoreMod, evaluateGradient } from "@flexattn/ir";
import { type AttentionCall, rowScorer } from "./reference.js";
import { type Tensor, stridesOf, toFloat32 } from "./tensor.js";

export interface BackwardCall extends AttentionCall {
  /** ∂L/∂out, [B, Hq, qLen, Dv] (strided). */
  dOut: Tensor;
}

/** The gradient of one captured f32 buffer of the score mod. */
export interface BufferGradientResult {
  /** Slot in the score mod's `buffers`. */
  slot: number;
  name: string;
  grad: Float64Array;
  /**
   * Σ |contribution| per element: the scale of each sum. A low-precision backward's error in a
   * buffer gradient (a sum over every (query, key) pair) is relative to this, not to the sum,
   * which can cancel to nearly nothing.
   */
  absSum: Float64Array;
}

export interface ReferenceGradients {
  /** [B, Hq, qLen, Dqk], contiguous. */
  dq: Float64Array;
  /** [B, Hkv, kvLen, Dqk], contiguous (summed over the query heads of each group). */
  dk: Float64Array;
  /** [B, Hkv, kvLen, Dv], contiguous. */
  dv: Float64Array;
  /** One per f32 buffer of the score mod, in slot order. */
  dBuffers: BufferGradientResult[];
  /** The forward's out [B, Hq, qLen, Dv] and LSE [B, Hq, qLen] (float64), as the reference computes them. */
  out: Float64Array;
  lse: Float64Array;
}

/** Zeroed gradients for every f32 buffer of a score-mod gradient. */
export function bufferGradientTargets(grad: ScoreModGradient | null): BufferGradientResult[] {
  return (grad?.buffers ?? []).map((bg) => {
    const spec = grad!.forward.buffers[bg.slot];
    const size = spec.shape.reduce((a, b) => a * b, 1);
    return { slot: bg.slot, name: bg.name, grad: new Float64Array(size), absSum: new Float64Array(size) };
  });
}

export function referenceBackward(call: BackwardCall): ReferenceGradients {
  const { problem: p, score } = call;
  const grad = score ? differentiateScoreMod(score) : null;
  const scores = rowScorer(call);
  const [q, k, v, dOut] = [call.q, call.k, call.v, call.dOut].map((x) => toFloat32(x.data, x.dtype));
  const [qsb, qsh, qss] = stridesOf(call.q);
  const [ksb, ksh, kss] = stridesOf(call.k);
  const [vsb, vsh, vss] = stridesOf(call.v);
  const [osb, osh, oss] = stridesOf(call.dOut);
  const D = p.qkHeadDim;
  const DV = p.vHeadDim;
  const group = p.qHeads / p.kvHeads;
  const dq = new Float64Array(p.batch * p.qHeads * p.qLen * D);
  const dk = new Float64Array(p.batch * p.kvHeads * p.kvLen * D);
  const dv = new Float64Array(p.batch * p.kvHeads * p.kvLen * DV);
  const out = new Float64Array(p.batch * p.qHeads * p.qLen * DV);
  const lse = new Float64Array(p.batch * p.qHeads * p.qLen);
  const dBuffers = bufferGradientTargets(grad);
  const bySlot = new Map(dBuffers.map((d) => [d.slot, d]));
  const x = new Float64Array(p.kvLen);
  const s = new Float64Array(p.kvLen);
  const listed = new Uint8Array(p.kvLen);
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.qHeads; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < p.qLen; i++) {
        const qRow = b * qsb + h * qsh + i * qss;
        const r = (b * p.qHeads + h) * p.qLen + i;
        const m = scores({ b, h, i }, x, s, listed);
        const o = out.subarray(r * DV, (r + 1) * DV);
        let l = 0;
        if (m !== -Infinity) for (let j = 0; j < p.kvLen; j++) if (s[j] !== -Infinity) l += Math.exp(s[j] - m);
        const rowLse = m === -Infinity ? -Infinity : m + Math.log(l);
        lse[r] = rowLse;
        for (let j = 0; j < p.kvLen; j++) {
          if (!listed[j]) continue;
          const pj = s[j] === -Infinity ? 0 : Math.exp(s[j] - rowLse);
          for (let d = 0; d < DV; d++) o[d] += pj * v[b * vsb + hk * vsh + j * vss + d];
        }
        if (m === -Infinity) continue; // fully masked: out Σ 0·V (0 for finite V), no gradient
        const doRow = b * osb + h * osh + i * oss;
        let delta = 0;
        for (let d = 0; d < DV; d++) delta += dOut[doRow + d] * o[d];
        for (let j = 0; j < p.kvLen; j++) {
          if (s[j] === -Infinity) continue;
          const pj = Math.exp(s[j] - rowLse);
          if (pj === 0) continue;
          const vRow = b * vsb + hk * vsh + j * vss;
          const kRow = b * ksb + hk * ksh + j * kss;
          let dp = 0;
          for (let d = 0; d < DV; d++) dp += dOut[doRow + d] * v[vRow + d];
          const dv0 = ((b * p.kvHeads + hk) * p.kvLen + j) * DV;
          for (let d = 0; d < DV; d++) dv[dv0 + d] += pj * dOut[doRow + d];
          const ds = pj * (dp - delta);
          let dx = ds;
          if (grad) {
            const g = evaluateGradient(grad, { score: x[j], b, h, q: i + p.qOffset, kv: j + p.kvOffset });
            dx = ds * g.dScore;
            for (const site of g.sites) {
              const target = bySlot.get(site.slot)!;
              target.grad[site.offset] += ds * site.weight;
              target.absSum[site.offset] += Math.abs(ds * site.weight);
            }
          }
          const dq0 = r * D;
          const dk0 = ((b * p.kvHeads + hk) * p.kvLen + j) * D;
          for (let d = 0; d < D; d++) {
            dq[dq0 + d] += dx * p.scale * k[kRow + d];
            dk[dk0 + d] += dx * p.scale * q[qRow + d];
          }
        }
      }
    }
  return { dq, dk, dv, dBuffers, out, lse };
}
