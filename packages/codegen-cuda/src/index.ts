export { cudaBackend, generateCuda } from "./backend.js";
export { CUDA_ENTRY, CUDA_LAUNCHER, cudaSource } from "./source.js";
export { cudaRenderer, CUDA_MOD_PRELUDE } from "./renderer.js";
export { CudaMmaEmitter } from "./emitter.js";
export { CudaSimtEmitter } from "./simt-emitter.js";
export {
  type CudaKernelKind, type CudaOptions, cudaOptions, cudaConfigCandidates, cudaSharedBytes, checkCudaConfig,
  SM80_SHARED_LIMIT,
} from "./options.js";
export { cudaPythonModule } from "./module.js";
