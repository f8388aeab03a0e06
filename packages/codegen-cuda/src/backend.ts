/** cudaBackend: KernelSpec → a standalone .cu (KernelArtifact with backend "cuda"). */
import {
  type CodegenBackend, type KernelArtifact, type KernelSpec, artifactSpecInfo, kernelAbi, specHash,
} from "@flexattn/template";
import { type CudaArch, checkCudaConfig, cudaBlockThreads, cudaConfigCandidates, cudaSharedBytes, cudaTarget } from "./options.js";
import { cudaPythonModule } from "./module.js";
import { CUDA_ENTRY, cudaSource } from "./source.js";

export function generateCuda(spec: KernelSpec): KernelArtifact {
  const options = checkCudaConfig(spec);
  const hash = specHash(spec, "cuda");
  return {
    format: "flexattn.artifact/1",
    backend: "cuda",
    source: cudaSource(spec, options, hash),
    entry: CUDA_ENTRY,
    abi: kernelAbi(spec),
    launch: { grid: "[cdiv(q_len, blockM), q_heads, batch]", threadsPerProgram: cudaBlockThreads(spec), sharedMemoryBytes: cudaSharedBytes(spec) },
    config: spec.config,
    specHash: hash,
    spec: artifactSpecInfo(spec),
  };
}

export const cudaBackend: CodegenBackend = {
  name: "cuda",
  sourceExtension: ".cu",
  configCandidates: cudaConfigCandidates,
  generate: generateCuda,
  companions: (spec, artifact) => ({ "_cuda.py": cudaPythonModule(spec, artifact) }),
  // cudaTarget refuses any other name than sm_80 and sm_90a.
  target: (name) => cudaTarget(name as CudaArch),
};
