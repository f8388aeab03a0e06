/**
 * The WGSL backward: its geometry (from a config), its config candidates (the backend's search
 * space for the backward, offered by wgslBackend.configCandidates when the target says
 * `pass: "backward"`) and the generated artifact (one shader module, four passes).
 */
import { FlexAttnError } from "@flexattn/ir";
import {
  type AbiArg, type BackwardMods, type KernelArtifact, type KernelConfig, type KernelSpec, type ResolvedProblem,
  artifactSpecInfo, backwardAbi, backwardMods, emitBackward, specHash,
} from "@flexattn/template";
import { type BackwardBindingName, gradBufferOffsets } from "./backward-abi.js";
import {
  PREPROCESS_WORKGROUP, REDUCE_WORKGROUP, WgslBackwardEmitter, type WgslBackwardGeometry, gradMaskWords, gradOwners, tileWide,
} from "./backward-emitter.js";
import type { WgslLimits } from "./backend.js";

/** A config is a backward config when its options say so (forward configs never match). */
export const BACKWARD_OPTION = "backward";
const BACKWARD_OPTIONS = new Set([BACKWARD_OPTION, "workgroupSize"]);

const isPow2 = (x: number) => Number.isInteger(x) && x > 0 && (x & (x - 1)) === 0;

/** The load sites of the captured f32 buffers that receive a gradient, and how many of them the owners walk. */
function siteCounts(mods: BackwardMods): { sites: number; walked: number } {
  const sites = mods.gradBuffers.flatMap((gb) => mods.gradient!.buffers.find((b) => b.slot === gb.slot)!.sites);
  return { sites: sites.length, walked: sites.filter((x) => !tileWide(x.offset)).length };
}

/**
 * Workgroup memory of a backward tile: Q, dO, K, V tiles (vec4), LSE and delta rows, P and dS,
 * buffer-gradient contribution values (every site), and for the walked sites their entries and the
 * owners' bitmasks.
 */
function sharedBytes(BM: number, BN: number, D4: number, DV4: number, { sites, walked }: { sites: number; walked: number }, T: number): number {
  const E = BM * BN;
  return 16 * (BM * (D4 + DV4) + BN * (D4 + DV4)) + 4 * (2 * BM + 2 * E) + 4 * sites * E + 4 * walked * E + 4 * gradOwners(T) * gradMaskWords(walked, E);
}

export function wgslBackwardGeometry(spec: Pick<KernelSpec, "qkHeadDim" | "vHeadDim" | "dtype" | "config" | "sparseBlock">, mods: BackwardMods): WgslBackwardGeometry {
  const c = spec.config;
  if (c.options?.[BACKWARD_OPTION] !== true) {
    throw new FlexAttnError(`WGSL backward: config ${JSON.stringify(c)} is not a backward config (options.${BACKWARD_OPTION}: true); take one from wgslBackwardConfigCandidates`);
  }
  // The backward is one scalar f32 kernel: the forward's options (subgroupMatrix, vec4, …) have no meaning here.
  const unknown = Object.keys(c.options ?? {}).filter((k) => !BACKWARD_OPTIONS.has(k));
  if (unknown.length) {
    throw new FlexAttnError(`WGSL backward: option${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} not supported (the backward is scalar f32; its options are ${[...BACKWARD_OPTIONS].join(", ")})`);
  }
  const T = Number(c.options?.workgroupSize ?? c.numWarps * 32);
  if (!isPow2(T)) throw new FlexAttnError(`WGSL backward: workgroupSize must be a power of two, got ${T}`);
  const [SQ, SKV] = spec.sparseBlock;
  if (SQ % c.blockM !== 0 || SKV % c.blockN !== 0) {
    throw new FlexAttnError(`WGSL backward: tile ${c.blockM}×${c.blockN} must divide the BlockMask blocks ${SQ}×${SKV}`);
  }
  const D4 = Math.ceil(spec.qkHeadDim / 4);
  const DV4 = Math.ceil(spec.vHeadDim / 4);
  const counts = siteCounts(mods);
  return {
    BM: c.blockM, BN: c.blockN, T, D: spec.qkHeadDim, DV: spec.vHeadDim, D4, DV4, SQ, SKV, sites: counts.sites, walkedSites: counts.walked,
    sharedBytes: sharedBytes(c.blockM, c.blockN, D4, DV4, counts, T),
  };
}

/**
 * Every valid backward config for a problem, best guess first. Tiles must divide the BlockMask
 * blocks and fit workgroup memory with the buffer-gradient contributions of `mods`; ranked by
 * tile area (K/V and Q reuse), then by a workgroup about one element per invocation.
 */
export function wgslBackwardConfigCandidates(problem: ResolvedProblem, sparseBlock: readonly [number, number], mods: BackwardMods, limits: WgslLimits): KernelConfig[] {
  const D4 = Math.ceil(problem.qkHeadDim / 4);
  const DV4 = Math.ceil(problem.vHeadDim / 4);
  const sites = siteCounts(mods);
  const out: { config: KernelConfig; score: number }[] = [];
  for (const blockM of [64, 32, 16, 8, 4, 2, 1]) {
    if (sparseBlock[0] % blockM !== 0) continue;
    for (const blockN of [64, 32, 16, 8, 4, 2, 1]) {
      if (sparseBlock[1] % blockN !== 0) continue;
      for (const T of [256, 128, 64, 32]) {
        if (T > limits.maxComputeInvocationsPerWorkgroup) continue;
        if (sharedBytes(blockM, blockN, D4, DV4, sites, T) > limits.maxComputeWorkgroupStorageSize) continue;
        const area = blockM * blockN;
        // Registers per invocation: the vec4 accumulators of dK and dV (dkdv) or dQ.
        const registers = Math.ceil((blockN * (D4 + DV4)) / T) + Math.ceil((blockM * D4) / T);
        if (registers > 64) continue;
        const score = Math.log2(area) - Math.abs(Math.log2(area / T)) * 0.5 - (blockM === blockN ? 0 : 0.25) - registers / 64;
        out.push({
          config: { blockM, blockN, numWarps: Math.max(1, T / 32), numStages: 1, prescaleQk: false, options: { [BACKWARD_OPTION]: true, workgroupSize: T } },
          score,
        });
      }
    }
  }
  if (!out.length) {
    throw new FlexAttnError(
      `no WGSL backward config fits head dims ${problem.qkHeadDim}/${problem.vHeadDim} with BlockMask blocks ${sparseBlock.join("×")} ` +
        `in ${limits.maxComputeWorkgroupStorageSize} bytes of workgroup memory`,
    );
  }
  return out.sort((a, b) => b.score - a.score).map((x) => x.config);
}

/** One compute pass of the backward: its entry point, the bindings it uses and its grid. */
export interface WgslBackwardPass {
  readonly name: "preprocess" | "dkdv" | "dq" | "reduce";
  readonly entry: string;
  readonly bindings: readonly BackwardBindingName[];
  readonly workgroupSize: number;
  /** The grid, as a formula over the problem (for readers; the runner computes it). */
  readonly grid: string;
}

/** A generated WGSL backward: one shader module, its passes in dispatch order. JSON-serializable. */
export interface WgslBackwardArtifact {
  readonly format: "flexattn.wgsl-backward/1";
  readonly backend: "wgsl";
  readonly source: string;
  readonly passes: readonly WgslBackwardPass[];
  readonly abi: readonly AbiArg[];
  readonly config: KernelConfig;
  readonly specHash: string;
  readonly spec: KernelArtifact["spec"];
  /** The captured f32 buffers that receive a gradient, in order, with their sizes (words). */
  readonly gradBuffers: readonly { slot: number; name: string; size: number }[];
  /** Words of one partial row (every gradient buffer). */
  readonly gradWords: number;
  readonly sharedMemoryBytes: number;
  readonly threadsPerProgram: number;
}

export function generateWgslBackward(spec: KernelSpec): WgslBackwardArtifact {
  if (!spec.returnLse) throw new FlexAttnError("WGSL backward: the spec must have returnLse (the backward reads the forward's LSE)");
  const mods = backwardMods(spec.score);
  const g = wgslBackwardGeometry(spec, mods);
  const e = new WgslBackwardEmitter(spec, mods, g);
  const codes = emitBackward(spec, e, mods);
  const hash = specHash(spec, "wgsl-backward");
  const captured = spec.mask?.buffers.length || spec.score?.buffers.length ? (["captured"] as const) : [];
  const tensorPass = (out: BackwardBindingName): BackwardBindingName[] => ["q", "k", "v", "dout", "tables", ...captured, "scratch", out, "params"];
  const passes: WgslBackwardPass[] = [
    { name: "preprocess", entry: "fa_bwd_preprocess", bindings: ["dout", "out", "scratch", "params"], workgroupSize: PREPROCESS_WORKGROUP, grid: `[cdiv(q_len, ${PREPROCESS_WORKGROUP}), q_heads, batch]` },
    { name: "dkdv", entry: "fa_bwd_dkdv", bindings: tensorPass("dkv"), workgroupSize: g.T, grid: "[cdiv(kv_len, blockN), kv_heads, batch]" },
    { name: "dq", entry: "fa_bwd_dq", bindings: tensorPass("dq"), workgroupSize: g.T, grid: "[cdiv(q_len, blockM), q_heads, batch]" },
    ...(mods.gradBuffers.length
      ? [{ name: "reduce", entry: "fa_bwd_reduce", bindings: ["scratch", "params"], workgroupSize: REDUCE_WORKGROUP, grid: `[cdiv(gradWords, ${REDUCE_WORKGROUP}), 1, 1]` } as const]
      : []),
  ];
  const source = [
    `// Generated by flexattn (WGSL backward), spec ${hash}.`,
    e.moduleScope(),
    ...codes.flatMap((c) => c.lines ?? []),
    "",
  ].join("\n");
  return {
    format: "flexattn.wgsl-backward/1",
    backend: "wgsl",
    source,
    passes,
    abi: backwardAbi(spec, mods),
    config: spec.config,
    specHash: hash,
    spec: artifactSpecInfo(spec),
    gradBuffers: mods.gradBuffers.map((b) => ({ ...b })),
    gradWords: gradBufferOffsets(mods).words,
    sharedMemoryBytes: g.sharedBytes,
    threadsPerProgram: g.T,
  };
}

/** Throw unless a backward artifact fits a device's limits. */
export function checkBackwardLimits(a: WgslBackwardArtifact, limits: WgslLimits): void {
  if (a.sharedMemoryBytes > limits.maxComputeWorkgroupStorageSize) {
    throw new FlexAttnError(
      `WGSL backward config needs ${a.sharedMemoryBytes} bytes of workgroup memory; the device allows ${limits.maxComputeWorkgroupStorageSize} (use a smaller blockM/blockN)`,
    );
  }
  if (a.threadsPerProgram > limits.maxComputeInvocationsPerWorkgroup) {
    throw new FlexAttnError(`WGSL backward config uses ${a.threadsPerProgram} invocations per workgroup; the device allows ${limits.maxComputeInvocationsPerWorkgroup}`);
  }
}
