/** tritonBackend: KernelSpec → a standalone Python module (KernelArtifact with backend "triton"). */
import { FlexAttnError } from "@flexattn/ir";
import {
  type CodegenBackend, type KernelArtifact, type KernelSpec, artifactSpecInfo, kernelAbi, specHash,
} from "@flexattn/template";
import { ENTRY_POINT, moduleSource } from "./module.js";
import { MIN_TILE, tritonConfigCandidates, tritonOptions } from "./options.js";

/** Reject specs Triton cannot compile, with the reason. */
function checkSpec(spec: KernelSpec): void {
  const c = spec.config;
  if (c.blockM < MIN_TILE || c.blockN < MIN_TILE) {
    throw new FlexAttnError(
      `Triton tiles must be at least ${MIN_TILE}×${MIN_TILE} (tl.dot), got ${c.blockM}×${c.blockN}; ` +
        `use a BlockMask block size that is a multiple of ${MIN_TILE}`,
    );
  }
  if (c.numWarps > 16) throw new FlexAttnError(`config.numWarps must be at most 16 for Triton, got ${c.numWarps}`);
  const o = tritonOptions(c);
  if (o.allowTf32 && spec.dtype !== "f32") throw new FlexAttnError("option allowTf32 applies to f32 kernels only");
}

export function generateTriton(spec: KernelSpec): KernelArtifact {
  checkSpec(spec);
  const hash = specHash(spec, "triton");
  return {
    format: "flexattn.artifact/1",
    backend: "triton",
    source: moduleSource(spec, tritonOptions(spec.config), hash),
    entry: ENTRY_POINT,
    abi: kernelAbi(spec),
    launch: { grid: "[cdiv(q_len, blockM), q_heads, batch]", threadsPerProgram: 32 * spec.config.numWarps },
    config: spec.config,
    specHash: hash,
    spec: artifactSpecInfo(spec),
  };
}

/** The Triton backend: configCandidates lists the configs worth timing, [0] being tritonDefaultConfig's pick. */
export const tritonBackend: CodegenBackend = {
  name: "triton",
  sourceExtension: ".py",
  configCandidates: (problem, sparseBlock, mods, target) => tritonConfigCandidates(problem, sparseBlock, mods, target?.limits),
  generate: generateTriton,
};
