/** Writing artifacts to disk (CLI and demo). */
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { FlexAttnError } from "@flexattn/ir";
import { type KernelArtifact, artifactToJSON } from "@flexattn/template";
import { getBackend } from "./registry.js";

/** Why a file-system call failed, in words (the error code's message without Node's "ECODE: " prefix and path). */
function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const words: Record<string, string> = {
    EACCES: "permission denied", EPERM: "operation not permitted", EROFS: "read-only file system",
    ENOSPC: "no space left on the device", EEXIST: "a file of that name exists", ENOTDIR: "a parent is a file, not a directory",
    ENOENT: "the parent directory cannot hold new entries",
  };
  return (err?.code && words[err.code]) ?? (e instanceof Error ? e.message : String(e));
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdirSync never returns on some pseudo file
 * systems (e.g. under /proc), and a missing level should name itself in the error.
 */
function ensureDirectory(dir: string): void {
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(dir);
  } catch {
    st = undefined;
  }
  if (st?.isDirectory()) return;
  if (st) throw new FlexAttnError(`cannot write kernels to ${dir}: it is a file, not a directory; choose another output directory (--out)`);
  const parent = dirname(dir);
  if (parent !== dir) ensureDirectory(parent);
  try {
    mkdirSync(dir);
  } catch (e) {
    throw new FlexAttnError(`cannot create the output directory ${dir}: ${reason(e)}; choose another output directory (--out)`);
  }
}

/**
 * Write <name><ext> (the kernel source), <name>.<backend>.json (the artifact) and any companion
 * files (<name><suffix>, e.g. the CUDA kernel's PyTorch module <name>_cuda.py); returns the paths written.
 */
export function writeArtifact(outDir: string, name: string, artifact: KernelArtifact, companions: Readonly<Record<string, string>> = {}): string[] {
  ensureDirectory(outDir);
  const files: [string, string][] = [
    [join(outDir, `${name}${getBackend(artifact.backend).sourceExtension}`), artifact.source],
    [join(outDir, `${name}.${artifact.backend}.json`), `${artifactToJSON(artifact)}\n`],
    ...Object.entries(companions).map(([suffix, text]): [string, string] => [join(outDir, `${name}${suffix}`), text]),
  ];
  for (const [path, text] of files) {
    try {
      writeFileSync(path, text);
    } catch (e) {
      throw new FlexAttnError(`cannot write ${path}: ${reason(e)}; choose another output directory (--out)`);
    }
  }
  return files.map(([path]) => path);
}
