/**
 * Getting a GPUDevice: the browser's `navigator.gpu`, or in Node Dawn through the `webgpu`
 * package. Requests the adapter's maxima for the limits the kernels use, and the optional
 * features they can exploit (timestamp-query, subgroups, shader-f16).
 */
/// <reference types="@webgpu/types" />
import { FlexAttnError } from "@flexattn/ir";
import type { WgslLimits } from "@flexattn/codegen-wgsl";
import { DAWN_SUBGROUP_MATRIX_OPTIONS } from "@flexattn/codegen-wgsl";
export { DAWN_SUBGROUP_MATRIX_OPTIONS };

/** Dawn backends the `webgpu` package can be told to use (Node only). */
export type DawnBackend = "vulkan" | "opengles" | "opengl" | "metal" | "d3d12" | "d3d11" | "null";

export interface FlexDeviceOptions {
  /**
   * Node only. "auto" (default): the FLEXATTN_WEBGPU_BACKEND environment variable if set,
   * else Dawn's default backend (Vulkan on Linux, Metal, D3D12), else OpenGL ES (Mesa's
   * llvmpipe on a machine without a GPU). "null" validates shaders without executing them.
   */
  backend?: "auto" | DawnBackend;
  /**
   * Extra Dawn options for `create()`, e.g. "enable-dawn-features=allow_unsafe_apis". Default:
   * the FLEXATTN_DAWN_OPTIONS environment variable where set (options separated by whitespace;
   * empty for none), else DAWN_SUBGROUP_MATRIX_OPTIONS on Vulkan, so that `flexAttention` reaches
   * the subgroupMatrix kernel on GPUs whose driver offers it.
   */
  dawnOptions?: readonly string[];
  powerPreference?: GPUPowerPreference;
  /** Use this GPU object instead of navigator.gpu / Dawn. */
  gpu?: GPU;
}

export interface FlexDevice {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  /** What the device was granted, in the form configs are checked against. */
  readonly limits: WgslLimits;
  readonly features: ReadonlySet<string>;
  /** "browser" or the Dawn backend used in Node. */
  readonly backend: string;
  /** Adapter description for logs and result files. */
  readonly description: string;
  /** GPUAdapterInfo.vendor, lower case ("" where the adapter does not say): picks shipped configs. */
  readonly vendor?: string;
}

const WANTED_LIMITS = [
  "maxComputeWorkgroupStorageSize", "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX",
  "maxStorageBufferBindingSize", "maxBufferSize", "maxStorageBuffersPerShaderStage", "maxComputeWorkgroupsPerDimension",
] as const;
/** What `subgroupMatrix` kernels need besides a suitable matrix config. */
const SUBGROUP_MATRIX_FEATURES = ["shader-f16", "subgroups", "chromium-experimental-subgroup-matrix"] as const;
const WANTED_FEATURES = ["timestamp-query", ...SUBGROUP_MATRIX_FEATURES] as const;

interface SubgroupMatrixInfo {
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  subgroupMatrixConfigs?: readonly { componentType?: string; resultComponentType?: string; M?: number; N?: number; K?: number }[];
}

/** Whether `subgroupMatrix` kernels run here: f16 16×16×16 products into f32, subgroups always of 32. */
export function hasSubgroupMatrix(features: ReadonlySet<string>, info: SubgroupMatrixInfo | undefined): boolean {
  if (!SUBGROUP_MATRIX_FEATURES.every((f) => features.has(f))) return false;
  if (Number(info?.subgroupMinSize) !== 32 || Number(info?.subgroupMaxSize) !== 32) return false;
  return [...(info?.subgroupMatrixConfigs ?? [])].some((c) =>
    c.componentType === "f16" && c.resultComponentType === "f32" && c.M === 16 && c.N === 16 && c.K === 16);
}

const isNode = typeof process !== "undefined" && !!process.versions?.node;

interface DawnModule {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

/**
 * The Dawn package: an optional peer dependency, used only in Node when no GPU object is given.
 * Its name is a variable so that browser bundlers (esbuild, Vite) leave the import alone
 * instead of bundling a native, Node-only module.
 */
const DAWN_PACKAGE = "webgpu";

let dawn: Promise<DawnModule> | undefined;

/** Import Dawn's package; a missing package becomes a FlexAttnError that says what to install. */
export async function importDawn(specifier: string = DAWN_PACKAGE): Promise<DawnModule> {
  try {
    return (await import(/* @vite-ignore */ specifier)) as DawnModule;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err?.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes(`'${specifier}'`)) {
      throw new FlexAttnError(
        `install the \`${specifier}\` package to run WGSL in Node (npm install ${specifier}): it provides Dawn, ` +
          "the WebGPU implementation for Node. In a browser, or with a GPU object of your own (the gpu option), it is not needed.",
      );
    }
    throw e;
  }
}

async function loadDawn(): Promise<DawnModule> {
  dawn ??= importDawn().then((m) => {
    // GPUBufferUsage, GPUMapMode, … as globals, as in a browser (never overwrite existing ones).
    for (const [k, v] of Object.entries(m.globals)) if (!(k in globalThis)) Object.assign(globalThis, { [k]: v });
    return m;
  }, (e) => {
    dawn = undefined;
    throw e;
  });
  return dawn;
}

/** Dawn GPU objects stay alive for the process: dawn.node is torn down when they are collected. */
const dawnGpus = new Map<string, GPU>();

async function dawnAdapter(backend: DawnBackend, o: FlexDeviceOptions): Promise<GPUAdapter | null> {
  const { create } = await loadDawn();
  if (backend === "opengles" || backend === "opengl") {
    // Mesa's EGL needs a platform without a display server.
    process.env.EGL_PLATFORM ??= "surfaceless";
  }
  // On Vulkan, by default, the toggles under which NVIDIA's driver offers f16 subgroup matrices:
  // elsewhere they change nothing, and every matrix kernel is spot-checked on its first run.
  const extra = o.dawnOptions ?? envDawnOptions() ?? (backend === "vulkan" ? DAWN_SUBGROUP_MATRIX_OPTIONS : []);
  const args = [`backend=${backend}`, "disable-dawn-features=timestamp_quantization", ...extra];
  const key = args.join("|");
  let gpu = dawnGpus.get(key);
  if (!gpu) dawnGpus.set(key, (gpu = create(args)));
  const compat = backend === "opengles" || backend === "opengl";
  try {
    return await gpu.requestAdapter({
      powerPreference: o.powerPreference ?? "high-performance",
      ...(compat ? { featureLevel: "compatibility" } : {}),
    } as GPURequestAdapterOptions);
  } catch {
    return null;
  }
}

function envBackend(): string | undefined {
  return isNode ? process.env.FLEXATTN_WEBGPU_BACKEND || undefined : undefined;
}

/** FLEXATTN_DAWN_OPTIONS split on whitespace, or undefined where it is not set (Node only). */
export function envDawnOptions(env: Record<string, string | undefined> = isNode ? process.env : {}): string[] | undefined {
  const value = env.FLEXATTN_DAWN_OPTIONS;
  return value === undefined ? undefined : value.split(/\s+/).filter(Boolean);
}

async function findAdapter(o: FlexDeviceOptions): Promise<{ adapter: GPUAdapter; backend: string; tried: string[] }> {
  const tried: string[] = [];
  if (o.gpu) {
    const adapter = await o.gpu.requestAdapter({ powerPreference: o.powerPreference ?? "high-performance" });
    if (adapter) return { adapter, backend: "custom", tried };
    tried.push("the given GPU object");
  } else if (!isNode && typeof navigator !== "undefined" && (navigator as Navigator & { gpu?: GPU }).gpu) {
    const adapter = await (navigator as Navigator & { gpu: GPU }).gpu.requestAdapter({ powerPreference: o.powerPreference ?? "high-performance" });
    if (adapter) return { adapter, backend: "browser", tried };
    tried.push("navigator.gpu");
  } else if (isNode) {
    const wanted = o.backend && o.backend !== "auto" ? o.backend : (envBackend() as DawnBackend | undefined);
    const order: DawnBackend[] = wanted ? [wanted] : process.platform === "linux" ? ["vulkan", "opengles"] : process.platform === "darwin" ? ["metal"] : ["d3d12", "vulkan"];
    for (const backend of order) {
      const adapter = await dawnAdapter(backend, o);
      if (adapter) return { adapter, backend, tried };
      tried.push(`Dawn ${backend}`);
    }
  } else {
    tried.push("navigator.gpu (absent)");
  }
  throw new FlexAttnError(
    `no WebGPU adapter found (tried ${tried.join(", ")}). In Node on Linux without a GPU, install Mesa's ` +
      `software rasterizer (Debian: libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) and use the OpenGL ES backend ` +
      `(FLEXATTN_WEBGPU_BACKEND=opengles); with a GPU, install its Vulkan driver.`,
  );
}

/** Request a device with the adapter's maximum limits and the useful optional features. */
export async function requestFlexDevice(o: FlexDeviceOptions = {}): Promise<FlexDevice> {
  const { adapter, backend } = await findAdapter(o);
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[k];
    if (typeof v === "number") requiredLimits[k] = v;
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  return wrapDevice(device, adapter, backend);
}

/** Describe a device you already have (e.g. the browser engine's own). */
export function wrapDevice(device: GPUDevice, adapter: GPUAdapter | null, backend = "external"): FlexDevice {
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo ?? adapter?.info;
  const features = new Set<string>([...device.features] as string[]);
  const subgroupMinSize = features.has("subgroups") ? Number((info as GPUAdapterInfo & { subgroupMinSize?: number })?.subgroupMinSize ?? 0) : 0;
  const description = info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" / ") : "unknown adapter";
  return {
    device,
    adapter: adapter as GPUAdapter,
    limits: {
      maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: Math.min(device.limits.maxComputeInvocationsPerWorkgroup, device.limits.maxComputeWorkgroupSizeX),
      subgroupMinSize,
      // Dawn's device.adapterInfo can lack the matrix configs that the adapter's info lists.
      subgroupMatrix: [adapter?.info, info].some((i) => hasSubgroupMatrix(features, i as SubgroupMatrixInfo | undefined)),
    },
    features,
    backend,
    description: `${description} (${backend})`,
    vendor: (info?.vendor ?? "").toLowerCase(),
  };
}

let shared: Promise<FlexDevice> | undefined;

/** The process-wide default device (created on first use). */
export function defaultFlexDevice(): Promise<FlexDevice> {
  shared ??= requestFlexDevice().catch((e) => {
    shared = undefined;
    throw e;
  });
  return shared;
}

/** Whether a WebGPU adapter can be found here (never throws). */
export async function isWebGpuAvailable(o?: FlexDeviceOptions): Promise<boolean> {
  try {
    await (o ? requestFlexDevice(o) : defaultFlexDevice());
    return true;
  } catch {
    return false;
  }
}
