/**
 * BlockMask construction benchmark: createBlockMask for causal and document-causal masks at
 * 16k / 64k / 128k tokens (block 128). Median time over repeated runs after warm-up, memory
 * allocated during one build, sparsity. Writes results/blockmask-node20-cpu.{json,md}.
 *
 *   cd apps/bench && npx tsx src/blockmask-bench.ts
 */
import { writeFileSync, mkdirSync } from "node:fs";
import { cpus, platform, arch } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { PerformanceObserver } from "node:perf_hooks";
import type { MaskMod } from "@flexattn/ir";
import { causal, documentCausal, randomDocumentIds } from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import { chartLink } from "./chart-link.js";
import { median } from "@flexattn/autotune";

const LENGTHS = [16384, 65536, 131072];
const NUM_DOCS = 64;
const DOC_SEED = 2024;
const WARMUP = 3;
const RUNS = 15;
const MEMORY_RUNS = 3;
const TARGET = { name: "documentCausal", tokens: 131072, ms: 50, mib: 64 };

/** gc() without requiring --expose-gc on the command line. */
function getGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}
const gc = getGc();

/** Count garbage collections during a build (they can only have freed short-lived garbage). */
let gcCount = 0;
new PerformanceObserver((list) => { gcCount += list.getEntries().length; }).observe({ entryTypes: ["gc"] });
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

const mib = (bytes: number) => bytes / 2 ** 20;
const used = () => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };

interface Row {
  mask: string;
  tokens: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  peakExtraMiB: number;
  retainedMiB: number;
  gcsDuringBuild: number;
  sparsityPct: number;
  intervalQueries: number;
  elementEvaluations: number;
}

async function measure(name: string, make: (n: number) => MaskMod, n: number): Promise<Row> {
  const mask = make(n);
  const options = { qLen: n, kvLen: n, blockSize: 128 } as const;
  for (let i = 0; i < WARMUP; i++) createBlockMask(mask, options);
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    createBlockMask(mask, options);
    times.push(performance.now() - t0);
  }
  // Memory: collect, build once, sample right after it returns (before any further collection).
  // The build's long-lived data (tables, state grid, buffer summaries) is all still counted then.
  let peak = 0;
  let retained = 0;
  let gcs = 0;
  let result: ReturnType<typeof createBlockMask> | undefined;
  for (let i = 0; i < MEMORY_RUNS; i++) {
    result = undefined;
    gc();
    await settle();
    const gcBefore = gcCount;
    const before = used();
    result = createBlockMask(mask, options);
    const after = used();
    await settle();
    gcs = Math.max(gcs, gcCount - gcBefore);
    peak = Math.max(peak, after - before);
    gc();
    retained = Math.max(retained, used() - before);
  }
  const m = result!;
  return {
    mask: name,
    tokens: n,
    medianMs: median(times),
    minMs: Math.min(...times),
    maxMs: Math.max(...times),
    peakExtraMiB: mib(peak),
    retainedMiB: mib(retained),
    gcsDuringBuild: gcs,
    sparsityPct: m.sparsity(),
    intervalQueries: m.stats!.intervalQueries,
    elementEvaluations: m.stats!.elementEvaluations,
  };
}

function table(rows: Row[]): string {
  const head = "| mask | tokens | median ms | min–max ms | peak extra MiB | retained MiB | GCs in build | sparsity % | interval queries | element evals |";
  const sep = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
  const body = rows.map((r) =>
    `| ${r.mask} | ${r.tokens} | ${r.medianMs.toFixed(2)} | ${r.minMs.toFixed(2)}–${r.maxMs.toFixed(2)} | ` +
    `${r.peakExtraMiB.toFixed(1)} | ${r.retainedMiB.toFixed(1)} | ${r.gcsDuringBuild} | ${r.sparsityPct.toFixed(2)} | ` +
    `${r.intervalQueries} | ${r.elementEvaluations} |`);
  return [head, sep, ...body].join("\n");
}

export async function runBlockMaskBench(): Promise<{ rows: Row[]; meetsTarget: boolean }> {
  const masks: [string, (n: number) => MaskMod][] = [
    ["causal", () => causal()],
    ["documentCausal", (n) => documentCausal(randomDocumentIds(n, NUM_DOCS, DOC_SEED))],
  ];
  const rows: Row[] = [];
  for (const [name, make] of masks) for (const n of LENGTHS) rows.push(await measure(name, make, n));
  const t = rows.find((r) => r.mask === TARGET.name && r.tokens === TARGET.tokens)!;
  return { rows, meetsTarget: t.medianMs <= TARGET.ms && t.peakExtraMiB <= TARGET.mib };
}

async function main(): Promise<void> {
  const { rows, meetsTarget } = await runBlockMaskBench();
  const cpu = cpus();
  const env = {
    command: "cd apps/bench && npx tsx src/blockmask-bench.ts",
    date: new Date().toISOString(),
    node: process.version,
    platform: `${platform()} ${arch()}`,
    cpuModel: cpu[0]?.model ?? "unknown",
    cores: cpu.length,
  };
  const newSpace = getHeapSpaceStatistics().find((x) => x.space_name === "new_space");
  const youngGenerationMiB = newSpace ? Number(mib(newSpace.space_size).toFixed(1)) : undefined;
  const config = { blockSize: [128, 128], documents: NUM_DOCS, docSeed: DOC_SEED, warmup: WARMUP, runs: RUNS, memoryRuns: MEMORY_RUNS };
  const targetLine = `target: ${TARGET.name} at ${TARGET.tokens} tokens in <= ${TARGET.ms} ms and <= ${TARGET.mib} MiB — ${meetsTarget ? "met" : "MISSED"}`;
  const notes = [
    "Time: median of " + RUNS + " runs after " + WARMUP + " warm-up runs, one createBlockMask call each (tracing included).",
    "Peak extra: heapUsed + arrayBuffers sampled right after one build returns, minus the value after a forced GC just before it (max of " +
      MEMORY_RUNS + " builds). It counts all of the build's long-lived data (the eight tables, the block-state grid, buffer range summaries), " +
      "which live until the end, plus the short-lived garbage not yet collected. Minor GCs during the build (column 'GCs in build') only " +
      "reclaim short-lived interval-analysis objects, so the true peak can exceed the sample by at most the young generation (new space: " +
      `${youngGenerationMiB ?? "?"} MiB in this run).`,
    "Retained: the same delta after a forced GC, i.e. the BlockMask itself (eight Int32 tables).",
  ];
  console.log(`BlockMask construction, ${env.node}, ${env.cores} cores (${env.cpuModel})\n`);
  console.log(table(rows));
  console.log(`\n${targetLine}`);
  const out = join(dirname(fileURLToPath(import.meta.url)), "..", "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "blockmask-node20-cpu.json"), JSON.stringify({ benchmark: "createBlockMask", ...env, youngGenerationMiB, config, target: TARGET, meetsTarget, notes, rows }, null, 2) + "\n");
  writeFileSync(join(out, "blockmask-node20-cpu.md"), [
    "# BlockMask construction (CPU, Node)",
    "",
    chartLink("blockmask-node20-cpu"),
    "",
    `\`${env.command}\` — ${env.date}, Node ${env.node}, ${env.platform}, ${env.cores} cores (${env.cpuModel}).`,
    `Block size 128 × 128; document-causal uses ${NUM_DOCS} documents of random lengths (seed ${DOC_SEED}).`,
    "",
    table(rows),
    "",
    `**${targetLine}**`,
    "",
    ...notes.map((n) => `- ${n}`),
    "",
  ].join("\n"));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
