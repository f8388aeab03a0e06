/** The JS backend as a CodegenBackend. */
import { type CodegenBackend, DEFAULT_CONFIG, type KernelConfig, fitTile } from "@flexattn/template";
import { generateJs } from "./generate.js";

/** Tile sides to try, the heuristic's first: 64 keeps a tile's rows and keys in L1 on typical CPUs. */
const TILES = [64, 32, 128, 16];

/** Every tile shape that divides the BlockMask block, 64×64 (or the nearest fit) first. */
export function jsConfigCandidates(sparseBlock: readonly [number, number]): KernelConfig[] {
  const seen = new Set<string>();
  const out: KernelConfig[] = [];
  for (const m of TILES) {
    for (const n of TILES) {
      const config: KernelConfig = { ...DEFAULT_CONFIG, blockM: fitTile(m, sparseBlock[0]), blockN: fitTile(n, sparseBlock[1]), numWarps: 1, numStages: 1 };
      const key = `${config.blockM}x${config.blockN}`;
      if (!seen.has(key)) {
        seen.add(key);
        out.push(config);
      }
    }
  }
  return out;
}

export const jsBackend: CodegenBackend = {
  name: "js",
  sourceExtension: ".js",
  configCandidates: (_problem, sparseBlock) => jsConfigCandidates(sparseBlock),
  generate: generateJs,
};
