/** Writing artifacts to disk (CLI and demo). */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type KernelArtifact, artifactToJSON } from "@flexattn/template";
import { getBackend } from "./registry.js";

/** Write <name><ext> (the kernel source) and <name>.<backend>.json (the artifact); returns both paths. */
export function writeArtifact(outDir: string, name: string, artifact: KernelArtifact): [string, string] {
  mkdirSync(outDir, { recursive: true });
  const src = join(outDir, `${name}${getBackend(artifact.backend).sourceExtension}`);
  const json = join(outDir, `${name}.${artifact.backend}.json`);
  writeFileSync(src, artifact.source);
  writeFileSync(json, `${artifactToJSON(artifact)}\n`);
  return [src, json];
}
