/**
 * Compile generated kernels with the real toolchains, in batches (one process per batch and
 * target keeps CI time low): CUDA through nvcc to PTX for sm_80 and sm_90a (front end and NVVM,
 * everything but register allocation), Triton modules through Python's byte compiler.
 * Executing Triton needs PyTorch and Triton from PyPI, which CI cannot reach.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface GeneratedKernel {
  source: string;
  /** The entry point (CUDA: it and every other extern "C" name are renamed per kernel in a batch). */
  entry: string;
  /** What to print when it fails: the case that generated it. */
  describe: () => string;
}

/** The tool's path if it runs here, else null. */
export function findTool(command: string, versionFlag = "--version"): string | null {
  const r = spawnSync(command, [versionFlag], { encoding: "utf8" });
  return r.status === 0 ? command : null;
}

function run(command: string, args: string[]): Promise<{ status: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args);
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (status) => resolve({ status: status ?? 1, output }));
    child.on("error", (e) => resolve({ status: 1, output: String(e) }));
  });
}

/** Run the jobs two at a time (CI has two cores). */
async function twoAtATime<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all([worker(), worker()]);
  return results;
}

export const CUDA_ARCHS = [
  { name: "sm_80", flags: ["-gencode", "arch=compute_80,code=compute_80"] },
  { name: "sm_90a", flags: ["-arch=sm_90a"] },
] as const;

/**
 * One translation unit per batch: every kernel's #includes first, then each kernel in its own
 * namespace with its entry renamed. Returns the unit and the line where each kernel starts.
 */
function batchUnit(kernels: GeneratedKernel[]): { text: string; starts: number[] } {
  const includes = new Set<string>();
  const bodies = kernels.map((k, i) => {
    const lines = k.source.split("\n");
    for (const l of lines) if (/^\s*#\s*include\b/.test(l)) includes.add(l.trim());
    let body = lines.filter((l) => !/^\s*#\s*include\b/.test(l)).join("\n");
    // extern "C" names (the entry, a host launcher, ...) ignore namespaces: suffix each one.
    const externs = new Set([k.entry, ...[...body.matchAll(/extern\s+"C"[^;{]*?\b(\w+)\s*\(/g)].map((m) => m[1]).filter((n) => !n.startsWith("__"))]);
    for (const name of externs) body = body.replace(new RegExp(`\\b${name}\\b`, "g"), `${name}_k${i}`);
    return `namespace fuzz_k${i} {\n${body}\n}  // namespace fuzz_k${i}\n`;
  });
  let text = `${[...includes].join("\n")}\n`;
  const starts: number[] = [];
  for (const b of bodies) {
    starts.push(text.split("\n").length);
    text += b;
  }
  return { text, starts };
}

/**
 * Compile every kernel with nvcc for each arch; returns a description of every failure
 * (the nvcc errors and the cases of the kernels they point at), or null.
 */
export async function compileCudaKernels(nvcc: string, kernels: GeneratedKernel[], perBatch = 12): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), "flexattn-fuzz-cuda-"));
  const batches: { file: string; kernels: GeneratedKernel[]; starts: number[] }[] = [];
  for (let i = 0; i < kernels.length; i += perBatch) {
    const part = kernels.slice(i, i + perBatch);
    const { text, starts } = batchUnit(part);
    const file = join(dir, `batch${batches.length}.cu`);
    writeFileSync(file, text);
    batches.push({ file, kernels: part, starts });
  }
  const jobs = batches.flatMap((b) =>
    CUDA_ARCHS.map((arch) => async () => {
      const out = `${b.file}.${arch.name}.ptx`;
      const r = await run(nvcc, ["--ptx", ...arch.flags, "-diag-suppress", "177,550", b.file, "-o", out]);
      if (r.status === 0) return null;
      // "batch0.cu(123): error: ..." → the kernel whose namespace holds line 123.
      const culprits = new Set<number>();
      for (const m of r.output.matchAll(/\.cu\((\d+)\): (?:catastrophic )?error/g)) {
        const line = Number(m[1]);
        let k = 0;
        while (k + 1 < b.starts.length && b.starts[k + 1] <= line) k++;
        culprits.add(k);
      }
      const cases = [...culprits].map((k) => `--- kernel ${k} of ${b.file}:\n${b.kernels[k].describe()}`).join("\n");
      return `nvcc (${arch.name}) failed on ${b.file}:\n${r.output.slice(0, 4000)}\n${cases}`;
    }),
  );
  const failures = (await twoAtATime(jobs)).filter((x): x is string => x !== null);
  return failures.length ? failures.join("\n\n") : null;
}

/** Byte-compile every module in one Python process; returns the failures with their cases, or null. */
export async function byteCompilePython(python: string, modules: GeneratedKernel[]): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), "flexattn-fuzz-triton-"));
  const files = modules.map((m, i) => {
    const file = join(dir, `kernel${i}.py`);
    writeFileSync(file, m.source);
    return file;
  });
  const script = [
    "import json, py_compile, sys",
    "bad = []",
    "for i, f in enumerate(sys.argv[1:]):",
    "    try:",
    "        py_compile.compile(f, doraise=True)",
    "    except py_compile.PyCompileError as e:",
    "        bad.append([i, str(e)])",
    "print(json.dumps(bad))",
  ].join("\n");
  const r = await run(python, ["-c", script, ...files]);
  if (r.status !== 0) return `${python} failed: ${r.output}`;
  const bad = JSON.parse(r.output.trim().split("\n").at(-1)!) as [number, string][];
  if (!bad.length) return null;
  return bad.map(([i, msg]) => `--- ${files[i]}: ${msg}\n${modules[i].describe()}`).join("\n");
}
