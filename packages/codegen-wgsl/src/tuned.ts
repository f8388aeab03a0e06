/**
 * Shipped WGSL configs per adapter vendor: shapes measured best on real GPUs (Dawn/Vulkan, f32),
 * in order of preference. Resolution takes the first entry that fits the problem's head dims and
 * is a valid candidate under the device's limits, after the caller's config and the tuning cache
 * and before the heuristic.
 *
 * NVIDIA (tuned/nvidia.json; apps/bench/results/wgsl-h200.md and wgsl-h100-public.md): where the
 * device has f16 subgroup matrices, the matrix kernel is 1.25–1.38× the plain kernels at d=64 and
 * 1.34–2.07× at d=128 on every protocol variant. V staged in K's place adds 2–5%; loading the next
 * tile's K and V a tile ahead adds 7–16% at d=64 (−6% to +3% at d=128); with S rows padded against
 * bank conflicts, 32-key tiles are the fastest at d=64. Without subgroup matrices, the plain
 * kernel's 128×32 tiles with subgroup reductions lead; at d=128 512 invocations timed the same from
 * one pipeline compile to the next, where 256-invocation shapes varied several-fold.
 */
import type { KernelConfig, ResolvedProblem } from "@flexattn/template";
import nvidia from "./tuned/nvidia.json";

export const WGSL_SHIPPED_FORMAT = "flexattn.wgsl-shipped/1";

/** A config shape: the fields and options a candidate must agree with to be this entry. */
export interface WgslShippedShape {
  /** The entry applies to problems whose widest head dim is at most this. */
  maxHeadDim: number;
  blockM: number;
  blockN: number;
  options: Readonly<Record<string, number | boolean>>;
}

export interface WgslShippedTable {
  format: typeof WGSL_SHIPPED_FORMAT;
  /** GPUAdapterInfo.vendor, lower case (e.g. "nvidia"). */
  vendor: string;
  entries: WgslShippedShape[];
}

export const WGSL_SHIPPED_TABLES = [nvidia] as unknown as readonly WgslShippedTable[];

const agrees = (c: KernelConfig, s: WgslShippedShape) =>
  c.blockM === s.blockM && c.blockN === s.blockN && Object.entries(s.options).every(([k, v]) => c.options?.[k] === v);

/** The vendor table's first shape for this problem that is one of the valid candidates, as that candidate. */
export function shippedWgslConfig(
  candidates: readonly KernelConfig[], problem: ResolvedProblem, vendor: string, tables: readonly WgslShippedTable[] = WGSL_SHIPPED_TABLES,
): KernelConfig | undefined {
  const table = tables.find((t) => t.vendor === vendor.toLowerCase());
  const widest = Math.max(problem.qkHeadDim, problem.vHeadDim);
  for (const shape of table?.entries ?? []) {
    if (widest > shape.maxHeadDim) continue;
    const found = candidates.find((c) => agrees(c, shape));
    if (found) return found;
  }
  return undefined;
}
