/**
 * Generates the CUDA device harness input: for every conformance case the .cu our CUDA backend
 * emits, and a JSON with the inputs, tables, captured buffers (by ABI name) and the float64
 * reference. Usage: npx tsx apps/bench/src/cuda-generate.ts [--seed N]
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CONFORMANCE_CASES, capturedBuffers, instantiateCase, launchGrid, makeSpec } from "@flexattn/template";
import { cudaBackend } from "@flexattn/codegen-cuda";
import { b64, invocationJson } from "./device-export.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "device", "cuda", "generated");
const args = process.argv.slice(2);
const seed = args.includes("--seed") ? Number(args[args.indexOf("--seed") + 1]) : Date.now() & 0x7fffffff;

rmSync(ROOT, { recursive: true, force: true });
mkdirSync(ROOT, { recursive: true });
const index: { name: string; file: string }[] = [];
CONFORMANCE_CASES.forEach((cs, i) => {
  const inst = instantiateCase(cs, seed + i);
  const p = inst.problem;
  const config = cudaBackend.configCandidates(p, cs.blockSize, { mask: null, score: null })[0];
  const spec = makeSpec({
    mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype,
    returnLse: p.returnLse, sparseBlock: cs.blockSize, config,
  });
  const artifact = cudaBackend.generate(spec);
  const file = `${String(i).padStart(2, "0")}_${cs.name.replace(/[^A-Za-z0-9]+/g, "_")}`;
  writeFileSync(join(ROOT, `${file}.cu`), artifact.source);
  const buffers = capturedBuffers(spec).map((b) => {
    const s = b.graph.buffers[b.slot];
    return { name: b.name, dtype: s.dtype, shape: s.shape, data: b64(s.data!) };
  });
  writeFileSync(
    join(ROOT, `${file}.json`),
    JSON.stringify({
      name: cs.name, seed: inst.seed, entry: artifact.entry, threads: artifact.launch.threadsPerProgram,
      grid: launchGrid(spec, p), abi: artifact.abi, buffers, ...invocationJson(inst),
    }),
  );
  index.push({ name: cs.name, file });
});
writeFileSync(join(ROOT, "index.json"), JSON.stringify(index, null, 1));
console.log(`cuda: ${index.length} conformance kernels → ${ROOT}`);
