export { jsBackend, jsConfigCandidates } from "./backend.js";
export { generateJs, generateJsSource, kernelParams, jsOptions, JS_ENTRY } from "./generate.js";
export { loadJsKernel, runJsKernel, jsKernelArgs, loadedJsKernels } from "./runtime.js";
export type { JsKernelFn } from "./runtime.js";
export { JsEmitter, DEFAULT_JS_OPTIONS } from "./emitter.js";
export type { JsCode, JsEmitterOptions } from "./emitter.js";
export { renderLeveled } from "./mods.js";
export type { LeveledMod, Level } from "./mods.js";
