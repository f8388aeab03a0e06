/**
 * Build-time generation for the docs site (run before `vitepress build`): the mask gallery, the
 * DSL tables, the benchmark pages and the API reference, written under pages/generated,
 * pages/bench and pages/api (all git-ignored).
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { abiMarkdown } from "./abi.js";
import { API_OUT, generateApi } from "./api.js";
import { benchIndexMarkdown, benchPageMarkdown, benchPages } from "./bench.js";
import { mistakesMarkdown, opExamplesMarkdown } from "./dsl.js";
import { masksMarkdown } from "./masks.js";
import { GENERATED, PAGES, writeGenerated } from "./output.js";

const BENCH_OUT = join(PAGES, "bench");

async function main(): Promise<void> {
  const t0 = performance.now();
  for (const dir of [GENERATED, BENCH_OUT, API_OUT]) rmSync(dir, { recursive: true, force: true });
  writeGenerated(join(GENERATED, "masks.md"), masksMarkdown());
  writeGenerated(join(GENERATED, "dsl-ops.md"), opExamplesMarkdown());
  writeGenerated(join(GENERATED, "dsl-errors.md"), mistakesMarkdown());
  writeGenerated(join(GENERATED, "abi.md"), abiMarkdown());
  const pages = benchPages();
  writeGenerated(join(BENCH_OUT, "index.md"), `# Benchmarks\n\n${BENCH_INTRO}\n\n${benchIndexMarkdown(pages)}`);
  for (const p of pages) writeGenerated(join(BENCH_OUT, `${p.name}.md`), benchPageMarkdown(p));
  await generateApi();
  console.log(`docs: generated pages in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

const BENCH_INTRO =
  "Every table comes from `apps/bench/results/`, where each result file records the command and machine " +
  "that made it. GPU figures were measured on the GPU machine beside the PyTorch anchors in the same process.";

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
