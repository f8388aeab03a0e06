/**
 * Spot checks of kernel outputs against the float64 reference. subgroupMatrix kernels are checked
 * on their first run on each device: they rest on an experimental WebGPU extension, and on
 * NVIDIA's Vulkan driver a workgroup layout rule nobody documents made them wrong until the
 * generator followed it (apps/bench/results/wgsl-h200.md), so another driver or a Dawn update
 * could break them without notice.
 */
import { FlexAttnError } from "@flexattn/ir";
import { DEFAULT_TOLERANCE, type KernelArtifact, type KernelInvocation, type QueryRow, compareEachRow } from "@flexattn/template";

/** "auto": subgroupMatrix kernels, once per device and kernel; "always": every run; "never". */
export type VerifyMode = "auto" | "always" | "never";

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
 * Compare a few output rows and their LSE (already read back into the invocation) with the
 * float64 reference, each row on its own scale, within the conformance suite's tolerances; throw a
 * FlexAttnError that names the row, the error and the way out when one is off.
 */
export function checkRows(inv: KernelInvocation, artifact: KernelArtifact, deviceName: string): void {
  const rows = spotRows(inv);
  const tol = DEFAULT_TOLERANCE[inv.problem.dtype];
  compareEachRow(inv, rows).forEach((e, n) => {
    const row = rows[n];
    if (e.badElements === 0 && e.outError <= tol.out && e.lseError <= tol.lse) return;
    const err = e.badElements ? Infinity : Math.max(e.outError, e.lseError);
    const matrix = artifact.config.options?.subgroupMatrix === true;
    const way = matrix
      ? "subgroupMatrix kernels rest on an experimental extension whose driver paths have broken them before (see @flexattn/codegen-wgsl's README); run the plain kernel with the config option subgroupMatrix: false"
      : "please report it with the artifact";
    throw new FlexAttnError(
      `${matrix ? "subgroupMatrix kernel" : "WGSL kernel"} gave wrong results on ${deviceName}: output row (b=${row.b}, h=${row.h}, q=${row.i}) ` +
        `or its LSE is off by ${err.toExponential(2)} relative to the float64 reference (tolerance ${tol.out})` +
        `${e.badElements ? ` (${e.firstBad})` : ""}; ${way}.`,
    );
  });
}
