/** Probe: where a warm flexAttention WGSL call spends its time (one-off; leaves the tree). */
import { flexAttention, prepareCall, lastFlexAttentionRun } from "flexattn";
import { defaultFlexDevice, poolFor, prepareWgsl } from "@flexattn/webgpu";
import { publicCall } from "./wgsl-cases.js";
import { writeFileSync } from "node:fs";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const out: Record<string, unknown>[] = [];
const log = (r: Record<string, unknown>) => { console.log(JSON.stringify(r)); out.push(r); };
const quick = process.argv.includes("--quick");
const dev = await defaultFlexDevice();
const device = dev.device;
console.log("device", dev.description);

async function timed(f: () => unknown, n = 5): Promise<number> {
  await f();
  const t: number[] = [];
  for (let i = 0; i < n; i++) { const t0 = performance.now(); await f(); t.push(performance.now() - t0); }
  return median(t);
}

let last: unknown;
// Latency of an empty round trip and bandwidth of writeBuffer / mapAsync alone.
log({ what: "onSubmittedWorkDone empty", ms: await timed(() => device.queue.onSubmittedWorkDone()) });
for (const mb of quick ? [1, 8] : process.env.NO_BW ? [] : [1, 16, 64, 256]) {
  const bytes = mb << 20;
  const src = new Float32Array(bytes / 4).fill(1);
  const buf = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
  const wb = await timed(() => { device.queue.writeBuffer(buf, 0, src); });
  const wbDone = await timed(async () => { device.queue.writeBuffer(buf, 0, src); await device.queue.onSubmittedWorkDone(); });
  // Upload through a buffer mapped at creation, then a GPU copy.
  const viaMapped = await timed(async () => {
    try {
    const up = device.createBuffer({ size: bytes, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Float32Array(up.getMappedRange()).set(src); up.unmap();
    const e = device.createCommandEncoder(); e.copyBufferToBuffer(up, 0, buf, 0, bytes); device.queue.submit([e.finish()]);
    await device.queue.onSubmittedWorkDone(); up.destroy();
    } catch (e) { last = String(e); }
  });
  // Upload through a pooled MAP_WRITE buffer (mapped again each call), then a GPU copy.
  const stageW = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC });
  let pooledSplit: unknown;
  const viaPooled = await timed(async () => {
    const t0 = performance.now(); await stageW.mapAsync(GPUMapMode.WRITE); const m = performance.now() - t0;
    const t1 = performance.now(); new Float32Array(stageW.getMappedRange()).set(src); stageW.unmap(); const c = performance.now() - t1;
    const t2 = performance.now();
    const e = device.createCommandEncoder(); e.copyBufferToBuffer(stageW, 0, buf, 0, bytes); device.queue.submit([e.finish()]);
    await device.queue.onSubmittedWorkDone(); pooledSplit = { m, c, copyDone: performance.now() - t2 };
  });
  const host = new Float32Array(bytes / 4);
  const hostCopy = await timed(() => { host.set(src); });
  log({ what: "upload variants", mb, pooledStagingMs: viaPooled, pooledSplit, hostMemcpyMs: hostCopy });
  stageW.destroy();
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const dst = new Float32Array(bytes / 4);
  const rb = await timed(async () => {
    const e = device.createCommandEncoder(); e.copyBufferToBuffer(buf, 0, staging, 0, bytes); device.queue.submit([e.finish()]);
    await staging.mapAsync(GPUMapMode.READ); dst.set(new Float32Array(staging.getMappedRange())); staging.unmap();
  });
  const rbMapOnly = await timed(async () => {
    const e = device.createCommandEncoder(); e.copyBufferToBuffer(buf, 0, staging, 0, bytes); device.queue.submit([e.finish()]);
    await device.queue.onSubmittedWorkDone();
    const t0 = performance.now(); await staging.mapAsync(GPUMapMode.READ); const m = performance.now() - t0;
    const t1 = performance.now(); const r = staging.getMappedRange(); const g = performance.now() - t1;
    const t2 = performance.now(); dst.set(new Float32Array(r)); const c = performance.now() - t2;
    staging.unmap(); last = { m, g, c };
  });
  log({ what: "bandwidth", mb, writeBufferCallMs: wb, writeBufferDoneMs: wbDone, mappedUploadMs: viaMapped, readBackMs: rb, readBackMs2: rbMapOnly, lastReadSplit: last });
  buf.destroy(); staging.destroy();
}
// A flexAttention call, whole and by phase.
for (const [n, heads, d] of quick ? [[256, 2, 32]] : process.env.SMALL ? [[1024, 8, 64]] : [[1024, 8, 64], [1024, 16 * 16, 64], [4096, 4 * 16, 64], [4096, 4 * 16, 128]]) {
  try {
  const c = { variant: "noop", n, batch: 1, heads, d };
  const call = publicCall(c);
  const whole = await timed(() => flexAttention(call.q, call.k, call.v, call.options));
  const run = lastFlexAttentionRun();
  const prepare = await timed(() => prepareCall(call.q, call.k, call.v, call.options));
  const inv = prepareCall(call.q, call.k, call.v, call.options).invocation;
  const prepWgsl = await timed(() => prepareWgsl(inv, { device: dev }));
  const prepDone = await timed(async () => { await prepareWgsl(inv, { device: dev }); await device.queue.onSubmittedWorkDone(); });
  const kernel = await prepareWgsl(inv, { device: dev });
  const runOnly = await timed(() => kernel.run());
  const dispatchDone = await timed(async () => {
    const e = device.createCommandEncoder(); const p = e.beginComputePass(); kernel.encode(p); p.end(); device.queue.submit([e.finish()]);
    await device.queue.onSubmittedWorkDone();
  });
  const errScope = await timed(async () => { device.pushErrorScope("validation"); await device.popErrorScope(); });
  log({ what: "call", n, heads, d, mbEach: (heads * n * d * 4) / 2 ** 20, backend: run?.backend, config: run?.configSource,
    wholeMs: whole, prepareCallMs: prepare, prepareWgslMs: prepWgsl, prepareWgslDoneMs: prepDone, runMs: runOnly, dispatchDoneMs: dispatchDone, errScopeMs: errScope });
  void poolFor;
  } catch (e) { log({ what: "call failed", n, heads, d, error: String(e) }); }
}
writeFileSync(process.env.OUT ? `${process.env.OUT}/upload-probe.json` : "/tmp/upload-probe.json", JSON.stringify(out, null, 2));
process.exit(0);
