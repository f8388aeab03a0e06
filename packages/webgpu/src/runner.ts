/**
 * Running WGSL artifacts: pipelines cached per device and kernel source, buffers reused per device,
 * one dispatch per call, readback into the invocation's host arrays.
 */
import { FlexAttnError, LruCache } from "@flexattn/ir";
import { defaultTuningCache, resolveConfig } from "@flexattn/autotune";
import {
  BINDING, PARAMS_BYTES, type WgslLaunch, type WgslTargetLimits, checkLimits, generateWgsl, wgslBackend, wgslLaunch,
} from "@flexattn/codegen-wgsl";
import {
  type DeviceTarget, type KernelArtifact, type KernelConfig, type KernelInvocation, makeSpec, specKey,
} from "@flexattn/template";
import { type FlexDevice, defaultFlexDevice, wrapDevice } from "./device.js";
import { type PipelineCache, buildValidated, cachedPipeline } from "./pipelines.js";
import { type VerifyMode, checkRows, needsCheck } from "./verify.js";

export interface RunWgslOptions {
  /** A device from requestFlexDevice(), or any GPUDevice. Default: the process-wide device. */
  device?: FlexDevice | GPUDevice;
  /** A prebuilt artifact (e.g. loaded from JSON); otherwise generated from `config`. */
  artifact?: KernelArtifact;
  /** Config to generate with; default: the one the library resolves for this device (resolveConfig). */
  config?: KernelConfig;
  /**
   * Spot-check output rows against the float64 reference after the run (verify.ts). "auto"
   * (default): subgroupMatrix kernels, on their first run per device; "always": every run.
   */
  verify?: VerifyMode;
}

const isFlexDevice = (d: FlexDevice | GPUDevice): d is FlexDevice => "device" in d && "limits" in d && "backend" in d;

export async function resolveDevice(d?: FlexDevice | GPUDevice): Promise<FlexDevice> {
  if (!d) return defaultFlexDevice();
  return isFlexDevice(d) ? d : wrapDevice(d, null);
}

/** q/k/v strides that allow the vec4 bindings (every stride and the head dims multiples of 4). */
export function vec4Compatible(inv: KernelInvocation): boolean {
  const p = inv.problem;
  const s = inv.strides;
  return p.dtype === "f32" && p.qkHeadDim % 4 === 0 && p.vHeadDim % 4 === 0 &&
    [s.q, s.k, s.v].every((t) => t.slice(0, 3).every((x) => x % 4 === 0));
}

/**
 * The device as config resolution sees it: its limits and vendor, whether this call's strides allow vec4
 * bindings, and a signature (adapter and matrix support) that keys tuning results.
 */
export function wgslTarget(dev: FlexDevice, inv: KernelInvocation): DeviceTarget {
  const limits: WgslTargetLimits = { ...dev.limits, vec4: vec4Compatible(inv), vendor: dev.vendor };
  return { signature: `${dev.description}${dev.limits.subgroupMatrix ? " +subgroupMatrix" : ""}`, limits };
}

/** Generated artifacts keyed by the full specKey, bounded. */
const artifactCache = new LruCache<string, KernelArtifact>();

/** The artifact for an invocation: the given one (checked), or generated for the config. */
export function artifactFor(inv: KernelInvocation, dev: FlexDevice, o: Pick<RunWgslOptions, "artifact" | "config"> = {}): KernelArtifact {
  const p = inv.problem;
  let artifact = o.artifact;
  if (!artifact) {
    const sparseBlock = inv.blockMask.blockSize as [number, number];
    const vec4 = vec4Compatible(inv);
    let config = o.config ?? resolveConfig({
      backend: wgslBackend, problem: p, sparseBlock, mods: { mask: inv.mask, score: inv.score }, target: wgslTarget(dev, inv), cache: defaultTuningCache(),
    }).config;
    // Strides that are not multiples of 4 cannot use vec4 bindings (nor qGlobal, which reads through them).
    if (config.options?.vec4 && !vec4) config = { ...config, options: { ...config.options, vec4: false, qGlobal: false } };
    const spec = makeSpec({
      mask: inv.mask, score: inv.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype,
      returnLse: p.returnLse, sparseBlock, config,
    });
    const key = specKey(spec, "wgsl");
    artifact = artifactCache.get(key);
    if (!artifact) artifactCache.set(key, (artifact = generateWgsl(spec)));
  } else if (artifact.backend !== "wgsl") {
    throw new FlexAttnError(`runWgsl needs a WGSL artifact, got one for backend "${artifact.backend}"`);
  } else if (artifact.config.options?.vec4 && !vec4Compatible(inv)) {
    throw new FlexAttnError("this WGSL artifact uses vec4 bindings; q/k/v strides must all be multiples of 4");
  }
  if (artifact.spec.returnLse !== p.returnLse && p.returnLse) {
    throw new FlexAttnError("this WGSL artifact does not write the LSE, but the problem asks for it");
  }
  checkLimits(artifact, dev.limits);
  return artifact;
}

interface PipelineEntry {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

const pipelines: PipelineCache<PipelineEntry> = new WeakMap();

/** What a pipeline is made of: the shader, its entry point and the bindings it declares. */
function pipelineKey(a: KernelArtifact): string {
  return `${JSON.stringify([a.entry, a.spec.returnLse, a.spec.buffers.length])}\n${a.source}`;
}

function pipelineFor(device: GPUDevice, artifact: KernelArtifact): Promise<PipelineEntry> {
  return cachedPipeline(pipelines, device, pipelineKey(artifact), () => createPipeline(device, artifact));
}

function createPipeline(device: GPUDevice, artifact: KernelArtifact): Promise<PipelineEntry> {
  const what = `WGSL shader ${artifact.specHash}`;
  return buildValidated(device, artifact.source, `flexattn ${artifact.specHash}`, what, `WGSL pipeline ${artifact.specHash}`, async (module) => {
    const storage = (binding: number, type: GPUBufferBindingType): GPUBindGroupLayoutEntry => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type } });
    const entries: GPUBindGroupLayoutEntry[] = [
      storage(BINDING.q, "read-only-storage"), storage(BINDING.k, "read-only-storage"), storage(BINDING.v, "read-only-storage"),
      storage(BINDING.out, "storage"),
      ...(artifact.spec.returnLse ? [storage(BINDING.lse, "storage")] : []),
      storage(BINDING.tables, "read-only-storage"),
      ...(artifact.spec.buffers.length ? [storage(BINDING.captured, "read-only-storage")] : []),
      { binding: BINDING.params, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
    ];
    const layout = device.createBindGroupLayout({ entries });
    const pipeline = await device.createComputePipelineAsync({
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: artifact.entry },
    });
    return { pipeline, layout };
  });
}

/** GPU buffers reused across calls, one per role, grown when needed. */
export class BufferPool {
  private readonly buffers = new Map<string, GPUBuffer>();

  constructor(private readonly device: GPUDevice) {}

  get(role: string, bytes: number, usage: number): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const have = this.buffers.get(role);
    if (have && have.size >= size && have.usage === usage) return have;
    have?.destroy();
    const b = this.device.createBuffer({ size, usage, label: `flexattn ${role}` });
    this.buffers.set(role, b);
    return b;
  }

  /**
   * The role's buffer holding `data`, written before any later submit. Large data goes through
   * the role's own staging buffer, kept between calls: `writeBuffer` stages a write larger than
   * Dawn's upload ring in host memory it allocates, maps and faults in anew on every call.
   */
  async upload(role: string, data: ArrayBufferView | ArrayBuffer, extraUsage = 0): Promise<GPUBuffer> {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const usage = (role === "params" ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE) | GPUBufferUsage.COPY_DST | extraUsage;
    const buf = this.get(role, bytes.byteLength, usage);
    const aligned = bytes.byteLength % 4 === 0 ? bytes : padded(bytes);
    if (aligned.byteLength < STAGED_UPLOAD_BYTES) {
      this.device.queue.writeBuffer(buf, 0, aligned.buffer, aligned.byteOffset, aligned.byteLength);
      return buf;
    }
    const staging = this.get(`${role} staging`, aligned.byteLength, GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC);
    await staging.mapAsync(GPUMapMode.WRITE, 0, aligned.byteLength);
    new Uint8Array(staging.getMappedRange(0, aligned.byteLength)).set(aligned);
    staging.unmap();
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(staging, 0, buf, 0, aligned.byteLength);
    this.device.queue.submit([enc.finish()]);
    return buf;
  }
}

/** Uploads of at least this many bytes go through a pooled staging buffer (BufferPool.upload). */
export const STAGED_UPLOAD_BYTES = 4 << 20;

function padded(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}

const pools = new WeakMap<GPUDevice, BufferPool>();
/** The device's buffer pool; callers hold the device's lock (withDeviceLock) while they use it. */
export function poolFor(device: GPUDevice): BufferPool {
  let p = pools.get(device);
  if (!p) pools.set(device, (p = new BufferPool(device)));
  return p;
}

/** Where the kernel writes: [B, Hq, qLen, DVo] contiguous, rows padded to 4 (vec4 / 16-bit words). */
export function deviceOutStrides(inv: KernelInvocation): [number, number, number, number] {
  const p = inv.problem;
  const dvo = Math.ceil(p.vHeadDim / 4) * 4;
  return [p.qHeads * p.qLen * dvo, p.qLen * dvo, dvo, 1];
}

/** An invocation bound to a device: dispatch it (repeatedly, for timing) and read it back. */
export interface PreparedWgsl {
  readonly artifact: KernelArtifact;
  readonly device: FlexDevice;
  readonly launch: WgslLaunch;
  /**
   * Record the dispatch into a compute pass. A kernel the `verify` mode checks must have passed
   * its spot check on this device first (through run()): encode() reads nothing back, so it
   * throws rather than hand out an unchecked output.
   */
  encode(pass: GPUComputePassEncoder): void;
  /** Dispatch once, read out (and lse) back into the invocation's arrays. */
  run(): Promise<void>;
}

export async function prepareWgsl(inv: KernelInvocation, o: RunWgslOptions = {}): Promise<PreparedWgsl> {
  const dev = await resolveDevice(o.device);
  const { device } = dev;
  const artifact = artifactFor(inv, dev, o);
  const { pipeline, layout } = await pipelineFor(device, artifact);
  const p = inv.problem;
  const outStrides = deviceOutStrides(inv);
  const launch = wgslLaunch(artifact, inv, outStrides);
  const maxGrid = device.limits.maxComputeWorkgroupsPerDimension;
  if (launch.grid.some((n) => n > maxGrid)) {
    throw new FlexAttnError(`WGSL grid [${launch.grid.join(", ")}] exceeds ${maxGrid} workgroups per dimension`);
  }
  const pool = poolFor(device);
  const elem = p.dtype === "f32" ? 4 : 2;
  const outBytes = p.batch * outStrides[0] * elem;
  const lseBytes = p.batch * p.qHeads * p.qLen * 4;
  const [q, k, v, tables, captured, params] = await Promise.all([
    pool.upload("q", inv.q.data), pool.upload("k", inv.k.data), pool.upload("v", inv.v.data), pool.upload("tables", launch.tables),
    launch.captured ? pool.upload("captured", launch.captured) : null, pool.upload("params", launch.params),
  ]);
  const out = pool.get("out", outBytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const lse = artifact.spec.returnLse ? pool.get("lse", lseBytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC) : null;
  const entry = (binding: number, buffer: GPUBuffer, size?: number): GPUBindGroupEntry => ({ binding, resource: { buffer, ...(size ? { size } : {}) } });
  const bindGroup = device.createBindGroup({
    layout,
    entries: [
      entry(BINDING.q, q), entry(BINDING.k, k), entry(BINDING.v, v), entry(BINDING.out, out),
      ...(lse ? [entry(BINDING.lse, lse)] : []),
      entry(BINDING.tables, tables),
      ...(captured ? [entry(BINDING.captured, captured)] : []),
      entry(BINDING.params, params, PARAMS_BYTES),
    ],
  });
  const record = (pass: GPUComputePassEncoder) => {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...launch.grid);
  };
  const mode = o.verify ?? "auto";
  const encode = (pass: GPUComputePassEncoder) => {
    if (needsCheck(artifact, mode) && !verified.get(device)?.has(artifact.specHash)) {
      throw new FlexAttnError(
        `WGSL kernel ${artifact.specHash} has not passed its spot check on ${dev.description} yet (verify: "${mode}"): ` +
          `call run() once before encode(), or pass verify: "never" to use it unchecked`,
      );
    }
    record(pass);
  };
  const run = async () => {
    device.pushErrorScope("validation");
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    record(pass);
    pass.end();
    const readOut = readBack(pool, "readOut", enc, out, 0, outBytes);
    const readLse = lse && p.returnLse ? readBack(pool, "readLse", enc, lse, 0, lseBytes) : null;
    device.queue.submit([enc.finish()]);
    const err = await device.popErrorScope();
    if (err) throw new FlexAttnError(`WGSL dispatch failed: ${err.message}`);
    await readOut((data) => scatterOut(inv, data, outStrides));
    if (readLse) await readLse((data) => inv.lse.set(new Float32Array(data, 0, p.batch * p.qHeads * p.qLen)));
    if (needsCheck(artifact, mode)) {
      const checked = verified.get(device) ?? new Set<string>();
      verified.set(device, checked);
      if (mode === "always" || !checked.has(artifact.specHash)) {
        checkRows(inv, artifact, dev.description);
        checked.add(artifact.specHash);
      }
    }
  };
  return { artifact, device: dev, launch, encode, run };
}

/**
 * Record a copy of `bytes` of `src` (from byte `offset`) into the pool's read-back buffer for
 * `role`. After submit, the returned function maps it, hands the mapped bytes to `use` (valid only
 * during the call) and unmaps it. Read-back buffers are pooled: allocating host-visible memory the
 * size of an output on every call costs more than the copy.
 */
export function readBack(pool: BufferPool, role: string, enc: GPUCommandEncoder, src: GPUBuffer, offset: number, bytes: number): <T>(use: (data: ArrayBuffer) => T) => Promise<T> {
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  const staging = pool.get(role, size, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
  if (bytes > 0) enc.copyBufferToBuffer(src, offset, staging, 0, Math.ceil(bytes / 4) * 4);
  return async (use) => {
    await staging.mapAsync(GPUMapMode.READ, 0, size);
    try {
      return use(staging.getMappedRange(0, size));
    } finally {
      staging.unmap(); // a pooled buffer left mapped would fail the next call's copy
    }
  };
}

/** Copy the device's compact output into the invocation's (possibly strided) out array. */
function scatterOut(inv: KernelInvocation, data: ArrayBuffer, dev: readonly number[]): void {
  const p = inv.problem;
  const src = p.dtype === "f32" ? new Float32Array(data) : new Uint16Array(data);
  const dst = inv.out;
  const [sb, sh, ss] = inv.strides.out;
  const dv = p.vHeadDim;
  // Where both layouts are the same contiguous one, one copy: a call's output is millions of
  // elements, and a copy per row costs more than the kernel at those sizes.
  if ([sb, sh, ss].every((s, i) => s === dev[i]) && dev[2] === dv && dev[1] === p.qLen * dv && dev[0] === p.qHeads * dev[1]) {
    dst.set(src.subarray(0, p.batch * dev[0]));
    return;
  }
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.qHeads; h++)
      for (let i = 0; i < p.qLen; i++) {
        const from = b * dev[0] + h * dev[1] + i * dev[2];
        dst.set(src.subarray(from, from + dv), b * sb + h * sh + i * ss);
      }
}

/** Run one invocation on WebGPU, filling invocation.out (and .lse when the problem returns it). */
export async function runWgsl(inv: KernelInvocation, o: RunWgslOptions = {}): Promise<{ artifact: KernelArtifact }> {
  const dev = await resolveDevice(o.device);
  return withDeviceLock(dev.device, async () => {
    const prepared = await prepareWgsl(inv, { ...o, device: dev });
    await prepared.run();
    return { artifact: prepared.artifact };
  });
}

/** Calls on one device share its buffer pool, so they run one after another. */
export function withDeviceLock<T>(device: GPUDevice, f: () => Promise<T>): Promise<T> {
  const prev = locks.get(device) ?? Promise.resolve();
  const task = prev.then(f);
  locks.set(device, task.catch(() => undefined));
  return task;
}

const locks = new WeakMap<GPUDevice, Promise<unknown>>();
/** Per device, the spec hashes whose output passed a spot check ("auto" checks each once). */
const verified = new WeakMap<GPUDevice, Set<string>>();
