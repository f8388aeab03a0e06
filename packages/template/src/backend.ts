/** What every code generator exports, so the API and the CLI treat backends alike. */
import type { KernelArtifact, BackendName } from "./artifact.js";
import type { BlockMaskTables } from "./blockmask-tables.js";
import type { KernelConfig } from "./config.js";
import type { ProblemStrides, ResolvedProblem } from "./problem.js";
import type { KernelSpec } from "./spec.js";
import type { Tensor } from "./tensor.js";
import type { ModGraph } from "@flexattn/ir";

export interface CodegenBackend {
  readonly name: BackendName;
  /** File extension of the generated source: ".js", ".wgsl", ".py", ".cu". */
  readonly sourceExtension: string;
  /**
   * A good default config for a problem (the autotuner may pick another). The mods, when given,
   * let a backend pick by what the kernel computes (a transcendental score mod, a data-dependent mask).
   */
  defaultConfig(problem: ResolvedProblem, sparseBlock: readonly [number, number], mods?: ModMix): KernelConfig;
  /** Generate the kernel; throws FlexAttnError for a spec this backend cannot serve. */
  generate(spec: KernelSpec): KernelArtifact;
}

/** The mods of a kernel, as a backend's default-config heuristics see them. */
export interface ModMix {
  readonly mask: ModGraph | null;
  readonly score: ModGraph | null;
}

/**
 * One execution of a kernel: inputs, the block mask, the mods (their captured buffers carry
 * the data) and output buffers in the problem's dtype and layout.
 */
export interface KernelInvocation {
  readonly problem: ResolvedProblem;
  readonly strides: ProblemStrides;
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly mask: ModGraph | null;
  readonly score: ModGraph | null;
  readonly blockMask: BlockMaskTables;
  /** [B, Hq, qLen, Dv] with `strides.out`, in the problem's dtype. */
  readonly out: Float32Array | Uint16Array;
  /** [B, Hq, qLen] contiguous; written when problem.returnLse. */
  readonly lse: Float32Array;
}
