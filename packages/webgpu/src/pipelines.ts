/** What the forward and backward runners share to build compute pipelines: a bounded per-device cache and compile errors with their line. */
import { FlexAttnError, LruCache } from "@flexattn/ir";

/** Pipelines hold GPU objects: fewer per device than the CPU-side caches. */
export const PIPELINES_PER_DEVICE = 64;

/** A bounded cache of pending pipeline builds for each device. */
export type PipelineCache<T> = WeakMap<GPUDevice, LruCache<string, Promise<T>>>;

/** The cached build for `key` on `device`, else `create()`'s; a failed build is forgotten so a later call retries. */
export function cachedPipeline<T>(cache: PipelineCache<T>, device: GPUDevice, key: string, create: () => Promise<T>): Promise<T> {
  let perDevice = cache.get(device);
  if (!perDevice) cache.set(device, (perDevice = new LruCache(PIPELINES_PER_DEVICE)));
  let entry = perDevice.get(key);
  if (!entry) {
    entry = create();
    perDevice.set(key, entry);
    const owner = perDevice;
    entry.catch(() => owner.delete(key));
  }
  return entry;
}

/**
 * Build inside a validation error scope: `build` gets the compiled module (a compile error throws
 * `<what> failed to compile`, quoting the line), a validation error throws `<pipelineWhat>: …`.
 */
export async function buildValidated<T>(
  device: GPUDevice, source: string, label: string, what: string, pipelineWhat: string, build: (module: GPUShaderModule) => Promise<T>,
): Promise<T> {
  device.pushErrorScope("validation");
  let result: T;
  try {
    const module = device.createShaderModule({ code: source, label });
    const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === "error");
    if (errors.length) {
      const first = errors[0];
      const line = source.split("\n")[first.lineNum - 1] ?? "";
      throw new FlexAttnError(`${what} failed to compile: ${first.message} (line ${first.lineNum}: ${line.trim()})`);
    }
    result = await build(module);
  } catch (e) {
    await device.popErrorScope();
    throw e;
  }
  const err = await device.popErrorScope();
  if (err) throw new FlexAttnError(`${pipelineWhat}: ${err.message}`);
  return result;
}
