/** flexAttention(): PyTorch-style FlexAttention on Tensors, on the best backend available here. */
import { FlexAttnError, type ModGraph, type ScoreMod, checkBufferIndices, checkKnownKeys } from "@flexattn/ir";
import {
  type BackendName, type BlockMaskTables, type KernelConfig, type KernelInvocation, type ResolvedProblem, type StorageDType,
  type Tensor, checkBlockMask, checkBlockMaskInput, contiguousStrides, denseTables, resolveProblem,
} from "@flexattn/template";
import { type ConfigSource, type TuneProgress, defaultTuningCache, describeConfig, tune } from "@flexattn/autotune";
import { compileSpec, normalizeBlockSize, resolveSpec, specOf, toScoreGraph } from "./compile.js";
import { type KernelExecutor, executorUnavailableReason, findExecutor, getBackend, jsExecutor } from "./registry.js";

export type BackendChoice = "auto" | BackendName;

/** A BlockMask as flexAttention reads it (structurally: @flexattn/blockmask's BlockMask). */
export interface BlockMaskInput extends BlockMaskTables {
  readonly maskGraph?: ModGraph;
  readonly offsets?: { readonly b: number; readonly h: number; readonly q: number; readonly kv: number };
}

export interface FlexAttentionOptions {
  /** (score, b, h, q, kv) => score, or its traced graph. Default: identity. */
  scoreMod?: ScoreMod | ModGraph;
  /** Which blocks to compute; its maskGraph is the mask mod (as in PyTorch). Default: dense. */
  blockMask?: BlockMaskInput;
  /** Softmax scale; default 1/sqrt(headDim). */
  scale?: number;
  /** Allow fewer key/value heads than query heads (grouped-query attention). */
  enableGqa?: boolean;
  /** Also return the log-sum-exp [B, Hq, qLen] (natural log, f32; -inf for fully masked rows). */
  returnLse?: boolean;
  /** "auto" (default): WebGPU on a hardware adapter, else JS (a CPU rasterizer is slower than the JS kernel). */
  backend?: BackendChoice;
  /**
   * Config fields to use (tile sizes, backend options); the others come from the best candidate
   * that agrees with them. Default: the config the library resolves for this device (a tuning
   * result for it, else a shipped table, else the backend's heuristic).
   */
  config?: Partial<KernelConfig>;
  /**
   * Tune on this call when no tuning result exists for this device, mods and problem size: every
   * candidate config is timed on these inputs, the fastest is recorded in the tuning cache (a file
   * in the user's cache directory in Node, localStorage in a browser) and used from then on.
   * `{ force: true }` tunes again even with a result; `onProgress` sees each candidate.
   */
  tune?: boolean | TunePolicy;
}

export interface TunePolicy {
  force?: boolean;
  /** At most this many candidates (the backend's first ones); default 16. */
  maxCandidates?: number;
  /** Stop starting new candidates after this long (ms); default 60 000. */
  budgetMs?: number;
  onProgress?(p: TuneProgress): void;
}

export interface FlexAttentionResult {
  /** [B, Hq, qLen, Dv], contiguous, in the inputs' dtype. */
  out: Tensor;
  /** [B, Hq, qLen], f32. */
  lse: Tensor;
}

const DTYPE_ARRAY: Record<StorageDType, string> = { f32: "Float32Array", f16: "Uint16Array", bf16: "Uint16Array" };

export function checkTensor(name: string, t: unknown): Tensor {
  if (ArrayBuffer.isView(t)) {
    throw new FlexAttnError(`${name} is a bare ${t.constructor.name}; wrap it with tensor(data, [batch, heads, seqLen, headDim])`);
  }
  const x = t as Tensor;
  if (!x || typeof x !== "object" || !ArrayBuffer.isView(x.data) || !Array.isArray(x.shape)) {
    throw new FlexAttnError(`${name} must be a Tensor { data, shape, dtype, strides? }; build one with tensor(data, shape)`);
  }
  if (x.dtype !== "f32" && x.dtype !== "f16" && x.dtype !== "bf16") {
    throw new FlexAttnError(`${name}.dtype must be f32, f16 or bf16, got ${String(x.dtype)}`);
  }
  if (x.data.constructor.name !== DTYPE_ARRAY[x.dtype]) {
    throw new FlexAttnError(`${name} has dtype ${x.dtype} but its data is a ${x.data.constructor.name} (needs a ${DTYPE_ARRAY[x.dtype]})`);
  }
  if (x.shape.length !== 4) {
    throw new FlexAttnError(`${name} must be 4-D [batch, heads, seqLen, headDim], got shape [${x.shape.join(", ")}]`);
  }
  if (!x.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new FlexAttnError(`${name} has a bad shape [${x.shape.join(", ")}]`);
  const strides = x.strides ?? contiguousStrides(x.shape);
  if (strides.length !== 4 || !strides.every((s) => Number.isInteger(s) && s >= 0)) {
    throw new FlexAttnError(`${name} strides must be 4 non-negative integers, got [${strides.join(", ")}]`);
  }
  const empty = x.shape.some((d) => d === 0);
  if (!empty && x.shape[3] > 1 && strides[3] !== 1) {
    throw new FlexAttnError(
      `${name} has head-dim stride ${strides[3]}; the head dimension must be contiguous (stride 1) — copy it to a contiguous tensor first`,
    );
  }
  const span = empty ? 0 : x.shape.reduce((acc, d, i) => acc + (d - 1) * strides[i], 1);
  if (span > x.data.length) {
    throw new FlexAttnError(`${name} with shape [${x.shape.join(", ")}] and strides [${strides.join(", ")}] needs ${span} elements, its data has ${x.data.length}`);
  }
  return { data: x.data, shape: x.shape, dtype: x.dtype, strides: [...strides.slice(0, 3), 1] };
}

function allocOut(n: number, dtype: StorageDType): Float32Array | Uint16Array {
  return dtype === "f32" ? new Float32Array(n) : new Uint16Array(n);
}

let autoExecutor: Promise<KernelExecutor> | undefined;
/** Why "auto" resolved to the JS kernel, when it did. */
let autoReason: string | undefined;

/** CPU rasterizers (Mesa llvmpipe/lavapipe, SwiftShader) run WGSL slower than the JS kernel. */
export function isSoftwareAdapter(description: string): boolean {
  return /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(description);
}

/**
 * The executor "auto" resolves to here: WGSL when a hardware WebGPU adapter works, else JS.
 * A software adapter is skipped: there the in-process JS kernel is faster.
 */
export function autoBackend(): Promise<KernelExecutor> {
  autoExecutor ??= findExecutor("wgsl").then((ex) => {
    if (ex && !isSoftwareAdapter(ex.device)) return ex;
    autoReason = ex
      ? `the WebGPU adapter is a CPU rasterizer (${ex.device}), slower than the JS kernel; pass backend: "wgsl" to use it anyway`
      : `WebGPU is not available (${executorUnavailableReason("wgsl") ?? "no executor"})`;
    return jsExecutor;
  });
  return autoExecutor;
}

/** Forget the "auto" decision (after registering an executor, say). */
export function resetAutoBackend(): void {
  autoExecutor = undefined;
  autoReason = undefined;
}

async function executorFor(choice: BackendChoice): Promise<KernelExecutor> {
  if (choice === "auto") return autoBackend();
  if (choice === "js") return jsExecutor;
  if (choice === "cuda" || choice === "triton") {
    throw new FlexAttnError(
      `backend "${choice}" generates code only and cannot run inside flexAttention(); ` +
        `use compile(mods, problem, { backend: "${choice}" }) (or \`flexattn compile --backend ${choice}\`) and run the kernel with ${choice === "cuda" ? "nvcc/NVRTC" : "PyTorch + Triton"}`,
    );
  }
  if (choice === "wgsl") {
    const ex = await findExecutor("wgsl");
    if (!ex) throw wgslUnavailable();
    return ex;
  }
  throw new FlexAttnError(`unknown backend "${String(choice)}"; use "auto", "js", "wgsl", "cuda" or "triton"`);
}

/** The error for backend "wgsl" where no WebGPU executor can run, with the reason. */
export function wgslUnavailable(): FlexAttnError {
  const reason = (executorUnavailableReason("wgsl") ?? "no executor").replace(/\.$/, "");
  return new FlexAttnError(`backend "wgsl" is not available here: ${reason}; use backend "js" or "auto"`);
}

/** Everything flexAttention checks before it runs anything. */
export interface PreparedCall {
  problem: ResolvedProblem;
  invocation: KernelInvocation;
  mask: ModGraph | null;
  score: ModGraph | null;
  sparseBlock: [number, number];
  empty: boolean;
}

/** The keys of FlexAttentionOptions and TunePolicy: any other is a misspelling and refused. */
export const FLEX_ATTENTION_OPTIONS = ["scoreMod", "blockMask", "scale", "enableGqa", "returnLse", "backend", "config", "tune"] as const;
const TUNE_POLICY_KEYS = ["force", "maxCandidates", "budgetMs", "onProgress"];

export function prepareCall(qIn: Tensor, kIn: Tensor, vIn: Tensor, options: FlexAttentionOptions = {}): PreparedCall {
  if (options === null || typeof options !== "object") throw new FlexAttnError("flexAttention options must be an object");
  checkKnownKeys(options, FLEX_ATTENTION_OPTIONS, "flexAttention options");
  const tunePolicy = options.tune;
  if (tunePolicy !== undefined && typeof tunePolicy !== "boolean") {
    if (tunePolicy === null || typeof tunePolicy !== "object") throw new FlexAttnError(`tune must be true, false or a policy object { force?, maxCandidates?, budgetMs?, onProgress? }, got ${JSON.stringify(tunePolicy)}`);
    checkKnownKeys(tunePolicy, TUNE_POLICY_KEYS, "the tune policy");
    const { maxCandidates, budgetMs } = tunePolicy;
    if (maxCandidates !== undefined && !(Number.isInteger(maxCandidates) && maxCandidates >= 1)) throw new FlexAttnError(`tune.maxCandidates must be a positive integer, got ${maxCandidates}`);
    if (budgetMs !== undefined && !(typeof budgetMs === "number" && budgetMs > 0)) throw new FlexAttnError(`tune.budgetMs must be a positive number, got ${budgetMs}`);
  }
  const q = checkTensor("q", qIn);
  const k = checkTensor("k", kIn);
  const v = checkTensor("v", vIn);
  if (k.dtype !== q.dtype || v.dtype !== q.dtype) {
    throw new FlexAttnError(`q, k and v must share a dtype, got q ${q.dtype}, k ${k.dtype}, v ${v.dtype}`);
  }
  const [B, Hq, qLen, D] = q.shape;
  const [Bk, Hkv, kvLen, Dk] = k.shape;
  const [Bv, Hv, kvLenV, Dv] = v.shape;
  if (Bk !== B || Bv !== B) throw new FlexAttnError(`batch sizes differ: q ${B}, k ${Bk}, v ${Bv}`);
  if (Hv !== Hkv) throw new FlexAttnError(`k and v must have the same number of heads, got k ${Hkv}, v ${Hv}`);
  if (kvLenV !== kvLen) throw new FlexAttnError(`k and v must have the same sequence length, got k ${kvLen}, v ${kvLenV}`);
  if (Dk !== D) throw new FlexAttnError(`q and k must have the same head dim, got q ${D}, k ${Dk}`);
  if (Hq !== Hkv) {
    if (!options.enableGqa) {
      throw new FlexAttnError(`q has ${Hq} heads but k/v have ${Hkv}; pass enableGqa: true for grouped-query attention`);
    }
    if (Hkv === 0 || Hq % Hkv !== 0) {
      throw new FlexAttnError(`grouped-query attention needs the q head count (${Hq}) to be a multiple of the k/v head count (${Hkv})`);
    }
  }
  if (options.scale !== undefined && (typeof options.scale !== "number" || !Number.isFinite(options.scale))) {
    throw new FlexAttnError(`scale must be a finite number, got ${String(options.scale)}`);
  }
  const score = options.scoreMod !== undefined ? toScoreGraph(options.scoreMod) : null;
  const bm = options.blockMask;
  if (bm !== undefined) checkBlockMaskInput(bm);
  const offsets = bm?.offsets ?? { b: 0, h: 0, q: 0, kv: 0 };
  if (offsets.b !== 0 || offsets.h !== 0) {
    throw new FlexAttnError("this BlockMask was sliced to one batch or head (offsets b/h); flexAttention supports query-row slices only — pass the full BlockMask");
  }
  const mask = bm?.maskGraph ?? null;
  const sparseBlock = bm ? normalizeBlockSize(bm.blockSize) : normalizeBlockSize(undefined);
  const returnLse = options.returnLse ?? false;
  const empty = B === 0 || Hq === 0 || qLen === 0 || kvLen === 0;
  // Empty tensors: the problem is still validated where it can be (head dims, dtype).
  const problem = resolveProblem({
    batch: Math.max(B, 1), qHeads: Math.max(Hq, 1), kvHeads: Math.max(Hkv, 1), qLen: Math.max(qLen, 1), kvLen: Math.max(kvLen, 1),
    qkHeadDim: D, vHeadDim: Dv, dtype: q.dtype, scale: options.scale, returnLse, qOffset: offsets.q, kvOffset: offsets.kv,
  });
  const real: ResolvedProblem = { ...problem, batch: B, qHeads: Hq, kvHeads: Hkv, qLen, kvLen };
  const tables: BlockMaskTables = bm ?? denseTables(Math.max(qLen, 1), Math.max(kvLen, 1), sparseBlock);
  if (bm && !empty) checkBlockMask(bm, real);
  if (score && !empty) {
    // A score-mod buffer index that can only ever be out of range reads 0 everywhere: refuse it.
    checkBufferIndices(score, {
      b: { lo: 0, hi: B - 1 }, h: { lo: 0, hi: Hq - 1 },
      q: { lo: real.qOffset, hi: real.qOffset + qLen - 1 }, kv: { lo: real.kvOffset, hi: real.kvOffset + kvLen - 1 },
    });
  }
  const outShape = [B, Hq, qLen, Dv];
  const invocation: KernelInvocation = {
    problem: real,
    strides: { q: q.strides!, k: k.strides!, v: v.strides!, out: contiguousStrides(outShape) },
    q, k, v, mask, score, blockMask: tables,
    out: allocOut(B * Hq * qLen * Dv, q.dtype),
    lse: new Float32Array(B * Hq * qLen),
  };
  return { problem: real, invocation, mask, score, sparseBlock, empty };
}

/** Resolve the config for this executor (tuning first where asked), generate and run. */
async function runOn(executor: KernelExecutor, call: PreparedCall, options: FlexAttentionOptions): Promise<LastRun> {
  const request = {
    backend: executor.backend, mask: call.mask, score: call.score, problem: call.problem, sparseBlock: call.sparseBlock,
    target: executor.target(call.invocation), config: options.config,
  };
  let { spec, source } = resolveSpec(request);
  const policy: TunePolicy | undefined = options.tune === true ? {} : options.tune || undefined;
  if (policy && source !== "user" && (source !== "tuned" || policy.force)) {
    const tuned = await tune({
      backend: getBackend(executor.backend), problem: call.problem, sparseBlock: call.sparseBlock, mods: { mask: call.mask, score: call.score },
      target: request.target, cache: defaultTuningCache(), maxCandidates: policy.maxCandidates, budgetMs: policy.budgetMs,
      onProgress: policy.onProgress,
      measure: (config) => executor.measure(compileSpec(specOf(request, config), executor.backend), call.invocation),
    });
    spec = specOf(request, tuned.best);
    source = "tuned";
  }
  await executor.run(compileSpec(spec, executor.backend), call.invocation);
  return { backend: executor.backend, device: executor.device, fellBack: undefined, config: spec.config, configSource: source };
}

/** Which backend the last flexAttention call ran on, with which config, and why it fell back, if it did. */
export interface LastRun {
  backend: BackendName | "none";
  device: string;
  fellBack: string | undefined;
  config?: KernelConfig;
  configSource?: ConfigSource;
}
let lastRun: LastRun | undefined;
export function lastFlexAttentionRun(): LastRun | undefined {
  return lastRun;
}

/** One line about a run, for logs: "wgsl on WebGPU: … with 128x32 w8 s1 … (tuned)". */
export function describeRun(r: LastRun): string {
  const config = r.config ? ` with ${describeConfig(r.config)} (${r.configSource})` : "";
  return `${r.backend} on ${r.device}${config}${r.fellBack ? `; fell back: ${r.fellBack}` : ""}`;
}

const reported = new Set<string>();
/**
 * What a forward computed with, by its LSE array: flexAttentionBackward checks that its options
 * describe the same attention (gradients of another one would be silently wrong). Weak: an LSE the
 * caller drops takes its entry with it.
 */
const forwardOfLse = new WeakMap<Float32Array, ForwardFingerprint>();

/** The parts of a call its gradients depend on, each comparable as a string. */
export interface ForwardFingerprint {
  readonly maskMod: string;
  readonly scoreMod: string;
  readonly scale: string;
  readonly offsets: string;
  readonly blockMask: string;
}

export function forwardFingerprint(call: PreparedCall): ForwardFingerprint {
  const p = call.problem;
  const t = call.invocation.blockMask;
  let listed = 0;
  for (const n of [t.kvNumBlocks, t.fullKvNumBlocks]) if (n) for (const x of n) listed += x;
  return {
    maskMod: call.mask?.structure ?? "none",
    scoreMod: call.score?.structure ?? "none",
    scale: String(p.scale),
    offsets: `${p.qOffset},${p.kvOffset}`,
    blockMask: `${call.sparseBlock.join("x")} with ${listed} listed blocks`,
  };
}

/** The forward fingerprint recorded for this LSE, if flexAttention produced it. */
export function forwardOf(lse: Tensor): ForwardFingerprint | undefined {
  return lse.data instanceof Float32Array ? forwardOfLse.get(lse.data) : undefined;
}

/** "auto" never falls back silently: each distinct reason is printed once per process. */
export function reportFallback(reason: string): void {
  if (reported.has(reason)) return;
  reported.add(reason);
  console.warn(`flexattn: backend "auto" runs the JS kernel: ${reason}`);
}

/**
 * Attention with a score mod and a block mask, like PyTorch's flex_attention.
 *
 * Empty inputs: batch, heads or qLen of 0 give an empty output; kvLen 0 (nothing to attend to)
 * gives zeros and an LSE of -inf, as for fully masked rows.
 */
export function flexAttention(q: Tensor, k: Tensor, v: Tensor, options: FlexAttentionOptions & { returnLse: true }): Promise<FlexAttentionResult>;
export function flexAttention(q: Tensor, k: Tensor, v: Tensor, options?: FlexAttentionOptions): Promise<Tensor>;
export async function flexAttention(q: Tensor, k: Tensor, v: Tensor, options: FlexAttentionOptions = {}): Promise<Tensor | FlexAttentionResult> {
  const call = prepareCall(q, k, v, options);
  const inv = call.invocation;
  const p = call.problem;
  if (call.empty) {
    inv.lse.fill(-Infinity);
    lastRun = { backend: "none", device: "(empty input)", fellBack: undefined };
  } else {
    const choice = options.backend ?? "auto";
    const executor = await executorFor(choice);
    try {
      lastRun = await runOn(executor, call, options);
      if (choice === "auto" && executor === jsExecutor && autoReason) {
        lastRun.fellBack = autoReason;
        reportFallback(autoReason);
      }
    } catch (e) {
      // "auto" never fails for want of a GPU: a WebGPU error falls back to the JS kernel.
      if (choice !== "auto" || executor === jsExecutor) throw e;
      const reason = `${executor.backend} failed: ${e instanceof Error ? e.message : String(e)}`;
      lastRun = { ...(await runOn(jsExecutor, call, options)), fellBack: reason };
      reportFallback(reason);
    }
  }
  const out: Tensor = { data: inv.out, shape: [p.batch, p.qHeads, p.qLen, p.vHeadDim], dtype: p.dtype, strides: contiguousStrides([p.batch, p.qHeads, p.qLen, p.vHeadDim]) };
  if (!options.returnLse) return out;
  forwardOfLse.set(inv.lse, forwardFingerprint(call));
  return { out, lse: { data: inv.lse, shape: [p.batch, p.qHeads, p.qLen], dtype: "f32", strides: contiguousStrides([p.batch, p.qHeads, p.qLen]) } };
}
