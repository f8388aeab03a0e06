/**
 * Running the WGSL backward: its config resolved through the one config path (resolveConfig with
 * the device's limits and pass "backward"), pipelines cached per device and source, the four
 * passes dispatched in one compute pass, gradients read back into the invocation's arrays in
 * their dtype and strides.
 */
import { FlexAttnError, LruCache } from "@flexattn/ir";
import { defaultTuningCache, resolveConfig } from "@flexattn/autotune";
import {
  BACKWARD_BINDING, BACKWARD_PARAMS_BYTES, type BackwardBindingName, type WgslBackwardArtifact, type WgslTargetLimits,
  checkBackwardLimits, generateWgslBackward, gradBufferOffsets, packBackwardParams, packBackwardTables, packCaptured, paddedDim,
  scratchLayout, wgslBackend,
} from "@flexattn/codegen-wgsl";
import {
  type BackwardInvocation, type DeviceTarget, type KernelConfig, backwardMods, fromFloat32, makeSpec, specKey, stridesOf,
} from "@flexattn/template";
import type { FlexDevice } from "./device.js";
import { type PipelineCache, buildValidated, cachedPipeline } from "./pipelines.js";
import { poolFor, readBack, resolveDevice, wgslTarget, withDeviceLock } from "./runner.js";

export interface RunWgslBackwardOptions {
  /** A device from requestFlexDevice(), or any GPUDevice. Default: the process-wide device. */
  device?: FlexDevice | GPUDevice;
  /** A prebuilt backward artifact; otherwise generated for `config`. */
  artifact?: WgslBackwardArtifact;
  /** The caller's config (fields not given come from the best backward candidate that agrees). */
  config?: Partial<KernelConfig>;
}

/** The device as the backward's config resolution sees it: its limits, pass "backward", and its own tuning-cache signature. */
export function wgslBackwardTarget(dev: FlexDevice, inv: BackwardInvocation): DeviceTarget {
  const forward = wgslTarget(dev, inv);
  const limits: WgslTargetLimits = { ...(forward.limits as WgslTargetLimits), pass: "backward" };
  return { signature: `${forward.signature} backward`, limits };
}

const artifactCache = new LruCache<string, WgslBackwardArtifact>();

/** The buffer-pool roles of the backward's read-write buffers (the forward's pool, other roles). */
export const BACKWARD_POOL_ROLES = { scratch: "bwd-scratch", dq: "bwd-dq", dkv: "bwd-dkv" } as const;

/** The backward artifact for an invocation: the given one (checked), or generated for the resolved config. */
export function backwardArtifactFor(inv: BackwardInvocation, dev: FlexDevice, o: Pick<RunWgslBackwardOptions, "artifact" | "config"> = {}): WgslBackwardArtifact {
  const p = inv.problem;
  const sparseBlock = inv.blockMask.blockSize as [number, number];
  let artifact = o.artifact;
  if (!artifact) {
    const { config } = resolveConfig({
      backend: wgslBackend, problem: { ...p, returnLse: true }, sparseBlock, mods: { mask: inv.mask, score: inv.score },
      target: wgslBackwardTarget(dev, inv), user: o.config, cache: defaultTuningCache(),
    });
    const spec = makeSpec({
      mask: inv.mask, score: inv.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype, returnLse: true, sparseBlock, config,
    });
    const key = specKey(spec, "wgsl-backward");
    artifact = artifactCache.get(key);
    if (!artifact) artifactCache.set(key, (artifact = generateWgslBackward(spec)));
  } else if (artifact.format !== "flexattn.wgsl-backward/1") {
    throw new FlexAttnError("runWgslBackward needs a WGSL backward artifact (generateWgslBackward)");
  }
  const a = artifact.spec;
  if (a.qkHeadDim !== p.qkHeadDim || a.vHeadDim !== p.vHeadDim || a.dtype !== p.dtype) {
    throw new FlexAttnError(`WGSL backward artifact was built for head dims ${a.qkHeadDim}/${a.vHeadDim} ${a.dtype}, the problem has ${p.qkHeadDim}/${p.vHeadDim} ${p.dtype}`);
  }
  if (a.sparseBlock[0] !== sparseBlock[0] || a.sparseBlock[1] !== sparseBlock[1]) {
    throw new FlexAttnError(`WGSL backward artifact was built for BlockMask blocks ${a.sparseBlock.join("×")}, got ${sparseBlock.join("×")}`);
  }
  if ((inv.mask?.key ?? null) !== a.maskKey || (inv.score?.key ?? null) !== a.scoreKey) {
    throw new FlexAttnError("WGSL backward artifact was built for other mods (mask/score graph keys differ)");
  }
  checkBackwardLimits(artifact, dev.limits);
  return artifact;
}

interface BackwardPipelines {
  readonly passes: { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; bindings: readonly BackwardBindingName[]; entry: string }[];
}

const READ_ONLY = new Set<BackwardBindingName>(["q", "k", "v", "dout", "out", "tables", "captured"]);
const pipelines: PipelineCache<BackwardPipelines> = new WeakMap();

/** The backward's compute pipelines for an artifact on a device (cached): compiles and validates every pass. */
export function backwardPipelines(device: GPUDevice, a: WgslBackwardArtifact): Promise<BackwardPipelines> {
  return cachedPipeline(pipelines, device, `${JSON.stringify(a.passes)}\n${a.source}`, () => createPipelines(device, a));
}

function createPipelines(device: GPUDevice, a: WgslBackwardArtifact): Promise<BackwardPipelines> {
  const what = `WGSL backward shader ${a.specHash}`;
  return buildValidated(device, a.source, `flexattn backward ${a.specHash}`, what, `WGSL backward pipelines ${a.specHash}`, async (module) => ({
    passes: await Promise.all(a.passes.map(async (pass) => {
      const layout = device.createBindGroupLayout({
        entries: pass.bindings.map((name): GPUBindGroupLayoutEntry => ({
          binding: BACKWARD_BINDING[name],
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: name === "params" ? "uniform" : READ_ONLY.has(name) ? "read-only-storage" : "storage" },
        })),
      });
      const pipeline = await device.createComputePipelineAsync({
        layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: pass.entry },
      });
      return { pipeline, layout, bindings: pass.bindings, entry: pass.entry };
    })),
  }));
}

/** Check the invocation's gradient outputs before anything runs. */
function checkOutputs(inv: BackwardInvocation, gradBuffers: WgslBackwardArtifact["gradBuffers"]): void {
  const p = inv.problem;
  const want = p.dtype === "f32" ? Float32Array : Uint16Array;
  for (const [name, arr] of [["dq", inv.dq], ["dk", inv.dk], ["dv", inv.dv]] as const) {
    if (!(arr instanceof want)) throw new FlexAttnError(`runWgslBackward: ${name} must be a ${want.name} for ${p.dtype} inputs`);
    const s = inv.gradStrides[name];
    if (s.length !== 4 || s[3] !== 1) throw new FlexAttnError(`runWgslBackward: ${name} must have 4 strides with a contiguous head dim, got [${s.join(", ")}]`);
  }
  if (inv.dBuffers.length !== gradBuffers.length || inv.dBuffers.some((d, i) => !(d instanceof Float32Array) || d.length !== gradBuffers[i].size)) {
    throw new FlexAttnError(`runWgslBackward: expected ${gradBuffers.length} buffer gradient output(s) of sizes [${gradBuffers.map((g) => g.size).join(", ")}]`);
  }
}

/** The f32 gradient rows the kernel wrote ([B, H, S, padded dim]) → the output array, in its dtype and strides. */
function scatterGradient(src: Float32Array, dst: Float32Array | Uint16Array, strides: readonly number[], dims: [number, number, number, number], dtype: BackwardInvocation["problem"]["dtype"]): void {
  const [B, H, S, D] = dims;
  const dp = paddedDim(D);
  // Same contiguous layout on both sides: one conversion and copy instead of one per row.
  if (dp === D && strides[2] === D && strides[1] === S * D && strides[0] === H * S * D) {
    dst.set(fromFloat32(src.subarray(0, B * H * S * D), dtype));
    return;
  }
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let s = 0; s < S; s++) {
        const from = ((b * H + h) * S + s) * dp;
        dst.set(fromFloat32(src.subarray(from, from + D), dtype), b * strides[0] + h * strides[1] + s * strides[2]);
      }
}

/**
 * Run the backward of one invocation on WebGPU: writes inv.dq, inv.dk, inv.dv (in the problem's
 * dtype, at gradStrides) and inv.dBuffers. The invocation's `out` and `lse` are the forward's.
 */
export async function runWgslBackward(inv: BackwardInvocation, o: RunWgslBackwardOptions = {}): Promise<{ artifact: WgslBackwardArtifact }> {
  const dev = await resolveDevice(o.device);
  return withDeviceLock(dev.device, async () => {
    const artifact = backwardArtifactFor(inv, dev, o);
    checkOutputs(inv, artifact.gradBuffers);
    await (await prepareBackward(inv, dev, artifact)).run();
    return { artifact };
  });
}

/** One invocation's backward, uploaded and bound: encode() records its four passes (for timing), run() also reads the gradients back. */
export interface PreparedWgslBackward {
  readonly artifact: WgslBackwardArtifact;
  readonly device: FlexDevice;
  encode(pass: GPUComputePassEncoder): void;
  run(): Promise<void>;
}

/**
 * The backward of one invocation, ready to dispatch (for timing with timeWgsl). It holds the
 * device's pooled buffers: use it before the next call on that device.
 */
export async function prepareWgslBackward(inv: BackwardInvocation, o: RunWgslBackwardOptions = {}): Promise<PreparedWgslBackward> {
  const dev = await resolveDevice(o.device);
  return withDeviceLock(dev.device, async () => {
    const artifact = backwardArtifactFor(inv, dev, o);
    checkOutputs(inv, artifact.gradBuffers);
    return prepareBackward(inv, dev, artifact);
  });
}

async function prepareBackward(inv: BackwardInvocation, dev: FlexDevice, a: WgslBackwardArtifact): Promise<PreparedWgslBackward> {
  const { device } = dev;
  const p = inv.problem;
  const { passes } = await backwardPipelines(device, a);
  const { blockM, blockN } = a.config;
  const rows = p.batch * p.qHeads * p.qLen;
  const numKvTiles = Math.ceil(p.kvLen / blockN);
  const programs = p.batch * p.kvHeads * numKvTiles;
  const G = a.gradWords;
  const scratch = scratchLayout(rows, programs, G);
  const dp = paddedDim(p.qkHeadDim);
  const dvp = paddedDim(p.vHeadDim);
  const dqWords = rows * dp;
  const dkWords = p.batch * p.kvHeads * p.kvLen * dp;
  const dvWords = p.batch * p.kvHeads * p.kvLen * dvp;
  const maxBinding = Number(device.limits.maxStorageBufferBindingSize);
  for (const [what, words] of [["scratch (LSE, delta, buffer-gradient partials)", scratch.words], ["dq", dqWords], ["dk and dv", dkWords + dvWords]] as const) {
    if (words * 4 > maxBinding) {
      throw new FlexAttnError(
        `WGSL backward: ${what} needs ${words * 4} bytes, over the device's maxStorageBufferBindingSize ${maxBinding}` +
          (what.startsWith("scratch") && G ? ` (${programs} partial rows of ${G} words: use a larger blockN, or fewer heads per call)` : ""),
      );
    }
  }
  const grids: Record<string, [number, number, number]> = {
    preprocess: [Math.ceil(p.qLen / 64), p.qHeads, p.batch],
    dkdv: [numKvTiles, p.kvHeads, p.batch],
    dq: [Math.ceil(p.qLen / blockM), p.qHeads, p.batch],
    reduce: [Math.ceil(G / 64), 1, 1],
  };
  const maxGrid = device.limits.maxComputeWorkgroupsPerDimension;
  for (const [name, grid] of Object.entries(grids)) {
    if (grid.some((n) => n > maxGrid)) throw new FlexAttnError(`WGSL backward ${name} grid [${grid.join(", ")}] exceeds ${maxGrid} workgroups per dimension`);
  }
  const t = inv.blockMask;
  const tables = packBackwardTables(t);
  const s = inv.strides;
  const dos = stridesOf(inv.dOut);
  const params = packBackwardParams({
    batch: p.batch, q_heads: p.qHeads, kv_heads: p.kvHeads, q_len: p.qLen, kv_len: p.kvLen,
    stride_q_b: s.q[0], stride_q_h: s.q[1], stride_q_s: s.q[2],
    stride_k_b: s.k[0], stride_k_h: s.k[1], stride_k_s: s.k[2],
    stride_v_b: s.v[0], stride_v_h: s.v[1], stride_v_s: s.v[2],
    stride_out_b: s.out[0], stride_out_h: s.out[1], stride_out_s: s.out[2],
    stride_dout_b: dos[0], stride_dout_h: dos[1], stride_dout_s: dos[2],
    sparse_b: t.Bm, sparse_h: t.Hm, sparse_q_blocks: t.numQBlocks, sparse_kv_blocks: t.numKvBlocks,
    q_offset: p.qOffset, kv_offset: p.kvOffset,
    tab_kv_num: tables.offsets[0], tab_kv_idx: tables.offsets[1], tab_full_kv_num: tables.offsets[2], tab_full_kv_idx: tables.offsets[3],
    tab_q_num: tables.offsets[4], tab_q_idx: tables.offsets[5], tab_full_q_num: tables.offsets[6], tab_full_q_idx: tables.offsets[7],
    scratch_delta: scratch.delta, scratch_partials: scratch.partials, scratch_grads: scratch.grads, dv_offset: dkWords,
    num_kv_tiles: numKvTiles, num_programs: programs,
    scale: p.scale, neg_inf: -Infinity, pos_inf: Infinity, nan: NaN,
  });
  const pool = poolFor(device);
  const rw = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const captured = packCaptured(inv.mask, inv.score);
  const [q, k, v, dout, out, tableBuffer, capturedBuffer, paramsBuffer] = await Promise.all([
    pool.upload("q", inv.q.data), pool.upload("k", inv.k.data), pool.upload("v", inv.v.data), pool.upload("dout", inv.dOut.data),
    pool.upload("out-in", inv.out), pool.upload("tables", tables.data), captured ? pool.upload("captured", captured) : null,
    pool.upload("params", params),
  ]);
  const buffers: Partial<Record<BackwardBindingName, GPUBuffer>> = {
    q, k, v, dout, out, tables: tableBuffer,
    ...(capturedBuffer ? { captured: capturedBuffer } : {}),
    scratch: pool.get(BACKWARD_POOL_ROLES.scratch, scratch.words * 4, rw),
    dq: pool.get(BACKWARD_POOL_ROLES.dq, dqWords * 4, rw),
    dkv: pool.get(BACKWARD_POOL_ROLES.dkv, (dkWords + dvWords) * 4, rw),
    params: paramsBuffer,
  };
  device.queue.writeBuffer(buffers.scratch!, 0, inv.lse.buffer, inv.lse.byteOffset, rows * 4);
  device.pushErrorScope("validation");
  const bound = passes.map((ps) => {
    const name = a.passes.find((x) => x.entry === ps.entry)!.name;
    const bindGroup = device.createBindGroup({
      layout: ps.layout,
      entries: ps.bindings.map((b) => {
        const buffer = buffers[b];
        if (!buffer) throw new FlexAttnError(`WGSL backward: pass ${name} binds ${b}, which this call has none of`);
        return { binding: BACKWARD_BINDING[b], resource: { buffer, ...(b === "params" ? { size: BACKWARD_PARAMS_BYTES } : {}) } };
      }),
    });
    return { pipeline: ps.pipeline, bindGroup, grid: grids[name] };
  });
  const bindError = await device.popErrorScope();
  if (bindError) throw new FlexAttnError(`WGSL backward binding failed: ${bindError.message}`);
  const encode = (pass: GPUComputePassEncoder) => {
    for (const b of bound) {
      pass.setPipeline(b.pipeline);
      pass.setBindGroup(0, b.bindGroup);
      pass.dispatchWorkgroups(...b.grid);
    }
  };
  const run = async () => {
    device.pushErrorScope("validation");
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    encode(pass);
    pass.end();
    const readDq = readBack(pool, "readDq", enc, buffers.dq!, 0, dqWords * 4);
    const readDkv = readBack(pool, "readDkv", enc, buffers.dkv!, 0, (dkWords + dvWords) * 4);
    const readGrads = readBack(pool, "readGrads", enc, buffers.scratch!, scratch.grads * 4, G * 4);
    device.queue.submit([enc.finish()]);
    const err = await device.popErrorScope();
    if (err) throw new FlexAttnError(`WGSL backward dispatch failed: ${err.message}`);
    const gs = inv.gradStrides;
    await readDq((data) => scatterGradient(new Float32Array(data, 0, dqWords), inv.dq, gs.dq, [p.batch, p.qHeads, p.qLen, p.qkHeadDim], p.dtype));
    await readDkv((data) => {
      const dkv = new Float32Array(data, 0, dkWords + dvWords);
      scatterGradient(dkv.subarray(0, dkWords), inv.dk, gs.dk, [p.batch, p.kvHeads, p.kvLen, p.qkHeadDim], p.dtype);
      scatterGradient(dkv.subarray(dkWords), inv.dv, gs.dv, [p.batch, p.kvHeads, p.kvLen, p.vHeadDim], p.dtype);
    });
    const { offsets } = gradBufferOffsets(backwardMods(inv.score));
    await readGrads((data) => {
      const grads = new Float32Array(data, 0, G);
      for (const [k, d] of inv.dBuffers.entries()) d.set(grads.subarray(offsets[k], offsets[k] + d.length));
    });
  };
  return { artifact: a, device: dev, encode, run };
}


