/**
 * Two registries: code generators (by backend name, for compile()) and executors (backends
 * that can run a kernel in this process, for flexAttention()). The JS executor is built in;
 * the WGSL executor is loaded on demand from @flexattn/webgpu, and anything else (or a custom
 * WebGPU device) can be plugged in with registerExecutor.
 */
import { FlexAttnError } from "@flexattn/ir";
import type {
  BackendName, BackwardInvocation, CodegenBackend, DeviceTarget, KernelArtifact, KernelConfig, KernelInvocation,
} from "@flexattn/template";
import { jsBackend, runJsKernel } from "@flexattn/codegen-js";
import { wgslBackend } from "@flexattn/codegen-wgsl";
import { tritonBackend } from "@flexattn/codegen-triton";
import { cudaBackend } from "@flexattn/codegen-cuda";
import { medianWallMs } from "@flexattn/autotune";

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
  /** The device as config resolution sees it for this call (limits, runtime facts, the tuning-cache signature). */
  target(invocation: KernelInvocation): DeviceTarget;
  run(artifact: KernelArtifact, invocation: KernelInvocation): void | Promise<void>;
  /** Time an artifact on this invocation in milliseconds (median), for the tuner. */
  measure(artifact: KernelArtifact, invocation: KernelInvocation): Promise<number>;
  /**
   * The backward on this device (flexAttentionBackward), where the backend has one: writes the
   * invocation's gradients; `config` holds the caller's backward config fields.
   */
  runBackward?(invocation: BackwardInvocation, config?: Partial<KernelConfig>): Promise<void>;
}

export const jsExecutor: KernelExecutor = {
  backend: "js",
  device: "JavaScript (this thread)",
  target: () => ({ signature: "js" }),
  run: (artifact, inv) => runJsKernel(artifact, inv),
  measure: (artifact, inv) => medianWallMs(3, () => runJsKernel(artifact, inv)),
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
 * when there is no adapter), `wgslTarget` (the device's limits for config resolution, so compiled
 * artifacts fit it), `runWgsl(invocation, { device, artifact })`, and `prepareWgsl` + `timeWgsl`
 * (GPU timestamps) for the tuner.
 */
// biome-ignore lint/suspicious/noExplicitAny: the module's shape is checked at run time
async function loadWebgpuExecutor(mod: any): Promise<KernelExecutor | null> {
  if (typeof mod?.createFlexAttnExecutor === "function") return (await mod.createFlexAttnExecutor()) ?? null;
  const needed = ["defaultFlexDevice", "runWgsl", "wgslTarget", "prepareWgsl", "timeWgsl"];
  const missing = needed.filter((f) => typeof mod?.[f] !== "function");
  if (missing.length) throw new Error(`@flexattn/webgpu does not export ${missing.join(", ")}`);
  const dev = await mod.defaultFlexDevice();
  return {
    backend: "wgsl",
    device: `WebGPU: ${dev.description ?? "adapter"}`,
    target: (inv) => mod.wgslTarget(dev, inv),
    run: async (artifact, inv) => {
      await mod.runWgsl(inv, { device: dev, artifact });
    },
    measure: async (artifact, inv) => {
      const prepared = await mod.prepareWgsl(inv, { device: dev, artifact });
      await prepared.run(); // a kernel that fails its spot check is not a candidate
      return (await mod.timeWgsl(prepared, { iterations: 10, maxRounds: 2, warmupMs: 50 })).medianMs;
    },
    ...(typeof mod.runWgslBackward === "function"
      ? {
        runBackward: async (inv: BackwardInvocation, config?: Partial<KernelConfig>) => {
          await mod.runWgslBackward(inv, { device: dev, config });
        },
      }
      : {}),
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
