/**
 * The JS backend where code cannot be compiled from strings (a Content-Security-Policy without
 * 'unsafe-eval'): the template's float64 reference computes the invocation row by row, with
 * the mods run by the IR evaluator, and the rows are written as the generated kernel writes
 * them (the problem's dtype and output strides, the LSE when asked). Same semantics as the
 * kernel, checked by the same conformance suite; much slower.
 */
import {
  type KernelInvocation, type QueryRow, type Tensor, f32ToBf16Bits, f32ToF16Bits, referenceRows,
} from "@flexattn/template";

export function runInterpretedKernel(inv: KernelInvocation): void {
  const p = inv.problem;
  const withStrides = (t: Tensor, strides: readonly number[]): Tensor => ({ ...t, strides });
  const call = {
    problem: p, mask: inv.mask, score: inv.score, blockMask: inv.blockMask,
    q: withStrides(inv.q, inv.strides.q), k: withStrides(inv.k, inv.strides.k), v: withStrides(inv.v, inv.strides.v),
  };
  const encode = p.dtype === "f32" ? (x: number) => Math.fround(x) : p.dtype === "bf16" ? f32ToBf16Bits : f32ToF16Bits;
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
