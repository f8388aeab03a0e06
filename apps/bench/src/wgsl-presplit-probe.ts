/**
 * Research harness (GPU machine): does reading K and V already split into f16 hi/lo planes, straight
 * from global memory (the codegen option presplitKV), beat the library's subgroupMatrix kernel,
 * which stages and splits every K/V tile in workgroup memory behind four barriers per tile? The
 * question is noop at head dim 64, where the per-tile fixed cost keeps the kernel at ~2.1× flex
 * (results/wgsl-h200.md, call 25).
 *
 * Per case (noop and causal, d = 64 and 128, N = 4096, batch·N = 16384, 16 heads) and per device
 * (Dawn's robustness on, off): the library default kernel, then presplitKV kernels, whose K and V
 * come from a split pass on the GPU (SPLIT_SHADER, timed on its own; its output read back and
 * uploaded as the kernel's k/v). Each presplit output is compared with the library kernel's and
 * spot-checked against float64. Every pipeline is timed twice, the second figure kept (timeWgsl).
 *
 *   node wgsl-presplit-probe.mjs --out DIR     (bundled like wgsl-bench, see device/wgsl/README.md)
 *   node wgsl-presplit-probe.mjs --check       (Dawn's null backend: every shader compiles; no GPU)
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { presplitLayout } from "@flexattn/codegen-wgsl";
import type { KernelConfig, KernelInvocation } from "@flexattn/template";
import {
  artifactFor, DAWN_SUBGROUP_MATRIX_OPTIONS, type FlexDevice, type PreparedWgsl, prepareWgsl, requestFlexDevice, timeWgsl,
} from "@flexattn/webgpu";
import { invocation, spotCheck } from "./wgsl-cases.js";

const { values: args } = parseArgs({
  options: {
    out: { type: "string", default: "presplit-out" },
    n: { type: "string", default: "4096" },
    check: { type: "boolean", default: false },
  },
});
const log = (...x: unknown[]) => console.log(new Date().toISOString().slice(11, 23), ...x);

/** f32 [B·H][keys][dim] → per (b, h): hi plane, lo plane, each [keys padded][dim] f16 (presplitLayout). */
const SPLIT_SHADER = `
struct Split { keys: u32, padded: u32, dim4: u32, _pad: u32 }
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec2<u32>>;
@group(0) @binding(2) var<uniform> S: Split;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;  // vec4 index within the head's padded plane
  if (i >= S.padded * S.dim4) { return; }
  let bh = id.y + id.z * 65535u;
  var x = vec4<f32>(0.0f);
  if (i / S.dim4 < S.keys) { x = src[bh * S.keys * S.dim4 + i]; }
  // hi keeps the top 11 significant bits (exact in f16); lo = x - hi, rounded to f16.
  let h = bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) & vec4<u32>(0xffffe000u));
  let l = x - h;
  let plane = S.padded * S.dim4;
  dst[bh * 2u * plane + i] = vec2<u32>(pack2x16float(h.xy), pack2x16float(h.zw));
  dst[bh * 2u * plane + plane + i] = vec2<u32>(pack2x16float(l.xy), pack2x16float(l.zw));
}`;

/** The split pass on one device: split(data) → presplit halves (as the bytes of a Float32Array), and a timer. */
function splitter(dev: FlexDevice) {
  const { device } = dev;
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code: SPLIT_SHADER }), entryPoint: "main" } });
  const buffer = (size: number, usage: number) => device.createBuffer({ size: Math.ceil(size / 16) * 16, usage });
  return (data: Float32Array, heads: number, keys: number, dim: number) => {
    const { paddedKeys, head } = presplitLayout(keys, dim);
    const src = buffer(data.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    device.queue.writeBuffer(src, 0, data);
    const dstBytes = heads * head * 2;
    const dst = buffer(dstBytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const uniform = buffer(16, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    device.queue.writeBuffer(uniform, 0, new Uint32Array([keys, paddedKeys, dim / 4, 0]));
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [src, dst, uniform].map((b, binding) => ({ binding, resource: { buffer: b } })),
    });
    const grid: [number, number, number] = [Math.ceil((paddedKeys * dim) / 4 / 256), Math.min(heads, 65535), Math.ceil(heads / 65535)];
    const encode = (pass: GPUComputePassEncoder) => {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(...grid);
    };
    const read = async (): Promise<Float32Array> => {
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      encode(pass);
      pass.end();
      const back = buffer(dstBytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
      enc.copyBufferToBuffer(dst, 0, back, 0, back.size);
      device.queue.submit([enc.finish()]);
      await back.mapAsync(GPUMapMode.READ);
      const out = new Float32Array(back.getMappedRange().slice(0, dstBytes));
      back.unmap();
      back.destroy();
      return out;
    };
    const time = async () => {
      const fake = { device: dev, encode } as unknown as PreparedWgsl;
      await timeWgsl(fake, { iterations: 20 });
      return (await timeWgsl(fake, { iterations: 20 })).medianMs;
    };
    const destroy = () => [src, dst, uniform].forEach((b) => b.destroy());
    return { read, time, destroy };
  };
}

const LIBRARY = "library default";
const PRESPLIT: { name: string; blockN: number }[] = [
  { name: "presplitKV 128x16 T256", blockN: 16 },
  { name: "presplitKV 128x32 T256", blockN: 32 },
];
const presplitConfig = (blockN: number): KernelConfig => ({
  blockM: 128, blockN, numWarps: 8, numStages: 1, prescaleQk: false,
  options: { subgroupMatrix: true, workgroupSize: 256, vec4: true, presplitKV: true },
});

const maxDiff = (a: Float32Array, b: Float32Array) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Number.isNaN(a[i]) ? Infinity : Math.abs(a[i] - b[i]));
  return m;
};

async function check() {
  const dev = await requestFlexDevice({ backend: "null", dawnOptions: DAWN_SUBGROUP_MATRIX_OPTIONS });
  const limits = { ...dev.limits, maxComputeWorkgroupStorageSize: 49152, subgroupMatrix: true };
  const sources: [string, string][] = [["split pass", SPLIT_SHADER]];
  for (const d of [64, 128]) {
    for (const variant of ["noop", "causal"] as const) {
      const { inv } = invocation({ variant, n: 256, batch: 1, heads: 1, d });
      for (const p of PRESPLIT) sources.push([`${p.name} ${variant} d=${d}`, artifactFor(inv, { ...dev, limits }, { config: presplitConfig(p.blockN) }).source]);
    }
  }
  let failed = 0;
  for (const [name, code] of sources) {
    const info = await dev.device.createShaderModule({ code }).getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error").map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
    if (errors.length) failed++;
    log(name.padEnd(40), errors.length ? errors.slice(0, 3).join(" | ") : "compiles");
  }
  if (failed) throw new Error(`${failed} shader(s) do not compile`);
}

async function main() {
  if (args.check) return check();
  const N = Number(args.n);
  const [B, H] = [16384 / N, 16];
  const rows: Record<string, unknown>[] = [];
  const devices: [string, readonly string[]][] = [
    ["robustness on", DAWN_SUBGROUP_MATRIX_OPTIONS],
    ["robustness off", [`${DAWN_SUBGROUP_MATRIX_OPTIONS[0]},disable_robustness`]],
  ];
  let description = "";
  for (const [robustness, dawnOptions] of devices) {
    const dev = await requestFlexDevice({ backend: "vulkan", dawnOptions });
    description = dev.description;
    const split = splitter(dev);
    for (const d of [64, 128]) {
      for (const variant of ["noop", "causal"] as const) {
        const { inv, density } = invocation({ variant, n: N, batch: B, heads: H, d });
        const flops = 4 * B * H * N * N * d * density;
        const figure = async (name: string, prepared: PreparedWgsl, extraMs = 0) => {
          await timeWgsl(prepared, { iterations: 10, warmupMs: 300 });
          const t = await timeWgsl(prepared, { iterations: 10 });
          const ms = t.medianMs + extraMs;
          return { name, robustness, variant, d, n: N, ms, kernelMs: t.medianMs, tflops: flops / (ms * 1e-3) / 1e12, rounds: t.rounds };
        };
        const library = await prepareWgsl(inv, { device: dev });
        await library.run(); // spot-checked against float64 on its first run (verify "auto")
        const ref = Float32Array.from(inv.out as Float32Array);
        const row = { ...(await figure(`${LIBRARY} ${JSON.stringify(library.artifact.config.options)}`, library)), spotError: spotCheck(inv) };
        rows.push(row);
        log(robustness, variant, `d=${d}`, row.name.padEnd(60), row.ms.toFixed(3), "ms", row.tflops.toFixed(2), "TFLOP/s");

        const k = split(inv.k.data as Float32Array, B * H, N, d);
        const v = split(inv.v.data as Float32Array, B * H, N, d);
        const splitMs = (await k.time()) + (await v.time());
        const pre: KernelInvocation = { ...inv, k: { ...inv.k, data: await k.read() }, v: { ...inv.v, data: await v.read() } };
        k.destroy();
        v.destroy();
        for (const p of PRESPLIT) {
          try {
            const artifact = artifactFor(pre, dev, { config: presplitConfig(p.blockN) });
            const prepared = await prepareWgsl(pre, { device: dev, artifact, kvPresplit: true });
            (inv.out as Float32Array).fill(Number.NaN);
            await prepared.run();
            const out = Float32Array.from(inv.out as Float32Array);
            const r = { ...(await figure(p.name, prepared, splitMs)), splitMs, maxDiffVsLibrary: maxDiff(out, ref), spotError: spotCheck(inv) };
            rows.push(r);
            log(robustness, variant, `d=${d}`, p.name.padEnd(60), r.ms.toFixed(3), "ms", r.tflops.toFixed(2), "TFLOP/s",
              `(kernel ${r.kernelMs.toFixed(3)} + split ${splitMs.toFixed(3)} ms)`, "vs library", r.maxDiffVsLibrary.toExponential(2), "spot", r.spotError.toExponential(2));
          } catch (e) {
            log(robustness, variant, `d=${d}`, p.name, "failed:", String(e).slice(0, 400));
            rows.push({ name: p.name, robustness, variant, d, error: String(e).slice(0, 2000) });
          }
        }
      }
    }
    dev.device.destroy();
  }
  writeFileSync(join(args.out!, "presplit.json"), JSON.stringify({ command: process.argv.slice(1).join(" "), device: description, n: N, batch: B, heads: H, rows }, null, 1));
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
