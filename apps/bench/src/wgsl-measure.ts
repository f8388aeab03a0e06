/**
 * Measuring one WGSL benchmark case through the public API (wgsl-bench.ts runs the protocol):
 * flexAttention as a user calls it, and the kernel that call ran, timed alone.
 */
import {
  type BackendChoice, type KernelArtifact, type LastRun, type PreparedCall, compile, compileCacheStats, describeConfig, findExecutor,
  flexAttention, getBackend, lastFlexAttentionRun, prepareCall,
} from "flexattn";
import { type FlexDevice, defaultFlexDevice, prepareWgsl, timeWgsl } from "@flexattn/webgpu";
import { type Case, type PublicCall, publicCall, spotCheck } from "./wgsl-cases.js";
import { median } from "@flexattn/autotune";

const flopsOf = (c: Case, density: number) => 4 * c.batch * c.heads * c.n * c.n * c.d * density;

/**
 * The artifact a flexAttention call just ran, from the public API: compile() with the config
 * lastFlexAttentionRun() reports must serve it from its cache (nothing generated), so a kernel
 * flexAttention did not run is never timed.
 */
export function artifactRun(call: PublicCall, prepared: PreparedCall, run: LastRun): KernelArtifact {
  if (!run.config) throw new Error("lastFlexAttentionRun() reports no config: the bench cannot tell which kernel ran");
  const before = compileCacheStats().generated;
  const artifact = compile(call.options, prepared.problem, { backend: "wgsl", config: run.config });
  if (compileCacheStats().generated !== before) {
    throw new Error(`compile() with the config flexAttention reported (${describeConfig(run.config)}) generated a new kernel: not the one that ran`);
  }
  return artifact;
}

export interface Row extends Case {
  density: number;
  /** lastFlexAttentionRun() after the case's calls (fellBack null when it did not fall back). */
  run: { backend: LastRun["backend"]; device: string; fellBack: string | null; configSource: string | null };
  config?: string;
  kernelMs?: number;
  tflops?: number;
  method?: string;
  rounds?: number;
  firstCallMs: number;
  callMs: number;
  callTflops: number;
  spotError: number;
}

export interface MeasureOptions {
  backend: BackendChoice;
  /** Timed flexAttention calls after the first (which compiles). */
  calls: number;
  /** Dispatches per timed block of the kernel. */
  iterations?: number;
}

/**
 * One case as a user runs it: flexAttention's output spot-checked, its call timed, and, where it
 * ran on WGSL, the kernel it ran timed alone.
 */
export async function measureCase(c: Case, o: MeasureOptions): Promise<Row> {
  const call = publicCall(c);
  const density = call.blockMask.density();
  const options = { ...call.options, backend: o.backend };
  const t0 = performance.now();
  const out = await flexAttention(call.q, call.k, call.v, options);
  const firstCallMs = performance.now() - t0;
  const prepared = prepareCall(call.q, call.k, call.v, options);
  prepared.invocation.out.set(out.data);
  const spotError = spotCheck(prepared.invocation);
  const callTimes: number[] = [];
  for (let i = 0; i < o.calls; i++) {
    const t = performance.now();
    await flexAttention(call.q, call.k, call.v, options);
    callTimes.push(performance.now() - t);
  }
  const last = lastFlexAttentionRun()!;
  const run = { backend: last.backend, device: last.device, fellBack: last.fellBack ?? null, configSource: last.configSource ?? null };
  const callMs = median(callTimes);
  const row: Row = { ...c, density, run, firstCallMs, callMs, callTflops: flopsOf(c, density) / (callMs * 1e-3) / 1e12, spotError };
  if (run.backend !== "wgsl") return row;
  const artifact = artifactRun(call, prepared, last);
  const dev = await defaultFlexDevice();
  if (run.device !== `WebGPU: ${dev.description}`) throw new Error(`flexAttention ran on ${run.device}, the timer has ${dev.description}`);
  const kernel = await prepareWgsl(prepared.invocation, { device: dev, artifact });
  // The first timed block of a pipeline can still run slow (timing.ts): keep the second.
  const timing = { iterations: o.iterations ?? 10, warmup: 2, warmupMs: 300 };
  await timeWgsl(kernel, timing);
  const t = await timeWgsl(kernel, timing);
  return {
    ...row, config: describeConfig(artifact.config), kernelMs: t.medianMs, tflops: flopsOf(c, density) / (t.medianMs * 1e-3) / 1e12,
    method: t.method, rounds: t.rounds,
  };
}

/** Research: the backend's first K declared candidates for a case on this device, each prepared, spot-checked and timed. */
export async function researchSweep(dev: FlexDevice, c: Case, k: number, log: (...x: unknown[]) => void) {
  const call = publicCall(c);
  const density = call.blockMask.density();
  const prepared = prepareCall(call.q, call.k, call.v, call.options);
  const inv = prepared.invocation;
  const executor = await findExecutor("wgsl");
  if (!executor) throw new Error("--research-sweep needs the WGSL executor");
  const candidates = getBackend("wgsl")
    .configCandidates(prepared.problem, prepared.sparseBlock, { mask: prepared.mask, score: prepared.score }, executor.target(inv))
    .slice(0, k);
  const rows = [];
  for (const config of candidates) {
    const label = describeConfig(config);
    try {
      const kernel = await prepareWgsl(inv, { device: dev, config });
      inv.out.fill(Number.NaN);
      await kernel.run();
      const spotError = spotCheck(inv);
      await timeWgsl(kernel, { iterations: 5, warmup: 2, warmupMs: 300 });
      const t = await timeWgsl(kernel, { iterations: 5, warmup: 2, warmupMs: 300 });
      const tflops = flopsOf(c, density) / (t.medianMs * 1e-3) / 1e12;
      rows.push({ ...c, density, config: label, kernelMs: t.medianMs, tflops, spotError });
      log("research", c.variant, c.d, label, tflops.toPrecision(3), "TFLOP/s");
    } catch (e) {
      rows.push({ ...c, density, config: label, failed: (e as Error).message });
      log("research", c.variant, c.d, label, "failed:", (e as Error).message);
    }
  }
  return rows;
}

