/**
 * softcap-causal on the H100 through WGSL, f32, d = 64, N = 4096, B = 4, H = 16, with the
 * protocol config and the two tanh renderings ("guarded" builtin vs 1 − 2/(exp(2x) + 1)), beside
 * causal as a control. Run with apps/bench/device/wgsl/run-tanh-probe.sh on the GPU machine.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { traceScoreMod } from "@flexattn/ir";
import { causal, softcap } from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import { type KernelConfig, type KernelInvocation, defaultStrides, resolveProblem } from "@flexattn/template";
import { type DawnBackend, prepareWgsl, requestFlexDevice, timeWgsl } from "@flexattn/webgpu";

const { values: args } = parseArgs({ options: { out: { type: "string", default: "." }, backend: { type: "string", default: "vulkan" }, n: { type: "string", default: "4096" } } });
const n = Number(args.n);
const B = 16384 / n;
const H = 16;
const d = 64;
const problem = resolveProblem({ batch: B, qHeads: H, kvHeads: H, qLen: n, kvLen: n, qkHeadDim: d, vHeadDim: d, dtype: "f32" });
const size = B * H * n * d;
const rand = (seed: number) => {
  let s = seed >>> 0;
  return Float32Array.from({ length: size }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 4 - 2);
};
const strides = defaultStrides(problem);
const tensorOf = (data: Float32Array, st: readonly number[]) => ({ data, shape: [B, H, n, d], dtype: "f32" as const, strides: st });
const blockMask = createBlockMask(causal(), { qLen: n, kvLen: n });
const density = blockMask.density();
const q = tensorOf(rand(1), strides.q);
const k = tensorOf(rand(2), strides.k);
const v = tensorOf(rand(3), strides.v);

const dev = await requestFlexDevice({ backend: args.backend as DawnBackend });
const config = (tanh: string): KernelConfig => ({
  blockM: 128, blockN: 32, numWarps: 8, numStages: 1, prescaleQk: false,
  options: { rowsPerThread: 4, workgroupSize: 256, vec4: true, qGlobal: true, subgroups: dev.features.has("subgroups"), prefetchV: false, tanh },
});
const rows: Record<string, unknown>[] = [];
const outs: Record<string, Float32Array> = {};
for (const [name, score, tanh] of [["causal", null, "guarded"], ["softcap-causal", softcap(30), "guarded"], ["softcap-causal", softcap(30), "exp"]] as const) {
  const inv: KernelInvocation = {
    problem, strides, q, k, v, mask: blockMask.maskGraph!, score: score ? traceScoreMod(score) : null, blockMask,
    out: new Float32Array(size), lse: new Float32Array(B * H * n),
  };
  const prepared = await prepareWgsl(inv, { device: dev, config: config(tanh) });
  await prepared.run();
  outs[`${name}/${tanh}`] = Float32Array.from(inv.out as Float32Array);
  const t = await timeWgsl(prepared, { iterations: 10, warmup: 2 });
  const tflops = (4 * B * H * n * n * d * density) / (t.medianMs * 1e-3) / 1e12;
  rows.push({ variant: name, tanh, n, batch: B, heads: H, d, density, ms: t.medianMs, tflops, method: t.method });
  console.log(name, tanh, t.medianMs.toFixed(3), "ms", tflops.toFixed(2), "TFLOP/s");
}
let diff = 0;
const a = outs["softcap-causal/guarded"];
const b = outs["softcap-causal/exp"];
for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
console.log("max |guarded - exp| over the softcap output:", diff);
writeFileSync(`${args.out}/wgsl-tanh-probe.json`, JSON.stringify({ device: dev.description, command: process.argv.join(" "), rows, maxAbsDiffGuardedVsExp: diff }, null, 1));
