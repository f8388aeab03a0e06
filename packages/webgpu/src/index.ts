export { requestFlexDevice, defaultFlexDevice, wrapDevice, isWebGpuAvailable, DAWN_SUBGROUP_MATRIX_OPTIONS } from "./device.js";
export type { FlexDevice, FlexDeviceOptions, DawnBackend } from "./device.js";
export { runWgsl, prepareWgsl, artifactFor, resolveDevice, vec4Compatible, deviceOutStrides, wgslTarget } from "./runner.js";
export type { RunWgslOptions, PreparedWgsl } from "./runner.js";
export { timeWgsl } from "./timing.js";
export type { TimingOptions, TimingResult } from "./timing.js";
export { checkRows, needsCheck, spotRows } from "./verify.js";
export type { VerifyMode } from "./verify.js";
