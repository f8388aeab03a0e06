export {
  wgslBackend, generateWgsl, wgslConfigCandidates, wgslDefaultConfig, checkLimits, DEFAULT_WGSL_LIMITS, DAWN_SUBGROUP_MATRIX_OPTIONS, WGSL_ENTRY,
} from "./backend.js";
export type { WgslLimits, WgslTargetLimits, CandidateOptions } from "./backend.js";
export { shippedWgslConfig, WGSL_SHIPPED_TABLES, WGSL_SHIPPED_FORMAT } from "./tuned.js";
export type { WgslShippedTable, WgslShippedShape } from "./tuned.js";
export { wgslGeometry, wgslOptions, DEFAULT_WGSL_OPTIONS } from "./geometry.js";
export type { WgslGeometry, WgslOptions } from "./geometry.js";
export { wgslRenderer, wgslFloat, wgslInt, WGSL_MOD_PRELUDE, WGSL_LOAD_PRELUDE, WGSL_TYPE } from "./renderer.js";
export type { WgslRendererOptions, WgslSpecials } from "./renderer.js";
export { WgslEmitter } from "./emitter.js";
export {
  BINDING, PARAM_FIELDS, PARAMS_BYTES, paramsStruct, packParams, packTables, packCaptured, capturedOffsets, wgslLaunch,
} from "./abi.js";
export type { ParamName, WgslLaunch } from "./abi.js";
export { storageFormat } from "./storage.js";
export type { StorageFormat } from "./storage.js";
export {
  generateWgslBackward, wgslBackwardConfigCandidates, wgslBackwardGeometry, checkBackwardLimits, BACKWARD_OPTION,
} from "./backward.js";
export type { WgslBackwardArtifact, WgslBackwardPass } from "./backward.js";
export type { WgslBackwardGeometry } from "./backward-emitter.js";
export {
  BACKWARD_BINDING, BACKWARD_PARAMS_BYTES, packBackwardParams, packBackwardTables, gradBufferOffsets, scratchLayout, paddedDim,
} from "./backward-abi.js";
export type { BackwardBindingName, BackwardParamName } from "./backward-abi.js";
