import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileTuningCache, MemoryTuningCache, StorageTuningCache, TUNING_FORMAT, type TuningEntry } from "../src/index.js";

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
const node = { fs, path, os };
const entry = (blockM: number): TuningEntry => ({ config: { blockM, blockN: 64, numWarps: 4, numStages: 2, prescaleQk: false }, ms: blockM / 10, measured: 4, at: "2026-12-06T00:00:00Z" });
const fresh = () => join(mkdtempSync(join(tmpdir(), "flexattn-tune-")), "tuning.json");

describe("FileTuningCache", () => {
  it("persists entries across instances, in a versioned file", () => {
    const file = fresh();
    new FileTuningCache(file, "1.0.0", node).set("k1", entry(64));
    const data = JSON.parse(readFileSync(file, "utf8"));
    expect(data).toMatchObject({ format: TUNING_FORMAT, version: "1.0.0" });
    expect(new FileTuningCache(file, "1.0.0", node).get("k1")).toEqual(entry(64));
  });

  it("reports a corrupt file once, keeps it aside and rebuilds", () => {
    const file = fresh();
    writeFileSync(file, "{ not json");
    const warnings: string[] = [];
    const cache = new FileTuningCache(file, "1.0.0", node, { warn: (m) => warnings.push(m) });
    expect(cache.get("k1")).toBeUndefined();
    cache.set("k2", entry(32));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/cannot be used .*not a flexattn.tuning\/1 file.*kept as/);
    const aside = readdirSync(join(file, "..")).filter((f) => f.endsWith(".unused"));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(file, "..", aside[0]), "utf8")).toBe("{ not json");
    expect(new FileTuningCache(file, "1.0.0", node).get("k2")).toEqual(entry(32));
  });

  it("a cache folder that cannot be written keeps the results in memory and says so once", () => {
    const blocker = fresh();
    writeFileSync(blocker, "a file where the cache folder should be");
    const warnings: string[] = [];
    const cache = new FileTuningCache(join(blocker, "tuning.json"), "1.0.0", node, { warn: (m) => warnings.push(m) });
    cache.set("k1", entry(64));
    cache.set("k2", entry(32));
    expect(cache.get("k1")).toEqual(entry(64));
    expect(cache.get("k2")).toEqual(entry(32));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/cannot write the tuning cache .*tuning\.json \(.*(EEXIST|ENOTDIR).*\); tuning results are kept in memory/);
  });

  it("treats another library version's file as stale", () => {
    const file = fresh();
    new FileTuningCache(file, "1.0.0", node).set("k1", entry(64));
    const warnings: string[] = [];
    const newer = new FileTuningCache(file, "1.1.0", node, { warn: (m) => warnings.push(m) });
    expect(newer.get("k1")).toBeUndefined();
    expect(warnings[0]).toMatch(/measured by flexattn 1\.0\.0, this is 1\.1\.0/);
  });

  it("loses nothing when processes write at once", async () => {
    const file = fresh();
    const src = join(import.meta.dirname, "..", "src", "index.ts");
    // Four processes, each writing 10 entries of its own through its own cache instance.
    const script = (w: number) => `
      import { FileTuningCache } from ${JSON.stringify(src)};
      import * as fs from "node:fs"; import * as path from "node:path"; import * as os from "node:os";
      const c = new FileTuningCache(${JSON.stringify(file)}, "1.0.0", { fs, path, os });
      for (let i = 0; i < 10; i++) c.set("w${w}-" + i, { config: { blockM: 16, blockN: 16, numWarps: 1, numStages: 1, prescaleQk: false }, ms: i, measured: 1, at: "x" });`;
    const tsx = join(import.meta.dirname, "..", "..", "..", "node_modules", ".bin", "tsx");
    await Promise.all([0, 1, 2, 3].map((w) => new Promise<void>((resolve, reject) => {
      // Run from this package so tsx resolves @flexattn/* through the tsconfig paths, without a build.
      const p = spawn(tsx, ["--eval", script(w)], { stdio: "inherit", cwd: join(import.meta.dirname, "..") });
      p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`writer ${w} exited ${code}`))));
    })));
    const entries = JSON.parse(readFileSync(file, "utf8")).entries;
    expect(Object.keys(entries).sort()).toEqual([0, 1, 2, 3].flatMap((w) => Array.from({ length: 10 }, (_, i) => `w${w}-${i}`)).sort());
    expect(existsSync(`${file}.lock`)).toBe(false);
  }, 60_000);

  it("exports and imports results (shipping them to another machine)", () => {
    const a = new FileTuningCache(fresh(), "1.0.0", node);
    a.set("k1", entry(64));
    const b = new FileTuningCache(fresh(), "1.0.0", node);
    expect(b.import(a.export())).toBe(1);
    expect(new FileTuningCache(b.file, "1.0.0", node).get("k1")).toEqual(entry(64));
    expect(() => new MemoryTuningCache("2.0.0").import(a.export())).toThrow(/measured by flexattn 1\.0\.0/);
  });
});

describe("StorageTuningCache", () => {
  it("keeps entries in a storage item, merging what another tab wrote", () => {
    const items = new Map<string, string>();
    const storage = { getItem: (k: string) => items.get(k) ?? null, setItem: (k: string, v: string) => void items.set(k, v) };
    const tab1 = new StorageTuningCache("1.0.0", storage);
    const tab2 = new StorageTuningCache("1.0.0", storage);
    tab1.set("a", entry(16));
    tab2.set("b", entry(32));
    const reopened = new StorageTuningCache("1.0.0", storage);
    expect(reopened.get("a")).toEqual(entry(16));
    expect(reopened.get("b")).toEqual(entry(32));
    items.set("flexattn.tuning", "garbage");
    const warnings: string[] = [];
    expect(new StorageTuningCache("1.0.0", storage, (m) => warnings.push(m)).get("a")).toBeUndefined();
    expect(warnings).toHaveLength(1);
  });
});

