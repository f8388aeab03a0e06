/**
 * GPU timing of a prepared kernel: per-dispatch GPU time from `timestamp-query` where the
 * device has it (Dawn in Node is created with timestamp quantization off), else wall-clock
 * time of a batch of dispatches divided by their number.
 */
import type { FlexDevice } from "./device.js";

/** Anything that records its dispatches into a compute pass: a prepared forward (prepareWgsl) or backward (prepareWgslBackward). */
export interface Encodable {
  readonly device: FlexDevice;
  encode(pass: GPUComputePassEncoder): void;
}

export interface TimingOptions {
  /** Timed dispatches (default 20) after at least `warmup` untimed ones (default 3) and `warmupMs` (default 200 ms, so clocks ramp up). */
  iterations?: number;
  warmup?: number;
  warmupMs?: number;
  /** Force wall-clock timing even when timestamp queries exist. */
  wallClock?: boolean;
  /**
   * The timed block is repeated until two consecutive medians agree within `settleTolerance`
   * (default 0.03), at most `maxRounds` times (default 5). GPU clocks can still be ramping
   * after the warmup: on the H200 a block timed during the ramp read 2–4× slow
   * (apps/bench/results/wgsl-h200.md). A pipeline created moments before can also time 1.3–5×
   * slow, steadily over several rounds, then run at full speed when timed again (call 24 there):
   * for steady-state figures of a new pipeline, call timeWgsl twice and keep the second.
   */
  maxRounds?: number;
  settleTolerance?: number;
}

export interface TimingResult {
  /** Median milliseconds per dispatch (of the last round). */
  medianMs: number;
  minMs: number;
  samplesMs: number[];
  method: "timestamp-query" | "wall-clock";
  /** Timed rounds it took for the median to settle (maxRounds when it never did). */
  rounds: number;
}

/** Time a prepared kernel (all of its dispatches) on its device (see TimingOptions). */
export async function timeWgsl(k: Encodable, o: TimingOptions = {}): Promise<TimingResult> {
  const { device } = k.device;
  const iterations = o.iterations ?? 20;
  const warmup = o.warmup ?? 3;
  const submit = async (n: number) => {
    const enc = device.createCommandEncoder();
    for (let i = 0; i < n; i++) {
      const pass = enc.beginComputePass();
      k.encode(pass);
      pass.end();
    }
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  const t0 = performance.now();
  for (let done = 0; done < warmup || performance.now() - t0 < (o.warmupMs ?? 200); done++) await submit(1);
  const useTimestamps = device.features.has("timestamp-query") && !o.wallClock;
  const maxRounds = Math.max(1, o.maxRounds ?? 5);
  const tolerance = o.settleTolerance ?? 0.03;
  let last: TimingResult | null = null;
  for (let round = 1; round <= maxRounds; round++) {
    const gpuTimes = useTimestamps ? await timestampBlock(k, iterations) : null;
    const result = gpuTimes
      ? summarize(gpuTimes, "timestamp-query", round)
      : summarize(await wallClockBlock(submit, iterations), "wall-clock", round);
    if (last && Math.abs(result.medianMs - last.medianMs) <= tolerance * last.medianMs) return result;
    last = result;
  }
  return last!;
}

/** Per-dispatch GPU times of `iterations` back-to-back dispatches; null if the device returned zeros. */
async function timestampBlock(k: Encodable, iterations: number): Promise<number[] | null> {
  const { device } = k.device;
  const querySet = device.createQuerySet({ type: "timestamp", count: 2 * iterations });
  const resolve = device.createBuffer({ size: 16 * iterations, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 16 * iterations, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  for (let i = 0; i < iterations; i++) {
    const pass = enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
    k.encode(pass);
    pass.end();
  }
  enc.resolveQuerySet(querySet, 0, 2 * iterations, resolve, 0);
  enc.copyBufferToBuffer(resolve, 0, read, 0, read.size);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const ts = new BigUint64Array(read.getMappedRange().slice(0));
  read.unmap();
  read.destroy();
  resolve.destroy();
  querySet.destroy();
  const samples = Array.from({ length: iterations }, (_, i) => Number(ts[2 * i + 1] - ts[2 * i]) / 1e6);
  return samples.every((x) => x > 0) ? samples : null;
}

/** Batches of dispatches amortize the submit latency; 5 batches give a median. */
async function wallClockBlock(submit: (n: number) => Promise<void>, iterations: number): Promise<number[]> {
  const samples: number[] = [];
  const per = Math.max(1, Math.floor(iterations / 5));
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    await submit(per);
    samples.push((performance.now() - t0) / per);
  }
  return samples;
}

function summarize(samples: number[], method: TimingResult["method"], rounds: number): TimingResult {
  const sorted = [...samples].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)], minMs: sorted[0], samplesMs: [...samples], method, rounds };
}
