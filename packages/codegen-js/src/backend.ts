/** The JS backend as a CodegenBackend. */
import { type CodegenBackend, DEFAULT_CONFIG, type KernelConfig, fitTile } from "@flexattn/template";
import { generateJs } from "./generate.js";

export const jsBackend: CodegenBackend = {
  name: "js",
  sourceExtension: ".js",
  defaultConfig(_problem, sparseBlock): KernelConfig {
    return {
      ...DEFAULT_CONFIG,
      blockM: fitTile(64, sparseBlock[0]),
      blockN: fitTile(64, sparseBlock[1]),
      numWarps: 1,
      numStages: 1,
      prescaleQk: false,
    };
  },
  generate: generateJs,
};
