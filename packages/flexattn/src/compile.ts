/** compile(): mods + problem → KernelArtifact for any backend, cached by spec key. */
import { FlexAttnError, LruCache, type MaskMod, type ModGraph, type ScoreMod, traceMaskMod, traceScoreMod, checkBufferIndices, checkKnownKeys } from "@flexattn/ir";
import { type ConfigSource, defaultTuningCache, resolveConfig } from "@flexattn/autotune";
import {
  type AttentionProblem, type BackendName, type DeviceTarget, type KernelArtifact, type KernelConfig, type KernelSpec, type ResolvedProblem,
  checkBlockMaskInput, makeSpec, resolveProblem, specKey,
} from "@flexattn/template";
import { getBackend } from "./registry.js";

/** What a BlockMask contributes to compilation (structurally: @flexattn/blockmask's BlockMask). */
export interface BlockMaskLike {
  readonly blockSize: readonly [number, number];
  readonly maskGraph?: ModGraph;
}

export interface CompileMods {
  /** The mask mod (or its traced graph); defaults to blockMask.maskGraph. */
  maskMod?: MaskMod | ModGraph;
  /** The score mod (or its traced graph); none = identity. */
  scoreMod?: ScoreMod | ModGraph;
  /** Supplies the block size and, when maskMod is absent, the mask. */
  blockMask?: BlockMaskLike;
}

export interface CompileOptions {
  /** Default "js". */
  backend?: BackendName;
  /**
   * Config fields to use (blockM, blockN, numWarps, …, options); the others come from the best
   * candidate that agrees with them. Default: the config the library resolves (see `target`).
   */
  config?: Partial<KernelConfig>;
  /**
   * The device the kernel will run on, when known: its tuning-cache entries and the backend's
   * shipped tables for it apply. A DeviceTarget (for Triton, `{ signature: "NVIDIA H100 80GB HBM3" }`),
   * or a name the backend parses (CUDA: "sm_80", "sm_90a"), as the CLI's --target.
   */
  target?: DeviceTarget | string;
  /** BlockMask block size when no blockMask is given: one number or [q, kv]; default 128. */
  blockSize?: number | readonly [number, number];
}

/** A compile target as given (a name the backend parses, or a DeviceTarget), checked; undefined stays undefined. */
export function resolveTarget(target: DeviceTarget | string | undefined, backend: BackendName): DeviceTarget | undefined {
  if (target === undefined) return undefined;
  if (typeof target === "string") {
    const b = getBackend(backend);
    if (!b.target) throw new FlexAttnError(`target "${target}": the ${backend} backend names no devices (CUDA takes "sm_80" or "sm_90a")`);
    return b.target(target);
  }
  if (target === null || typeof target !== "object" || typeof target.signature !== "string") {
    throw new FlexAttnError(`target must be a device name or a DeviceTarget { signature: string, limits? }, got ${JSON.stringify(target)}`);
  }
  return target;
}

/** Keyed by the full specKey (structure, never buffer data), bounded. */
const cache = new LruCache<string, KernelArtifact>();
const stats = { generated: 0, hits: 0 };

/** How many kernels compile() generated and how many it served from its cache. */
export function compileCacheStats(): { generated: number; hits: number; size: number } {
  return { ...stats, size: cache.size };
}

export function clearCompileCache(): void {
  cache.clear();
  stats.generated = 0;
  stats.hits = 0;
}

export function toMaskGraph(m: MaskMod | ModGraph, what = "maskMod"): ModGraph {
  if (typeof m === "function") return traceMaskMod(m);
  if (m && typeof m === "object" && (m as ModGraph).kind === "mask" && Array.isArray((m as ModGraph).nodes)) return m as ModGraph;
  throw new FlexAttnError(`${what} must be a mask mod (b, h, q, kv) => boolean or its traced graph, got ${describe(m)}`);
}

export function toScoreGraph(m: ScoreMod | ModGraph, what = "scoreMod"): ModGraph {
  if (typeof m === "function") return traceScoreMod(m);
  if (m && typeof m === "object" && (m as ModGraph).kind === "score" && Array.isArray((m as ModGraph).nodes)) return m as ModGraph;
  throw new FlexAttnError(`${what} must be a score mod (score, b, h, q, kv) => number or its traced graph, got ${describe(m)}`);
}

function describe(x: unknown): string {
  if (x === null) return "null";
  if (typeof x === "object") return (x as object).constructor?.name ?? "an object";
  return typeof x;
}

export function normalizeBlockSize(bs: number | readonly [number, number] | undefined): [number, number] {
  const pair: [number, number] = bs === undefined ? [128, 128] : typeof bs === "number" ? [bs, bs] : [bs[0], bs[1]];
  if (!pair.every((x) => Number.isInteger(x) && x >= 1)) {
    throw new FlexAttnError(`blockSize must be a positive integer or a [q, kv] pair of them, got ${JSON.stringify(bs)}`);
  }
  return pair;
}

/** The mask graph of a compile: maskMod, else the BlockMask's; both given must agree. */
export function resolveMask(mods: CompileMods): ModGraph | null {
  const fromMod = mods.maskMod !== undefined ? toMaskGraph(mods.maskMod) : null;
  const fromBlock = mods.blockMask?.maskGraph ?? null;
  if (fromMod && fromBlock && fromMod.key !== fromBlock.key) {
    throw new FlexAttnError("maskMod is not the mask the blockMask was built from; pass one of them (the BlockMask carries its mask)");
  }
  return fromMod ?? fromBlock;
}

/** Generate (or fetch from the cache) the artifact of a spec on a backend. */
export function compileSpec(spec: KernelSpec, backend: BackendName): KernelArtifact {
  const b = getBackend(backend);
  const key = specKey(spec, b.name);
  const hit = cache.get(key);
  if (hit) {
    stats.hits++;
    return hit;
  }
  const artifact = b.generate(spec);
  stats.generated++;
  cache.set(key, artifact);
  return artifact;
}

/** What a kernel is resolved from: the mods, the problem, and where it runs. */
export interface KernelRequest {
  readonly backend: BackendName;
  readonly mask: ModGraph | null;
  readonly score: ModGraph | null;
  readonly problem: ResolvedProblem;
  readonly sparseBlock: readonly [number, number];
  readonly target?: DeviceTarget;
  /** The caller's config fields, if any. */
  readonly config?: Partial<KernelConfig>;
}

export interface ResolvedSpec {
  readonly spec: KernelSpec;
  /** Where its config came from: the caller, the tuning cache, a shipped table or the heuristic. */
  readonly source: ConfigSource;
}

/** The spec of a request, its config resolved once by @flexattn/autotune's resolveConfig. */
export function resolveSpec(r: KernelRequest): ResolvedSpec {
  const { config, source } = resolveConfig({
    backend: getBackend(r.backend), problem: r.problem, sparseBlock: r.sparseBlock, mods: { mask: r.mask, score: r.score },
    target: r.target, user: r.config, cache: r.target ? defaultTuningCache() : null,
  });
  return { spec: specOf(r, config), source };
}

/** The spec of a request with a complete config (no defaults are merged here). */
export function specOf(r: Omit<KernelRequest, "config" | "target">, config: KernelConfig): KernelSpec {
  const p = r.problem;
  return makeSpec({
    mask: r.mask, score: r.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype,
    returnLse: p.returnLse, sparseBlock: r.sparseBlock, config,
  });
}

/**
 * Compile mods for a problem on a backend. Only structure keys the cache: compiling again with
 * new captured data (document ids, biases…) returns the cached artifact without regenerating.
 */
export function compile(mods: CompileMods, problem: AttentionProblem, options: CompileOptions = {}): KernelArtifact {
  return compileWithSpec(mods, problem, options).artifact;
}

/** compile(), returning the resolved spec beside the artifact (for what is built around a kernel, e.g. a Python module). */
export function compileWithSpec(mods: CompileMods, problem: AttentionProblem, options: CompileOptions = {}): { spec: KernelSpec; artifact: KernelArtifact } {
  if (mods === null || typeof mods !== "object") throw new FlexAttnError("compile(mods, problem): mods must be an object { maskMod?, scoreMod?, blockMask? }");
  checkKnownKeys(mods, ["maskMod", "scoreMod", "blockMask"], "compile's mods");
  if (options === null || typeof options !== "object") throw new FlexAttnError("compile(mods, problem, options): options must be an object");
  checkKnownKeys(options, ["backend", "config", "target", "blockSize"], "compile's options");
  const backend = options.backend ?? "js";
  getBackend(backend);
  const resolved = resolveProblem(problem);
  if (mods.blockMask !== undefined) checkBlockMaskInput(mods.blockMask, "mods.blockMask", false);
  const mask = resolveMask(mods);
  const score = mods.scoreMod !== undefined ? toScoreGraph(mods.scoreMod) : null;
  const sparseBlock = mods.blockMask ? normalizeBlockSize(mods.blockMask.blockSize) : normalizeBlockSize(options.blockSize);
  // Loads that can only be out of range for this problem read 0 everywhere: refuse them.
  const p = resolved;
  const ranges = {
    b: { lo: 0, hi: p.batch - 1 }, h: { lo: 0, hi: p.qHeads - 1 },
    q: { lo: p.qOffset, hi: p.qOffset + p.qLen - 1 }, kv: { lo: p.kvOffset, hi: p.kvOffset + p.kvLen - 1 },
  };
  for (const g of [mask, score]) if (g) checkBufferIndices(g, ranges);
  const target = resolveTarget(options.target, backend);
  const { spec } = resolveSpec({ backend, mask, score, problem: resolved, sparseBlock, target, config: options.config });
  return { spec, artifact: compileSpec(spec, backend) };
}
