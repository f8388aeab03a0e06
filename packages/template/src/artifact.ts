/** KernelArtifact: a generated kernel, JSON-serializable so it can be cached and shipped. */
import type { AbiArg } from "./abi.js";
import type { KernelConfig } from "./config.js";
import type { StorageDType } from "./tensor.js";

export type BackendName = "js" | "wgsl" | "cuda" | "triton";

export interface KernelArtifact {
  readonly format: "flexattn.artifact/1";
  readonly backend: BackendName;
  /** The generated source (JS module body, WGSL shader, CUDA C++, or Python module). */
  readonly source: string;
  /** Entry point name in the source. */
  readonly entry: string;
  readonly abi: readonly AbiArg[];
  /** Launch description: grid formula and per-program threads. */
  readonly launch: {
    readonly grid: "[cdiv(q_len, blockM), q_heads, batch]";
    readonly threadsPerProgram: number;
    readonly sharedMemoryBytes?: number;
  };
  readonly config: KernelConfig;
  readonly specHash: string;
  /** Compile-time facts a loader checks before running. */
  readonly spec: {
    readonly qkHeadDim: number;
    readonly vHeadDim: number;
    readonly dtype: StorageDType;
    readonly returnLse: boolean;
    readonly sparseBlock: readonly [number, number];
    readonly maskKey: string | null;
    readonly scoreKey: string | null;
    readonly buffers: readonly { name: string; dtype: "i32" | "f32"; shape: readonly number[] }[];
  };
}

export function artifactToJSON(a: KernelArtifact): string {
  return JSON.stringify(a, null, 2);
}

export function artifactFromJSON(text: string): KernelArtifact {
  const a = JSON.parse(text) as KernelArtifact;
  if (a?.format !== "flexattn.artifact/1") throw new Error("not a flexattn kernel artifact (format flexattn.artifact/1)");
  return a;
}

import type { KernelSpec } from "./spec.js";

/** The compile-time facts of a spec, as recorded in an artifact. */
export function artifactSpecInfo(spec: KernelSpec): KernelArtifact["spec"] {
  const buffers = [spec.mask, spec.score].flatMap((g) => g?.buffers.map((b) => ({ name: b.name, dtype: b.dtype, shape: [...b.shape] })) ?? []);
  return {
    qkHeadDim: spec.qkHeadDim,
    vHeadDim: spec.vHeadDim,
    dtype: spec.dtype,
    returnLse: spec.returnLse,
    sparseBlock: spec.sparseBlock,
    maskKey: spec.mask?.key ?? null,
    scoreKey: spec.score?.key ?? null,
    buffers,
  };
}
