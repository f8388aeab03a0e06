/** What every code generator exports, so the API and the CLI treat backends alike. */
import type { KernelArtifact, BackendName } from "./artifact.js";
import type { BlockMaskTables } from "./blockmask-tables.js";
import type { KernelConfig } from "./config.js";
import type { ProblemStrides, ResolvedProblem } from "./problem.js";
import type { KernelSpec } from "./spec.js";
import type { Tensor } from "./tensor.js";
import { INPUT_BIT, type ModGraph, inputDependence } from "@flexattn/ir";

export interface CodegenBackend {
  readonly name: BackendName;
  /** File extension of the generated source: ".js", ".wgsl", ".py", ".cu". */
  readonly sourceExtension: string;
  /**
   * Every config this backend can run for a problem on a target, best guess first: element [0]
   * is the backend's heuristic default, the whole list is the autotuner's search space. The mods
   * let a backend rank by what the kernel computes (a transcendental score mod, a data-dependent
   * mask); the target carries the device's limits and the runtime facts of a call.
   */
  configCandidates(problem: ResolvedProblem, sparseBlock: readonly [number, number], mods: ModMix, target?: DeviceTarget): KernelConfig[];
  /**
   * A config measured best on a known device for problems like this one (tuned tables the package
   * ships), or undefined where it has none. Ranked after a tuning-cache entry, before the heuristic.
   */
  shippedConfig?(problem: ResolvedProblem, sparseBlock: readonly [number, number], mods: ModMix, target: DeviceTarget): KernelConfig | undefined;
  /** Generate the kernel; throws FlexAttnError for a spec this backend cannot serve. */
  generate(spec: KernelSpec): KernelArtifact;
  /**
   * Files that go with the kernel when it is written out, by the suffix that follows the kernel's
   * name (the CUDA backend's PyTorch module, "_cuda.py"); `flexattn compile` writes them beside the source.
   */
  companions?(spec: KernelSpec, artifact: KernelArtifact): Readonly<Record<string, string>>;
  /**
   * How `flexattn compile --target NAME` names a device for this backend (CUDA: "sm_80",
   * "sm_90a"); a backend without it takes no --target.
   */
  target?(name: string): DeviceTarget;
}

/**
 * The device a kernel is resolved for. `signature` names it in tuning-cache keys (adapter vendor
 * and architecture, GPU name, "js"); `limits` are backend-specific (WGSL: workgroup memory,
 * invocations, subgroup matrices; per call also whether strides allow vec4 bindings).
 */
export interface DeviceTarget {
  readonly signature: string;
  readonly limits?: object;
}

/** The mods of a kernel, as a backend's default-config heuristics see them. */
export interface ModMix {
  readonly mask: ModGraph | null;
  readonly score: ModGraph | null;
}

const TRANSCENDENTAL = new Set(["exp", "exp2", "log", "log2", "tanh", "sigmoid"]);

/**
 * What makes a kernel's best tile differ from its head dim's default, for the backends'
 * heuristics: a transcendental score mod (its per-element cost lengthens the softmax phase), a
 * mask that loads a buffer (a gather per element), and a score mod that gathers a buffer per
 * element (an index that reads both q and kv: a relative-position table), which needs room the
 * deepest pipelines do not leave.
 */
export function modTraits(mods: ModMix): { transcendental: boolean; dataDependent: boolean; gathersPerElement: boolean } {
  return {
    transcendental: mods.score?.nodes.some((n) => TRANSCENDENTAL.has(n.op)) ?? false,
    dataDependent: mods.mask?.nodes.some((n) => n.op === "load") ?? false,
    gathersPerElement: mods.score ? gathersPerElement(mods.score) : false,
  };
}

const BOTH_POSITIONS = INPUT_BIT.q | INPUT_BIT.kv;

/** Whether a graph loads a buffer at an index that moves with both q and kv. */
function gathersPerElement(graph: ModGraph): boolean {
  const deps = inputDependence(graph);
  return graph.nodes.some((n, i) => n.op === "load" && (deps[i] & BOTH_POSITIONS) === BOTH_POSITIONS);
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
