/**
 * KernelSpec: everything a backend needs to generate one kernel — the compile-time part of
 * the problem, the traced mods, the BlockMask block layout and the config. Its hash keys the
 * compile cache; buffer data, lengths, batch and head counts are runtime arguments.
 */
import { FlexAttnError, type ModGraph, stableHash } from "@flexattn/ir";
import { type KernelConfig, validateConfig } from "./config.js";
import type { StorageDType } from "./tensor.js";

export interface KernelSpec {
  /** The mask mod applied on partial blocks; null means no mask (every block full). */
  readonly mask: ModGraph | null;
  /** The score mod; null means the identity. */
  readonly score: ModGraph | null;
  readonly qkHeadDim: number;
  readonly vHeadDim: number;
  readonly dtype: StorageDType;
  /** Whether the kernel writes the log-sum-exp. */
  readonly returnLse: boolean;
  /** The BlockMask's block size [q, kv]. */
  readonly sparseBlock: readonly [number, number];
  readonly config: KernelConfig;
}

export interface KernelSpecInput {
  mask: ModGraph | null;
  score: ModGraph | null;
  qkHeadDim: number;
  vHeadDim: number;
  dtype: StorageDType;
  returnLse?: boolean;
  sparseBlock?: readonly [number, number];
  config: KernelConfig;
}

export function makeSpec(input: KernelSpecInput): KernelSpec {
  if (input.mask && input.mask.kind !== "mask") throw new FlexAttnError("spec.mask must be a traced mask mod");
  if (input.score && input.score.kind !== "score") throw new FlexAttnError("spec.score must be a traced score mod");
  const sparseBlock = input.sparseBlock ?? [128, 128];
  return {
    mask: input.mask,
    score: input.score,
    qkHeadDim: input.qkHeadDim,
    vHeadDim: input.vHeadDim,
    dtype: input.dtype,
    returnLse: input.returnLse ?? false,
    sparseBlock,
    config: validateConfig(input.config, sparseBlock),
  };
}

/**
 * The canonical key of a spec for one backend: structure only (the mods' full structures, never
 * buffer data). Caches compare this string in full, so a hash collision can never return
 * another kernel.
 */
export function specKey(spec: KernelSpec, backend: string): string {
  const c = spec.config;
  const options = Object.entries(c.options ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  return JSON.stringify([
    backend, spec.mask?.structure ?? null, spec.score?.structure ?? null, spec.qkHeadDim, spec.vHeadDim, spec.dtype,
    spec.returnLse, spec.sparseBlock, c.blockM, c.blockN, c.numWarps, c.numStages, c.prescaleQk, options,
  ]);
}

/** A short stable name of a spec for one backend (artifact names, labels); caches use specKey. */
export function specHash(spec: KernelSpec, backend: string): string {
  return stableHash(specKey(spec, backend));
}

/** Captured buffers in ABI order: the mask's, then the score mod's, each in graph order. */
export function capturedBuffers(spec: KernelSpec): { owner: "mask" | "score"; slot: number; name: string; graph: ModGraph }[] {
  const out: { owner: "mask" | "score"; slot: number; name: string; graph: ModGraph }[] = [];
  for (const [owner, graph] of [["mask", spec.mask], ["score", spec.score]] as const) {
    graph?.buffers.forEach((b, slot) => {
      out.push({ owner, slot, name: `${owner}_${b.name}`, graph });
    });
  }
  return out;
}
