export { cudaBackend, generateCuda, cudaSharedBytes, CUDA_ENTRY } from "./generate.js";
export { cudaRenderer, CUDA_MOD_PRELUDE } from "./renderer.js";
export { CudaEmitter } from "./emitter.js";
