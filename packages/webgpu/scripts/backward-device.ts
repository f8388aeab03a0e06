/**
 * The WGSL backward on a GPU machine (Dawn; Vulkan there): the backward conformance suite, bitwise
 * determinism of a bias table's gradient, wall times of the forward and the backward (upload and
 * readback included) and the backward's GPU time alone (timestamp queries) on causal attention with
 * a learnable [2N − 1] relative-position bias, and with the same bias computed from q − kv (no
 * buffer, so no buffer gradient): the difference is what deterministic buffer gradients cost.
 * Writes `backward-device.json` to --out; `--timings-only` leaves out the conformance suite and the
 * determinism check.
 *
 *   FLEXATTN_WEBGPU_BACKEND=opengles npx tsx packages/webgpu/scripts/backward-device.ts --quick --out /tmp/b   # here, llvmpipe
 *
 * On the device it runs bundled (packages/webgpu/README.md, "The backward on a GPU machine").
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buffer, toF32, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { causal } from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import { medianWallMs } from "@flexattn/autotune";
import {
  BACKWARD_CASES, type BackwardInvocation, type KernelConfig, type KernelInvocation, backwardMods, contiguousStrides, instantiateBackwardCase, mulberry32, randomNormal,
  resolveProblem, runBackwardConformance,
} from "@flexattn/template";
import { prepareWgslBackward, requestFlexDevice, runWgsl, runWgslBackward, timeWgsl } from "../src/index.js";

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = args.includes("--quick");
const outDir = arg("--out") ?? ".";

/** Causal attention with a relative-position bias, learnable (a table) or computed: forward and backward invocations. */
function biasProblem(n: number, heads: number, d: number, seed: number, learnable: boolean): { fwd: KernelInvocation; bwd: BackwardInvocation } {
  const rand = mulberry32(seed);
  const table = buffer(randomNormal(2 * n - 1, rand), { name: "relBias" });
  const score = learnable
    ? traceScoreMod((s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(n - 1))))
    : traceScoreMod((s, _b, _h, q, kv) => s.add(toF32(q.sub(kv)).mul(-0.01)));
  const mask = traceMaskMod(causal());
  const blockMask = createBlockMask(causal(), { qLen: n, kvLen: n, blockSize: 128 });
  const problem = resolveProblem({ batch: 1, qHeads: heads, kvHeads: heads, qLen: n, kvLen: n, qkHeadDim: d, vHeadDim: d, dtype: "f32", returnLse: true });
  const shape = [1, heads, n, d];
  const strides = contiguousStrides(shape);
  const t = () => ({ data: randomNormal(heads * n * d, rand), shape, dtype: "f32" as const, strides });
  const [q, k, v, dOut] = [t(), t(), t(), t()];
  const fwd: KernelInvocation = {
    problem, strides: { q: strides, k: strides, v: strides, out: strides }, q, k, v, mask, score, blockMask,
    out: new Float32Array(heads * n * d), lse: new Float32Array(heads * n),
  };
  const bwd: BackwardInvocation = {
    ...fwd, dOut, dq: new Float32Array(heads * n * d), dk: new Float32Array(heads * n * d), dv: new Float32Array(heads * n * d),
    gradStrides: { dq: strides, dk: strides, dv: strides },
    dBuffers: backwardMods(score).gradBuffers.map((g) => new Float32Array(g.size)),
  };
  return { fwd, bwd };
}

const dev = await requestFlexDevice();
const report: Record<string, unknown> = { device: dev.description, backend: dev.backend, limits: dev.limits };
console.log(`device: ${dev.description}`);

if (args.includes("--timings-only")) {
  console.log("--timings-only: conformance and determinism left out");
} else {
  const conformance = await runBackwardConformance((inst) => runWgslBackward(inst, { device: dev }).then(() => undefined), { tolerance: { f32: 1e-5 } });
  report.conformance = conformance.map((r) => ({ name: r.name, seed: r.seed, pass: r.pass, message: r.message, errors: r.errors }));
  console.log(`backward conformance: ${conformance.filter((r) => r.pass).length}/${conformance.length} pass`);
  for (const r of conformance.filter((x) => !x.pass)) console.log(`  FAIL ${r.name} (seed ${r.seed}): ${r.message}`);

  const cs = BACKWARD_CASES.find((c) => c.name === "learnable-head-buckets-bias")!;
  const [a, b] = [instantiateBackwardCase(cs, 99), instantiateBackwardCase(cs, 99)];
  await runWgslBackward(a, { device: dev });
  await runWgslBackward(b, { device: dev });
  const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
  report.deterministic = JSON.stringify(bits(a.dBuffers[0])) === JSON.stringify(bits(b.dBuffers[0]));
  console.log(`buffer gradient bitwise identical over two runs: ${report.deterministic}`);
}

const timings: unknown[] = [];
for (const n of quick ? [128] : [1024, 4096])
  for (const d of quick ? [32] : [64, 128]) {
    // The learnable table's resolved config for both, so the two backward times differ only by the mod.
    let config: KernelConfig | undefined;
    for (const learnable of [true, false]) {
      const heads = quick ? 2 : 8;
      const { fwd, bwd } = biasProblem(n, heads, d, n + d, learnable);
      await runWgsl(fwd, { device: dev });
      const inv = { ...bwd, out: fwd.out, lse: fwd.lse };
      const forwardMs = await medianWallMs(3, () => runWgsl(fwd, { device: dev }));
      const backwardMs = await medianWallMs(3, async () => {
        config = (await runWgslBackward(inv, { device: dev, config })).artifact.config;
      });
      // The backward's GPU time alone: its passes dispatched back to back (timestamp queries where the device has them).
      const kernel = await timeWgsl(await prepareWgslBackward(inv, { device: dev, config }));
      const mod = learnable ? "causal + learnable relative bias [2N-1] (buffer gradient)" : "causal + computed relative bias (no buffer gradient)";
      const row = { n, d, heads, mod, forwardMs, backwardMs, backwardKernelMs: kernel.medianMs, kernelTiming: kernel.method, backwardConfig: config };
      timings.push(row);
      console.log(JSON.stringify(row));
    }
  }
report.timings = timings;
report.timingNote = "forwardMs / backwardMs: wall time per call (upload, dispatch, readback), median of 3 after one warm-up; " +
  "backwardKernelMs: the backward's passes alone on the GPU (timeWgsl: median per dispatch, kernelTiming says how)";

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "backward-device.json"), JSON.stringify(report, null, 2));
console.log(`wrote ${join(outDir, "backward-device.json")}`);
process.exit(0);
