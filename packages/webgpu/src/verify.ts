/**
 * Spot checks of kernel outputs against the float64 reference. subgroupMatrix kernels are checked
 * on their first run on each device: on NVIDIA's Vulkan driver they are correct only in the form
 * the generator emits, for reasons not understood, and small changes made them write NaN
 * (apps/bench/results/wgsl-h200.md), so a driver or Dawn update could break them without notice.
 */
import { FlexAttnError } from "@flexattn/ir";
import { type KernelArtifact, type KernelInvocation, type QueryRow, type StorageDType, referenceRows, toFloat32 } from "@flexattn/template";

/** "auto": subgroupMatrix kernels, once per device and kernel; "always": every run; "never". */
export type VerifyMode = "auto" | "always" | "never";

/** Largest error of a checked row, relative to the row's largest reference value (at least 1). */
const TOLERANCE: Record<StorageDType, number> = { f32: 1e-3, f16: 1e-2, bf16: 5e-2 };

export function needsCheck(artifact: KernelArtifact, mode: VerifyMode): boolean {
  return mode === "always" || (mode === "auto" && artifact.config.options?.subgroupMatrix === true);
}

/** The rows checked: the first and last of the call, and two in between (a fixed spread). */
export function spotRows(inv: KernelInvocation): QueryRow[] {
  const p = inv.problem;
  const at = (f: number): QueryRow => {
    const n = Math.min(p.batch * p.qHeads * p.qLen - 1, Math.floor(f * p.batch * p.qHeads * p.qLen));
    return { b: Math.floor(n / (p.qHeads * p.qLen)), h: Math.floor(n / p.qLen) % p.qHeads, i: n % p.qLen };
  };
  const rows = [at(0), at(0.37), at(0.71), at(1)];
  return rows.filter((r, k) => rows.findIndex((x) => x.b === r.b && x.h === r.h && x.i === r.i) === k);
}

/**
 * |got − want| / scale, where a NaN or infinite reference (a NaN score, a fully masked row's LSE)
 * must be matched exactly and any other NaN is wrong.
 */
function deviation(got: number, want: number, scale: number): number {
  if (!Number.isFinite(want)) return Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)) ? 0 : Infinity;
  return Number.isNaN(got) ? Infinity : Math.abs(got - want) / scale;
}

/**
 * Compare a few output rows (already read back into inv.out) with the float64 reference; throw a
 * FlexAttnError that names the row, the error and the way out when one is off.
 */
export function checkRows(inv: KernelInvocation, artifact: KernelArtifact, deviceName: string): void {
  const p = inv.problem;
  const rows = spotRows(inv);
  const ref = referenceRows(inv, rows);
  const out = toFloat32(inv.out, p.dtype);
  const [sb, sh, ss] = inv.strides.out;
  const tolerance = TOLERANCE[p.dtype];
  rows.forEach(({ b, h, i }, n) => {
    const want = ref.out.subarray(n * p.vHeadDim, (n + 1) * p.vHeadDim);
    let scale = 1;
    for (const x of want) if (Math.abs(x) > scale) scale = Math.abs(x);
    let err = 0;
    for (let d = 0; d < p.vHeadDim; d++) err = Math.max(err, deviation(out[b * sb + h * sh + i * ss + d], want[d], scale));
    // The LSE (natural log of the row sum) within the same tolerance, relative to max(1, |LSE|).
    if (p.returnLse) {
      const lse = ref.lse[n];
      err = Math.max(err, deviation(inv.lse[(b * p.qHeads + h) * p.qLen + i], lse, Math.max(1, Math.abs(lse))));
    }
    if (err > tolerance) {
      const kind = artifact.config.options?.subgroupMatrix ? "subgroupMatrix kernel" : "WGSL kernel";
      const way = artifact.config.options?.subgroupMatrix
        ? "subgroupMatrix kernels are correct on this driver only in the exact form flexattn generates, for reasons not understood (see @flexattn/codegen-wgsl's README); run without the subgroupMatrix option"
        : "please report it with the artifact";
      throw new FlexAttnError(
        `${kind} gave wrong results on ${deviceName}: output row (b=${b}, h=${h}, q=${i}) or its LSE is off by ${err.toExponential(2)} ` +
          `relative to the float64 reference (tolerance ${tolerance}); ${way}.`,
      );
    }
  });
}
