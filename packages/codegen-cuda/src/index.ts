export { cudaBackend, generateCuda } from "./backend.js";
export { CUDA_ENTRY, CUDA_LAUNCHER, cudaSource } from "./source.js";
export { type CudaRendererOptions, cudaRenderer, CUDA_MOD_PRELUDE } from "./renderer.js";
export { CudaMmaEmitter } from "./emitter.js";
export { CudaSimtEmitter } from "./simt-emitter.js";
export { CudaWgmmaEmitter } from "./emitter-sm90.js";
export {
  type CudaKernelKind, type CudaOptions, cudaOptions, cudaConfigCandidates, cudaConfigName, cudaSharedBytes, checkCudaConfig,
  type CudaArch, type CudaLimits, cudaArch, cudaTarget, cudaSharedLimit, SM80_SHARED_LIMIT, SM90_SHARED_LIMIT, DEFAULT_DYNAMIC_SHARED_LIMIT,
  cudaBlockThreads, cudaTmaConfigs, RESCALE_SLACK_LOG2, PRODUCER_THREADS, PRODUCER_REGISTERS, CONSUMER_REGISTERS, TMA_PRODUCER_REGISTERS, tmaConsumerRegisters, SM90_PAIRED_SHARED_LIMIT,
} from "./options.js";
export { type CudaModuleOptions, DEFAULT_MODULE_CONFIGS, cudaModuleConfigs, cudaPythonModule } from "./module.js";
export { WGMMA_PROBE, wgmmaProbeSource } from "./wgmma-probe.js";
export { POLY_EXP2 } from "./ptx.js";
