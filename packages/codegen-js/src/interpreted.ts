/**
 * The JS backend where code cannot be compiled from strings (a Content-Security-Policy without
 * 'unsafe-eval'): the template's float64 reference computes the invocation row by row, with
 * the mods run by the IR evaluator, and the rows are written as the generated kernel writes
 * them (the problem's dtype and output strides, the LSE when asked). Same semantics as the
 * kernel, checked by the same conformance suite; much slower.
 */
import {
  type BackwardInvocation, type KernelInvocation, type KernelSpec, type QueryRow, type ResolvedProblem, type Tensor, backwardMods,
  f32ToBf16Bits, f32ToF16Bits, referenceBackward, referenceRows,
} from "@flexattn/template";

const withStrides = (t: Tensor, strides: readonly number[]): Tensor => ({ ...t, strides });
const encoder = (p: ResolvedProblem) => (p.dtype === "f32" ? (x: number) => Math.fround(x) : p.dtype === "bf16" ? f32ToBf16Bits : f32ToF16Bits);

/** The reference's view of an invocation: its inputs with the invocation's strides. */
function referenceCall(inv: KernelInvocation) {
  return {
    problem: inv.problem, mask: inv.mask, score: inv.score, blockMask: inv.blockMask,
    q: withStrides(inv.q, inv.strides.q), k: withStrides(inv.k, inv.strides.k), v: withStrides(inv.v, inv.strides.v),
  };
}

export function runInterpretedKernel(inv: KernelInvocation): void {
  const p = inv.problem;
  const call = referenceCall(inv);
  const encode = encoder(p);
  const [sb, sh, ss] = inv.strides.out;
  const dv = p.vHeadDim;
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.qHeads; h++) {
      const rows: QueryRow[] = Array.from({ length: p.qLen }, (_, i) => ({ b, h, i }));
      const ref = referenceRows(call, rows);
      for (let i = 0; i < p.qLen; i++) {
        const at = b * sb + h * sh + i * ss;
        for (let d = 0; d < dv; d++) inv.out[at + d] = encode(ref.out[i * dv + d]);
        if (p.returnLse) inv.lse[(b * p.qHeads + h) * p.qLen + i] = ref.lse[i];
      }
    }
}

/**
 * The JS backward where code cannot be compiled from strings: the float64 reference backward,
 * its dq, dk, dv written in the problem's dtype and the gradient strides, and the buffer
 * gradients in `backwardMods` order. Deterministic, as the reference sums in a fixed order.
 */
export function runInterpretedBackward(spec: KernelSpec, inv: BackwardInvocation): void {
  const p = inv.problem;
  const ref = referenceBackward({ ...referenceCall(inv), dOut: inv.dOut });
  const encode = encoder(p);
  const write = (dst: Float32Array | Uint16Array, src: Float64Array, heads: number, len: number, d: number, strides: readonly number[]) => {
    for (let b = 0; b < p.batch; b++)
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < len; i++) {
          const from = ((b * heads + h) * len + i) * d;
          const at = b * strides[0] + h * strides[1] + i * strides[2];
          for (let x = 0; x < d; x++) dst[at + x] = encode(src[from + x]);
        }
  };
  write(inv.dq, ref.dq, p.qHeads, p.qLen, p.qkHeadDim, inv.gradStrides.dq);
  write(inv.dk, ref.dk, p.kvHeads, p.kvLen, p.qkHeadDim, inv.gradStrides.dk);
  write(inv.dv, ref.dv, p.kvHeads, p.kvLen, p.vHeadDim, inv.gradStrides.dv);
  backwardMods(spec.score).gradBuffers.forEach((g, i) => {
    const grad = ref.dBuffers.find((r) => r.slot === g.slot)?.grad;
    inv.dBuffers[i].set(grad ?? new Float64Array(g.size));
  });
}
