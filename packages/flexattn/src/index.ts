/**
 * flexattn: FlexAttention for TypeScript. One import gives the tracing API (@flexattn/ir), the
 * mask and score-mod library (@flexattn/masks), BlockMasks (@flexattn/blockmask), tensors,
 * flexAttention() and compile().
 */
export * from "@flexattn/ir";
export * from "@flexattn/masks";
export * from "@flexattn/blockmask";
export {
  tensor, contiguousStrides, stridesOf, toFloat32, fromFloat32, f32ToBf16Bits, bf16BitsToF32, f32ToF16Bits, f16BitsToF32,
  resolveProblem, attentionFlops, referenceAttention, artifactToJSON, artifactFromJSON, DEFAULT_CONFIG, CONFIG_SPACE,
  randomNormal, denseTables, referenceBackward,
} from "@flexattn/template";
export type {
  Tensor, StorageDType, AttentionProblem, ResolvedProblem, Layout, KernelArtifact, KernelConfig, KernelSpec, BackendName,
  CodegenBackend, KernelInvocation, BlockMaskTables, ReferenceResult, DeviceTarget, ModMix,
} from "@flexattn/template";
export {
  resolveConfig, tune, defaultTuningCache, setTuningCache, MemoryTuningCache, FileTuningCache, describeConfig, problemBucket,
} from "@flexattn/autotune";
export type { ConfigSource, ResolvedConfig, TuningCache, TuningEntry, TuningFile, TuneResult } from "@flexattn/autotune";
export { flexAttention, prepareCall, autoBackend, resetAutoBackend, lastFlexAttentionRun, describeRun, isSoftwareAdapter } from "./attention.js";
export type { FlexAttentionOptions, FlexAttentionResult, BackendChoice, BlockMaskInput, LastRun, PreparedCall, TunePolicy } from "./attention.js";
export {
  compile, compileWithSpec, compileSpec, resolveSpec, resolveTarget, specOf, compileCacheStats, clearCompileCache, toMaskGraph, toScoreGraph, normalizeBlockSize,
} from "./compile.js";
export type { CompileMods, CompileOptions, BlockMaskLike, KernelRequest, ResolvedSpec } from "./compile.js";
export {
  registerBackend, getBackend, listBackends, registerExecutor, findExecutor, executorUnavailableReason, jsExecutor,
  setWebgpuImporter, BACKEND_NAMES,
} from "./registry.js";
export type { KernelExecutor } from "./registry.js";
export { randomTensor } from "./util.js";
export { flexAttentionBackward } from "./backward.js";
export type { FlexAttentionBackwardOptions, FlexAttentionGradients, BufferGradientOutput } from "./backward.js";
