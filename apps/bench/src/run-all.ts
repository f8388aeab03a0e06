/**
 * Runs every benchmark that runs on this machine (the CPU ones), one after the other, each in
 * its own process so one's heap never skews another's timings. GPU benchmarks run on the GPU
 * machine through their device harnesses: see apps/bench/README.md.
 */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const CPU_BENCHES = ["blockmask-bench.ts", "js-bench.ts"];

let failed = 0;
for (const [i, file] of CPU_BENCHES.entries()) {
  console.error(`[${i + 1}/${CPU_BENCHES.length}] ${file}`);
  const r = spawnSync(process.execPath, ["--import", "tsx", "--expose-gc", join(here, file)], { stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`${file} failed (exit ${r.status ?? r.signal})`);
    failed++;
  }
}
console.error("GPU benchmarks (WGSL, Triton, CUDA) run on the GPU machine: see apps/bench/README.md.");
process.exit(failed ? 1 : 0);
