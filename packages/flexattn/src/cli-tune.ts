/**
 * `flexattn tune <variant>`: time every candidate config of a backend that runs in this process
 * (js, wgsl) on random inputs of the given problem, record the fastest in the tuning cache, and
 * print the table. Later flexAttention calls with the same mods and a problem of the same size
 * class on this device use the recorded config.
 */

import { describeConfig, TUNE_TIE_MARGIN } from "@flexattn/autotune";
import { createBlockMask } from "@flexattn/blockmask";
import { FlexAttnError } from "@flexattn/ir";
import type { AttentionProblem, KernelConfig } from "@flexattn/template";
import { flexAttention, lastFlexAttentionRun } from "./attention.js";
import type { Variant } from "./cli.js";
import { randomTensor } from "./util.js";

export interface TuneCommand {
  variant: Variant;
  problem: AttentionProblem;
  blockSize: [number, number];
  backend: "js" | "wgsl";
  maxCandidates: number;
  budgetMs: number;
  /** Where the table goes (stdout) and where progress goes (stderr; a bar redrawn in place on a terminal). */
  out: (line: string) => void;
  err: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean };
}

export interface Row {
  config: KernelConfig;
  ms?: number;
  error?: string;
}

function bar(done: number, total: number, width = 24): string {
  const filled = Math.round((done / total) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total}`;
}

export async function runTune(c: TuneCommand): Promise<Row[]> {
  const p = c.problem;
  if (p.dtype !== "f32" && c.backend === "wgsl")
    throw new FlexAttnError("WGSL kernels take f32 inputs here; use --dtype f32");
  const blockMask = c.variant.mask
    ? createBlockMask(c.variant.mask, { qLen: p.qLen, kvLen: p.kvLen, blockSize: c.blockSize })
    : undefined;
  const q = randomTensor([p.batch, p.qHeads, p.qLen, p.qkHeadDim], { seed: 1, dtype: p.dtype });
  const k = randomTensor([p.batch, p.kvHeads, p.kvLen, p.qkHeadDim], { seed: 2, dtype: p.dtype });
  const v = randomTensor([p.batch, p.kvHeads, p.kvLen, p.vHeadDim], { seed: 3, dtype: p.dtype });
  const rows: Row[] = [];
  const tty = Boolean(c.err.isTTY);
  await flexAttention(q, k, v, {
    backend: c.backend,
    blockMask,
    scoreMod: c.variant.score ?? undefined,
    enableGqa: p.kvHeads !== p.qHeads,
    tune: {
      force: true,
      maxCandidates: c.maxCandidates,
      budgetMs: c.budgetMs,
      onProgress: ({ index, total, config, ms, error }) => {
        rows.push({ config, ms, error });
        const what = `${describeConfig(config)}: ${ms !== undefined ? `${ms.toFixed(3)} ms` : `skipped (${error})`}`;
        c.err.write(tty ? `\r\x1b[2K${bar(index, total)} ${what}` : `${bar(index, total)} ${what}\n`);
      },
    },
  });
  if (tty) c.err.write("\n");
  const run = lastFlexAttentionRun();
  const picked = describeConfig(run!.config!);
  c.out(`tuned on ${run?.device}: ${rows.filter((r) => r.ms !== undefined).length} of ${rows.length} candidates ran`);
  c.out("");
  for (const line of tuneTable(rows, picked)) c.out(line);
  c.out("");
  c.out(`recorded: ${picked} (flexAttention uses it for these mods and problems of this size on this device)`);
  return rows;
}

/**
 * The result table, fastest first, with the recorded pick marked; when the pick is not the fastest,
 * a line says why (the tuner's tie rule).
 */
export function tuneTable(rows: readonly Row[], picked: string): string[] {
  const timed = rows.filter((r) => r.ms !== undefined).sort((a, b) => a.ms! - b.ms!);
  const best = timed[0]?.ms ?? Number.NaN;
  const lines = [`${"config".padEnd(56)} ${"ms".padStart(10)} ${"vs best".padStart(8)}`];
  for (const r of [...timed, ...rows.filter((r) => r.ms === undefined)]) {
    const name = describeConfig(r.config);
    const ms = r.ms !== undefined ? r.ms.toFixed(3) : "—";
    const rel = r.ms !== undefined ? `${(r.ms / best).toFixed(2)}x` : (r.error ?? "").slice(0, 40);
    lines.push(`${name.padEnd(56)} ${ms.padStart(10)} ${rel.padStart(8)}${name === picked ? "  <- recorded" : ""}`);
  }
  if (timed.length && picked !== describeConfig(timed[0].config)) {
    lines.push(
      "",
      `timings within ${TUNE_TIE_MARGIN * 100}% are a tie, kept by the earlier candidate (the backend's better guess)`,
    );
  }
  return lines;
}
