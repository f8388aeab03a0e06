/**
 * Two registries: code generators (by backend name, for compile()) and executors (backends
 * that can run a kernel in this process, for flexAttention()). The JS executor is built in;
 * the WGSL executor is loaded on demand from @flexattn/webgpu, and anything else (or a custom
 * WebGPU device) can be plugged in with registerExecutor.
 */
import { FlexAttnError } from "@flexattn/ir";
import type {
  BackendName, CodegenBackend, KernelArtifact, KernelConfig, KernelInvocation, ResolvedProblem,
} from "@flexattn/template";
import { jsBackend, runJsKernel } from "@flexattn/codegen-js";
import { wgslBackend, wgslDefaultConfig } from "@flexattn/codegen-wgsl";
import { tritonBackend } from "@flexattn/codegen-triton";
import { cudaBackend } from "@flexattn/codegen-cuda";

export const BACKEND_NAMES: readonly BackendName[] = ["js", "wgsl", "cuda", "triton"];

const generators = new Map<string, CodegenBackend>();

/** Add (or replace) a code generator. */
export function registerBackend(backend: CodegenBackend): void {
  generators.set(backend.name, backend);
}

for (const b of [jsBackend, wgslBackend, tritonBackend, cudaBackend]) if (b) registerBackend(b);

export function getBackend(name: string): CodegenBackend {
  const b = generators.get(name);
  if (!b) {
    const known = [...generators.keys()].join(", ");
    throw new FlexAttnError(`unknown backend "${name}"; available: ${known}`);
  }
  return b;
}

export function listBackends(): CodegenBackend[] {
  return [...generators.values()];
}

/** Runs artifacts of one backend in this process. */
export interface KernelExecutor {
  readonly backend: BackendName;
  /** A short description of where it runs (e.g. the GPU adapter), for logs and the demo. */
  readonly device: string;
  /** The config this executor prefers for a call (e.g. fitted to the device's limits); default: the backend's. */
  defaultConfig?(problem: ResolvedProblem, sparseBlock: readonly [number, number], invocation: KernelInvocation): KernelConfig;
  run(artifact: KernelArtifact, invocation: KernelInvocation): void | Promise<void>;
}

export const jsExecutor: KernelExecutor = {
  backend: "js",
  device: "JavaScript (this thread)",
  run: (artifact, inv) => runJsKernel(artifact, inv),
};

const executors = new Map<string, KernelExecutor | null>([["js", jsExecutor]]);
const pending = new Map<string, Promise<KernelExecutor | null>>();
const unavailableReasons = new Map<string, string>();

/** Register an executor (e.g. WGSL on your own GPUDevice); replaces any earlier one. */
export function registerExecutor(executor: KernelExecutor): void {
  executors.set(executor.backend, executor);
  unavailableReasons.delete(executor.backend);
}

/** Why an executor is unavailable (after a failed lookup), for messages. */
export function executorUnavailableReason(backend: string): string | undefined {
  return unavailableReasons.get(backend);
}

/**
 * The seam with @flexattn/webgpu: its process-wide device (`defaultFlexDevice()`, which throws
 * when there is no adapter) and `runWgsl(invocation, { device, artifact })`. Configs come from
 * `wgslDefaultConfig` with the device's limits, so compiled artifacts fit the device.
 */
// biome-ignore lint/suspicious/noExplicitAny: the module's shape is checked at run time
async function loadWebgpuExecutor(mod: any): Promise<KernelExecutor | null> {
  if (typeof mod?.createFlexAttnExecutor === "function") return (await mod.createFlexAttnExecutor()) ?? null;
  if (typeof mod?.defaultFlexDevice !== "function" || typeof mod?.runWgsl !== "function") {
    throw new Error("@flexattn/webgpu does not export defaultFlexDevice and runWgsl");
  }
  const dev = await mod.defaultFlexDevice();
  const vec4 = (inv: KernelInvocation) => (typeof mod.vec4Compatible === "function" ? Boolean(mod.vec4Compatible(inv)) : false);
  return {
    backend: "wgsl",
    device: `WebGPU: ${dev.description ?? "adapter"}`,
    defaultConfig: (problem, sparseBlock, inv) => wgslDefaultConfig(problem, sparseBlock, { limits: dev.limits, vec4: vec4(inv) }),
    run: async (artifact, inv) => {
      await mod.runWgsl(inv, { device: dev, artifact });
    },
  };
}

/** Module loader for the WGSL executor (replaceable in tests). */
export let importWebgpu: () => Promise<unknown> = () => import("@flexattn/webgpu");
export function setWebgpuImporter(f: () => Promise<unknown>): void {
  importWebgpu = f;
  executors.delete("wgsl");
  pending.delete("wgsl");
  unavailableReasons.delete("wgsl");
}

/** The executor for a backend, or null when it cannot run here (reason in executorUnavailableReason). */
export async function findExecutor(backend: BackendName): Promise<KernelExecutor | null> {
  if (executors.has(backend)) return executors.get(backend) ?? null;
  if (backend !== "wgsl") {
    unavailableReasons.set(backend, `the ${backend} backend generates code only; use compile() (or the CLI) and run the kernel with your own toolchain`);
    return null;
  }
  let p = pending.get(backend);
  if (!p) {
    p = (async () => {
      try {
        const ex = await loadWebgpuExecutor(await importWebgpu());
        if (!ex) unavailableReasons.set("wgsl", "no WebGPU adapter is available");
        return ex;
      } catch (e) {
        unavailableReasons.set("wgsl", `@flexattn/webgpu could not start: ${e instanceof Error ? e.message : String(e)}`);
        return null;
      }
    })();
    pending.set(backend, p);
  }
  const ex = await p;
  executors.set(backend, ex);
  pending.delete(backend);
  return ex;
}
