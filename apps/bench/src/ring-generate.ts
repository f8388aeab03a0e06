/**
 * Generates what the context-parallel (ring) device scripts need into apps/bench/device/ring/generated/: for the
 * protocol's causal, sliding-window and document-causal variants (bf16, d=128, 16 heads), at N = 16k (correctness)
 * and 128k (scaling):
 *   <variant>_n<N>.py          — the Triton module from the public compile(), as a user gets it;
 *   <variant>_n<N>.tables.gz   — createBlockMask's whole-sequence kv tables, int32 little-endian, concatenated:
 *                                kvNumBlocks, kvIndices, fullKvNumBlocks, fullKvIndices ([Bm, Hm, QB(, KVB)]);
 *   <variant>_n<N>.buffers.gz  — the captured buffers in the module's BUFFERS order (int32 / f32), when any;
 *   index.json                 — the entries with shapes, block size and the module's buffer names.
 * The device scripts plan the ring from these tables with flexattn_ring (the Python port of the blockmask plan).
 * Usage: npx tsx apps/bench/src/ring-generate.ts
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { compile, resolveProblem, traceMaskMod } from "flexattn";
import { makeSpec } from "@flexattn/template";
import { createBlockMask } from "@flexattn/blockmask";
import { bufferArgs } from "@flexattn/codegen-triton";
import { DOC_SEED, PROTOCOL_VARIANTS } from "./protocol.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "device", "ring", "generated");
const VARIANTS = ["causal", "sliding_window_1024", "document_causal"];
const NS = [16384, 131072];
const [D, H] = [128, 16];

function gz(arrays: ArrayBufferView[]): Buffer {
  return gzipSync(Buffer.concat(arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))), { level: 6 });
}

function main(): void {
  rmSync(ROOT, { recursive: true, force: true });
  mkdirSync(ROOT, { recursive: true });
  const entries: unknown[] = [];
  for (const N of NS) {
    for (const name of VARIANTS) {
      const variant = PROTOCOL_VARIANTS.find((v) => v.name === name)!;
      const maskMod = variant.mask(N)!;
      const mask = traceMaskMod(maskMod);
      const blockMask = createBlockMask(mask, { qLen: N, kvLen: N });
      const problem = resolveProblem({ batch: 1, qHeads: H, kvHeads: H, qLen: N, kvLen: N, qkHeadDim: D, vHeadDim: D, dtype: "bf16", returnLse: true });
      const artifact = compile({ maskMod: mask }, problem, { backend: "triton" });
      const spec = makeSpec({
        mask, score: null, qkHeadDim: D, vHeadDim: D, dtype: "bf16", returnLse: true, sparseBlock: artifact.spec.sparseBlock, config: artifact.config,
      });
      const file = `${name}_n${N}`;
      writeFileSync(join(ROOT, `${file}.py`), artifact.source);
      writeFileSync(join(ROOT, `${file}.tables.gz`), gz([blockMask.kvNumBlocks, blockMask.kvIndices, blockMask.fullKvNumBlocks, blockMask.fullKvIndices]));
      const buffers = bufferArgs(spec).map((b) => ({ name: b.pyName, dtype: b.dtype, shape: b.shape, data: mask.buffers[b.slot].data! }));
      if (buffers.some((b) => bufferArgs(spec).find((a) => a.pyName === b.name)?.owner !== "mask")) throw new Error(`${file}: only mask buffers expected`);
      if (buffers.length) writeFileSync(join(ROOT, `${file}.buffers.gz`), gz(buffers.map((b) => b.data)));
      entries.push({
        variant: name, N, B: 1, H, D, module: `${file}.py`, tables: `${file}.tables.gz`, buffersFile: buffers.length ? `${file}.buffers.gz` : null,
        dims: [blockMask.Bm, blockMask.Hm, blockMask.numQBlocks, blockMask.numKvBlocks], blockSize: blockMask.blockSize,
        buffers: buffers.map(({ name: n, dtype, shape }) => ({ name: n, dtype, shape })), density: blockMask.density(),
      });
    }
  }
  writeFileSync(join(ROOT, "index.json"), JSON.stringify({ docSeed: DOC_SEED, entries }, null, 1));
  console.log(`ring: ${entries.length} entries → ${ROOT}`);
}

main();
