/**
 * `flexattn demo`: document-causal attention with tanh softcapping (Gemma-2 style) over a packed
 * batch of random documents. Shows the BlockMask, runs on the best backend in this process,
 * checks rows against the float64 reference, reports time and effective GFLOP/s, and writes the
 * kernel every backend generates for the same variant.
 */
import { createBlockMask } from "@flexattn/blockmask";
import { documentCausal, randomDocumentIds, softcap } from "@flexattn/masks";
import {
  type BackendName, type BlockMaskTables, type Tensor, referenceAttention, resolveProblem, toFloat32,
} from "@flexattn/template";
import { type BackendChoice, flexAttention, lastFlexAttentionRun } from "./attention.js";
import { compileWithSpec, toScoreGraph } from "./compile.js";
import { findExecutor, listBackends } from "./registry.js";
import { randomTensor } from "./util.js";
import { writeArtifact } from "./files.js";

export interface DemoOptions {
  n: number;
  heads: number;
  docs: number;
  backend: BackendChoice;
  outDir: string;
  /** Where progress goes (stderr by default) and results (stdout). */
  log?: (line: string) => void;
  progress?: (line: string) => void;
}

const D = 64;
const SOFTCAP = 30;
const BLOCK = 128;

/** Query rows [r0, r0 + rows) of a contiguous [B, H, S, D] tensor, as a new contiguous tensor. */
function sliceRows(t: Tensor, r0: number, rows: number): Tensor {
  const [B, H, S, d] = t.shape;
  const src = toFloat32(t.data, t.dtype);
  const out = new Float32Array(B * H * rows * d);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const from = ((b * H + h) * S + r0) * d;
      out.set(src.subarray(from, from + rows * d), (b * H + h) * rows * d);
    }
  return { data: out, shape: [B, H, rows, d], dtype: "f32" };
}

export interface DemoResult {
  /** Whether every backend's output passed the reference check. */
  ok: boolean;
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const log = o.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const progress = o.progress ?? ((l: string) => process.stderr.write(`${l}\n`));
  const t0 = performance.now();
  const { n, heads: H, docs } = o;
  const B = 1;
  log(`flexattn demo — document-causal attention with tanh softcapping (${SOFTCAP}) over ${docs} packed documents`);
  log(`  B=${B}, H=${H}, N=${n}, head dim ${D}, f32\n`);
  log(`  const mask = documentCausal(docIds);                       // kv ≤ q within one document`);
  log(`  const scoreMod = (s, b, h, q, kv) => tanh(s.div(${SOFTCAP})).mul(${SOFTCAP}); // softcap(${SOFTCAP})\n`);

  progress("building the BlockMask…");
  const ids = randomDocumentIds(n, docs, 42);
  const mask = documentCausal(ids);
  const scoreMod = softcap(SOFTCAP);
  let t = performance.now();
  const blockMask = createBlockMask(mask, { qLen: n, kvLen: n, blockSize: BLOCK });
  const buildMs = performance.now() - t;
  log(blockMask.toString({ grid: [16, 32] }));
  const c = blockMask.blockCounts();
  log(
    `sparsity ${blockMask.sparsity().toFixed(1)}%: ${c.full} full + ${c.partial} partial blocks computed of ${c.total} ` +
      `(built in ${buildMs.toFixed(1)} ms, without a dense mask)\n`,
  );

  const q = randomTensor([B, H, n, D], { seed: 1 });
  const k = randomTensor([B, H, n, D], { seed: 2 });
  const v = randomTensor([B, H, n, D], { seed: 3 });
  const flops = 4 * B * H * n * n * D * blockMask.density();

  const runs: { backend: string; device: string; firstMs: number; warmMs: number; out: Tensor }[] = [];
  const timeBackend = async (backend: BackendChoice) => {
    progress(`running flexAttention (backend "${backend}"), first call (generates and compiles the kernel)…`);
    t = performance.now();
    await flexAttention(q, k, v, { scoreMod, blockMask, backend });
    const firstMs = performance.now() - t;
    const first = lastFlexAttentionRun()!;
    progress(`  ${first.backend} on ${first.device}: first call ${(firstMs / 1000).toFixed(1)} s; second call…`);
    t = performance.now();
    const out = await flexAttention(q, k, v, { scoreMod, blockMask, backend });
    const warmMs = performance.now() - t;
    const last = lastFlexAttentionRun()!;
    runs.push({ backend: last.backend, device: last.device, firstMs, warmMs, out });
  };
  await timeBackend(o.backend);
  // Show the other in-process backend alongside: JS next to a GPU, or WGSL on a software
  // adapter that "auto" passed over (so the comparison is visible).
  if (runs[0].backend !== "js") await timeBackend("js");
  else if (o.backend === "auto" && (await findExecutor("wgsl"))) await timeBackend("wgsl");

  log("backend  device                                   first call   second call   effective GFLOP/s");
  for (const r of runs) {
    log(
      `${r.backend.padEnd(8)} ${r.device.slice(0, 40).padEnd(40)} ${`${r.firstMs.toFixed(0)} ms`.padStart(10)}   ${`${r.warmMs.toFixed(0)} ms`.padStart(11)}   ${(flops / (r.warmMs * 1e6)).toFixed(2).padStart(8)}`,
    );
  }
  log(`(first call: kernel generation + JIT / pipeline creation; GFLOP/s = 4·B·H·N²·D·density / second-call time)\n`);

  // The float64 reference on a few query-block rows (the full reference is slow in JS).
  progress("checking against the float64 reference…");
  const rowsToCheck = [0, Math.floor(blockMask.numQBlocks / 2), blockMask.numQBlocks - 1].filter((x, i, a) => a.indexOf(x) === i);
  t = performance.now();
  let checked = 0;
  const worst: Record<string, number> = {};
  for (const qb of rowsToCheck) {
    const r0 = qb * BLOCK;
    const rows = Math.min(BLOCK, n - r0);
    const sliced = blockMask.slice({ qBlocks: [qb, qb + 1] });
    const problem = resolveProblem({ batch: B, qHeads: H, kvHeads: H, qLen: rows, kvLen: n, qkHeadDim: D, vHeadDim: D, dtype: "f32", qOffset: r0 });
    const ref = referenceAttention({
      problem, q: sliceRows(q, r0, rows), k, v, mask: blockMask.maskGraph ?? null,
      score: toScoreGraph(scoreMod), blockMask: sliced as unknown as BlockMaskTables,
    });
    let maxRef = 1;
    for (const x of ref.out) maxRef = Math.max(maxRef, Math.abs(x));
    for (const r of runs) {
      const got = sliceRows(r.out, r0, rows).data as Float32Array;
      let err = 0;
      for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - ref.out[i]) / maxRef);
      worst[r.backend] = Math.max(worst[r.backend] ?? 0, err);
    }
    checked += rows * H;
  }
  const refMs = performance.now() - t;
  let ok = true;
  for (const r of runs) {
    const err = worst[r.backend];
    const pass = err < 1e-4;
    ok &&= pass;
    log(`${r.backend}: max relative error vs the float64 reference on ${checked} rows = ${err.toExponential(2)} ${pass ? "✓" : "✗ (tolerance 1e-4)"}`);
  }
  log(`(reference: ${rowsToCheck.length} query-block rows × ${H} heads, ${refMs.toFixed(0)} ms)\n`);

  // The same variant, compiled by every backend.
  progress(`writing kernels to ${o.outDir}…`);
  const problem = { batch: B, qHeads: H, kvHeads: H, qLen: n, kvLen: n, qkHeadDim: D, vHeadDim: D };
  const written: string[] = [];
  for (const backend of listBackends()) {
    const dtype = backend.name === "cuda" || backend.name === "triton" ? "bf16" : "f32";
    const { spec, artifact } = compileWithSpec({ blockMask, scoreMod }, { ...problem, dtype }, { backend: backend.name as BackendName });
    const [src, ...rest] = writeArtifact(o.outDir, "document_causal_softcap", artifact, backend.companions?.(spec, artifact));
    written.push(`  ${backend.name.padEnd(7)} ${dtype.padEnd(5)} ${src}  (+ ${rest.map((f) => f.slice(f.lastIndexOf("/") + 1)).join(", ")})`);
  }
  log("generated kernels (source + artifact JSON; for CUDA also its PyTorch module):");
  for (const w of written) log(w);
  log(`\ndone in ${((performance.now() - t0) / 1000).toFixed(1)} s${ok ? "" : " — REFERENCE CHECK FAILED"}`);
  return { ok };
}
