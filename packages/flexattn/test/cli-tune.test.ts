/** `flexattn tune`: progress, the result table, and the pick recorded in the tuning cache. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { TUNE_TIE_MARGIN } from "@flexattn/autotune";
import { describe, expect, it } from "vitest";
import { type Row, tuneTable } from "../src/cli-tune.js";

const pkg = resolve(import.meta.dirname, "..");

function cli(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    cwd: pkg,
    encoding: "utf8",
    timeout: 110_000,
    env: { ...process.env, ...env },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("flexattn tune", () => {
  it("times the JS candidates, prints a table and records the fastest in the cache file", () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "flexattn-tune-cli-"));
    const r = cli(
      { FLEXATTN_CACHE_DIR: cacheDir },
      "tune",
      join("test", "fixtures", "softcap-docs.ts"),
      "--backend",
      "js",
      "--q-len",
      "128",
      "--heads",
      "1",
      "--head-dim",
      "16",
      "--block-size",
      "64",
      "--max",
      "4",
    );
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[#+-*\] 1\/4 /);
    expect(r.stderr).toMatch(/\[#+\] 4\/4 /);
    const table = r.stdout.split("\n").filter((l) => /^\d+x\d+ w/.test(l));
    expect(table).toHaveLength(4);
    const columns = table.map((l) =>
      l
        .replace(/ {2}<- recorded$/, "")
        .trim()
        .split(/\s+/),
    );
    const ms = columns.map((c) => Number(c.at(-2)));
    expect(ms).toEqual([...ms].sort((a, b) => a - b)); // fastest first
    expect(columns[0].at(-1)).toBe("1.00x");
    // The recorded pick is marked; the tuner keeps an earlier candidate over one less than 1% faster.
    const recorded = /recorded: (.+) \(flexAttention uses/.exec(r.stdout)?.[1];
    const marked = table.filter((l) => l.endsWith("<- recorded"));
    expect(marked).toHaveLength(1);
    expect(marked[0].startsWith(`${recorded} `)).toBe(true);
    expect(Number(marked[0].split(/\s+/).at(-4)) / ms[0]).toBeLessThanOrEqual(1 / (1 - TUNE_TIE_MARGIN) + 1e-3 / ms[0]);
    expect(r.stdout.includes("are a tie")).toBe(!table[0].endsWith("<- recorded"));
    const file = JSON.parse(readFileSync(join(cacheDir, "tuning.json"), "utf8"));
    const entries = Object.entries(file.entries) as [string, { config: { blockM: number; blockN: number } }][];
    expect(entries).toHaveLength(1);
    expect(entries[0][0]).toMatch(/^js\|js\|/);
    expect(`${entries[0][1].config.blockM}x${entries[0][1].config.blockN}`).toBe(recorded!.split(" ")[0]);
  });

  it("refuses backends that do not run in this process, saying where they tune", () => {
    const r = cli({}, "tune", join("test", "fixtures", "softcap-docs.ts"), "--backend", "triton");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /flexattn: error: tune runs kernels in this process.*tune\(\), and tune_backward\(\) for a Triton backward, in Python/,
    );
  });

  it("marks a pick that kept a tie and says why", () => {
    const config = (blockM: number) => ({ blockM, blockN: 64, numWarps: 1, numStages: 1, prescaleQk: false });
    const rows: Row[] = [
      { config: config(64), ms: 1.005 },
      { config: config(32), ms: 1.0 },
      { config: config(16), error: "no" },
    ];
    const lines = tuneTable(rows, "64x64 w1 s1");
    expect(lines[1]).toMatch(/^32x64 w1 s1 +1\.000 +1\.00x$/);
    expect(lines[2]).toMatch(/^64x64 w1 s1 +1\.005 +1\.00x {2}<- recorded$/);
    expect(lines[3]).toMatch(/^16x64 w1 s1 +— +no$/);
    expect(lines.at(-1)).toMatch(/within 1% are a tie, kept by the earlier candidate/);
    expect(tuneTable(rows, "32x64 w1 s1").join("\n")).not.toMatch(/tie/);
  });
});
