/**
 * JS backward benchmark: flexAttentionBackward(..., { backend: "js" }) beside the forward it
 * differentiates, on this machine's CPU (one thread), for noop, causal and causal with a learnable
 * [2N − 1] relative-position bias (a buffer gradient) at N = 1k and 2k, head dims 64 and 128,
 * B = 1, H = 1, f32. Each time is the median of whole public calls after a warm-up call.
 * Writes results/js-backward-<tag>.json (default tag: node20-cpu).
 *
 *   cd apps/bench && npx tsx src/js-backward-bench.ts [--tag NAME]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { arch, cpus, platform } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type MaskMod, type ScoreMod, type Tensor, buffer, causal, createBlockMask, flexAttention, flexAttentionBackward, randomNormal, mulberry32,
  randomTensor,
} from "flexattn";
import { medianWallMs } from "@flexattn/autotune";

const LENGTHS = [1024, 2048];
const DIMS = [64, 128];
const RUNS = 5;
const args = process.argv.slice(2);
const tag = args.includes("--tag") ? args[args.indexOf("--tag") + 1] : "node20-cpu";

const timed = (f: () => Promise<unknown>) => medianWallMs(RUNS, f);

interface Variant {
  name: string;
  mask?: MaskMod;
  score?: (n: number) => ScoreMod;
}

const VARIANTS: Variant[] = [
  { name: "noop" },
  { name: "causal", mask: causal() },
  {
    name: "causal + learnable relative bias [2N-1]",
    mask: causal(),
    score: (n) => {
      const table = buffer(randomNormal(2 * n - 1, mulberry32(5)), { name: "relBias" });
      return (s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(n - 1)));
    },
  },
];

const rows = [];
for (const n of LENGTHS)
  for (const d of DIMS)
    for (const v of VARIANTS) {
      const shape = [1, 1, n, d];
      const [q, k, val, dOut] = [1, 2, 3, 4].map((seed) => randomTensor(shape, { seed }));
      const blockMask = v.mask ? createBlockMask(v.mask, { qLen: n, kvLen: n, blockSize: 128 }) : undefined;
      const options = { blockMask, scoreMod: v.score?.(n), backend: "js" as const };
      const { out, lse } = (await flexAttention(q, k, val, { ...options, returnLse: true })) as { out: Tensor; lse: Tensor };
      const forwardMs = await timed(() => flexAttention(q, k, val, { ...options, returnLse: true }));
      const backwardMs = await timed(() => flexAttentionBackward(q, k, val, out, lse, dOut, options));
      const density = blockMask?.density() ?? 1;
      const flops = 4 * n * n * d * density;
      const row = {
        n, d, variant: v.name, density, forwardMs, backwardMs, backwardOverForward: backwardMs / forwardMs,
        forwardGflops: flops / (forwardMs * 1e6), backwardGflops: (2.5 * flops) / (backwardMs * 1e6),
      };
      rows.push(row);
      process.stderr.write(`N=${n} d=${d} ${v.name.padEnd(40)} fwd ${forwardMs.toFixed(1)} ms  bwd ${backwardMs.toFixed(1)} ms  (${row.backwardOverForward.toFixed(2)}×)\n`);
    }

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "results");
mkdirSync(outDir, { recursive: true });
const meta = {
  command: `cd apps/bench && npx tsx src/js-backward-bench.ts --tag ${tag}`,
  date: new Date().toISOString(),
  node: process.version,
  platform: `${platform()} ${arch()}`,
  cpu: `${cpus()[0]?.model ?? "unknown CPU"} (${cpus().length} cores; the JS backend uses one thread)`,
  protocol: `median of ${RUNS} whole calls after one warm-up call; B = 1, H = 1, f32, BlockMask blocks 128 × 128`,
  gflops: "effective: forward 4·N²·D·density / time; backward 2.5× that / time",
};
const file = join(outDir, `js-backward-${tag}.json`);
writeFileSync(file, `${JSON.stringify({ ...meta, results: rows }, null, 2)}\n`);
console.log(`wrote ${file}`);
