/** `flexattn tune`: progress, the result table, and the pick recorded in the tuning cache. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const pkg = resolve(import.meta.dirname, "..");

function cli(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { cwd: pkg, encoding: "utf8", timeout: 110_000, env: { ...process.env, ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("flexattn tune", () => {
  it("times the JS candidates, prints a table and records the fastest in the cache file", () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "flexattn-tune-cli-"));
    const r = cli({ FLEXATTN_CACHE_DIR: cacheDir }, "tune", join("test", "fixtures", "softcap-docs.ts"), "--backend", "js",
      "--q-len", "128", "--heads", "1", "--head-dim", "16", "--block-size", "64", "--max", "4");
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[#+-*\] 1\/4 /);
    expect(r.stderr).toMatch(/\[#+\] 4\/4 /);
    const table = r.stdout.split("\n").filter((l) => /^\d+x\d+ w/.test(l));
    expect(table).toHaveLength(4);
    const ms = table.map((l) => Number(l.trim().split(/\s+/).at(-2)));
    expect(ms).toEqual([...ms].sort((a, b) => a - b)); // fastest first
    expect(table[0]).toMatch(/1\.00x$/);
    const recorded = /recorded: (\S+ w\d+ s\d+)/.exec(r.stdout)?.[1];
    expect(table[0].startsWith(recorded!)).toBe(true);
    const file = JSON.parse(readFileSync(join(cacheDir, "tuning.json"), "utf8"));
    const entries = Object.entries(file.entries) as [string, { config: { blockM: number; blockN: number } }][];
    expect(entries).toHaveLength(1);
    expect(entries[0][0]).toMatch(/^js\|js\|/);
    expect(`${entries[0][1].config.blockM}x${entries[0][1].config.blockN}`).toBe(recorded!.split(" ")[0]);
  });

  it("refuses backends that do not run in this process, saying where they tune", () => {
    const r = cli({}, "tune", join("test", "fixtures", "softcap-docs.ts"), "--backend", "triton");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/flexattn: error: tune runs kernels in this process.*tune\(\), and tune_backward\(\) for a Triton backward, in Python/);
  });
});
