/** Config candidates, and the generated module's config resolution, tuning cache and loop-form detection. */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buffer, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { alibi, documentCausal, randomDocumentIds, softcap as softcapMod } from "@flexattn/masks";
import { type KernelConfig, type ModMix, type StorageDType, makeSpec, resolveProblem } from "@flexattn/template";
import {
  type ShippedTable, moduleCandidates, structureClass, tileKey, tritonBackend, tritonConfigCandidates, tritonDefaultConfig,
  tritonOptions,
} from "../src/index.js";
import { configConstants } from "../src/tuning.js";
import { causal, docMask, pyCheck, pyCompile, softcap, testSpec } from "./helpers.js";

const MODULE_SCRIPT = fileURLToPath(new URL("./tuning_module.py", import.meta.url));

const problem = (d: number, dtype: StorageDType = "bf16", kvLen = 4096, dv = d) =>
  resolveProblem({ batch: 2, qHeads: 8, kvHeads: 8, qLen: kvLen, kvLen, qkHeadDim: d, vHeadDim: dv, dtype });

const MODS: Record<string, ModMix> = {
  none: { mask: null, score: null },
  causal: { mask: causal, score: null },
  document: { mask: traceMaskMod(documentCausal(randomDocumentIds(4096, 8, 1))), score: null },
  softcap: { mask: causal, score: traceScoreMod(softcapMod(30)) },
  alibi: { mask: causal, score: traceScoreMod(alibi(8)) },
};

const isPow2 = (x: number) => x > 0 && (x & (x - 1)) === 0;

describe("tritonConfigCandidates", () => {
  const cases: { dtype: StorageDType; d: number; block: readonly [number, number]; kvLen: number; mods: string }[] = [];
  for (const dtype of ["bf16", "f16", "f32"] as const) {
    for (const d of [16, 32, 64, 80, 128, 256]) {
      for (const block of [[128, 128], [64, 64], [256, 128], [32, 48]] as const) {
        for (const kvLen of [1024, 16384]) for (const mods of Object.keys(MODS)) cases.push({ dtype, d, block, kvLen, mods });
      }
    }
  }

  it("puts tritonDefaultConfig's pick first; the backend declares exactly these candidates", () => {
    for (const c of cases) {
      const p = problem(c.d, c.dtype, c.kvLen);
      const cands = tritonConfigCandidates(p, c.block, MODS[c.mods]);
      expect(cands[0]).toEqual(tritonDefaultConfig(p, c.block, MODS[c.mods]));
      expect(tritonBackend.configCandidates(p, c.block, MODS[c.mods])).toEqual(cands);
    }
  });

  it("lists only valid, distinct configs: tiles of at least 16 that divide the BlockMask block", () => {
    for (const c of cases) {
      const cands = tritonConfigCandidates(problem(c.d, c.dtype, c.kvLen), c.block, MODS[c.mods]);
      expect(new Set(cands.map(tileKey)).size).toBe(cands.length);
      for (const k of cands.slice(1)) {
        expect(k.blockM).toBeGreaterThanOrEqual(16);
        expect(k.blockN).toBeGreaterThanOrEqual(16);
        expect(c.block[0] % k.blockM).toBe(0);
        expect(c.block[1] % k.blockN).toBe(0);
        expect(isPow2(k.numWarps) && k.numWarps <= 16 && k.numWarps * 32 <= k.blockM * k.blockN).toBe(true);
        expect(k.numStages).toBeGreaterThanOrEqual(1);
      }
    }
  });

  it("offers 6-10 configs for the common problems, the issue's five among them at d = 128", () => {
    for (const d of [64, 128]) {
      for (const mods of Object.values(MODS)) {
        const n = tritonConfigCandidates(problem(d), [128, 128], mods).length;
        expect(n).toBeGreaterThanOrEqual(6);
        expect(n).toBeLessThanOrEqual(10);
      }
    }
    const keys = tritonConfigCandidates(problem(128), [128, 128]).map(tileKey);
    for (const k of ["128x128 w8 s3", "128x64 w8 s4", "128x128 w8 s2", "64x64 w4 s2", "128x64 w4 s3"]) expect(keys).toContain(k);
  });

  it("drops configs over the shared memory it is given", () => {
    const all = tritonConfigCandidates(problem(128), [128, 128]);
    const small = tritonConfigCandidates(problem(128), [128, 128], undefined, { sharedMemoryBytes: 100 * 1024 });
    expect(small.length).toBeLessThan(all.length);
    expect(small[0]).toEqual(all[0]); // the default stays first
    expect(small.map(tileKey)).not.toContain("128x128 w8 s3");
  });

  it("every candidate generates a module that byte-compiles, with the spec's config first in CANDIDATES", () => {
    const sources: Record<string, string> = {};
    const specs: Record<string, Partial<Parameters<typeof makeSpec>[0]>> = {
      doc128: { mask: docMask }, softcap64: { score: softcap, qkHeadDim: 64, vHeadDim: 64 },
      f32_80: { dtype: "f32", qkHeadDim: 80, vHeadDim: 80 }, tma: {},
    };
    for (const [name, over] of Object.entries(specs)) {
      const p = problem(over.qkHeadDim ?? 128, over.dtype ?? "bf16");
      const mods = { mask: over.mask ?? causal, score: over.score ?? null };
      tritonConfigCandidates(p, [128, 128], mods).forEach((c, i) => {
        const config: KernelConfig = name === "tma" ? { ...c, options: { tma: true } } : c;
        const src = tritonBackend.generate(testSpec(over, config)).source;
        expect(src).toContain(`CONFIG = dict(BLOCK_M=${c.blockM}, BLOCK_N=${c.blockN}, num_warps=${c.numWarps}, num_stages=${c.numStages})`);
        expect(src.slice(src.indexOf("CANDIDATES = (\n"))).toMatch(
          new RegExp(`^CANDIDATES = \\(\\n    dict\\(BLOCK_M=${c.blockM}, BLOCK_N=${c.blockN}, num_warps=${c.numWarps}, num_stages=${c.numStages}\\),`),
        );
        sources[`${name}_${i}`] = src;
      });
    }
    expect(Object.keys(sources).length).toBeGreaterThan(24);
    expect(pyCompile(sources)).toEqual([]);
  });

  it("generates one kernel source for every candidate: only the CONFIG line differs", () => {
    const strip = (s: string) => s.replace(/^CONFIG = .*$/m, "").replace(/^default tile .*$/m, "").replace(/^SPEC_HASH = .*$/m, "");
    const [first, ...rest] = tritonConfigCandidates(problem(128), [128, 128], { mask: causal, score: null });
    const base = strip(tritonBackend.generate(testSpec({}, first)).source);
    for (const c of rest) {
      const other = tritonBackend.generate(testSpec({}, c)).source;
      // The module's CANDIDATES lead with its own config; past that list, the sources are the same.
      const tail = (s: string) => s.slice(s.indexOf("# Tuned picks shipped"));
      expect(tail(strip(other))).toBe(tail(base));
    }
  });
});

describe("shipped tuned tables", () => {
  const spec = testSpec({ mask: docMask });
  const structure = structureClass(spec, tritonOptions(spec.config));
  const table = (device: string, entries: ShippedTable["entries"]): ShippedTable => ({ format: "flexattn.triton-shipped/1", device, entries });

  it("names a kernel's structure class by what moves the best tile", () => {
    expect(structure).toBe("bf16-d128x128-b128x128-datamask-noscore");
    const soft = testSpec({ mask: null, score: softcap, qkHeadDim: 80, vHeadDim: 64 }, { options: { approxTanh: true, tma: true } });
    expect(structureClass(soft, tritonOptions(soft.config))).toBe("bf16-d128x64-b128x128-nomask-approxscore-tma");
  });

  it("keeps a score mod that gathers a table per element out of alibi's class, and starts it on 2 stages at d = 128", () => {
    const table = buffer(new Float32Array(2 * 4096 - 1), { name: "rel" });
    const relative = traceScoreMod((s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(4095))));
    const rel = testSpec({ mask: causal, score: relative });
    const ali = testSpec({ mask: causal, score: MODS.alibi.score });
    expect(structureClass(rel, tritonOptions(rel.config))).toBe("bf16-d128x128-b128x128-mask-gscore");
    expect(structureClass(ali, tritonOptions(ali.config))).toBe("bf16-d128x128-b128x128-mask-score");
    const tile = (c: KernelConfig) => [c.blockM, c.blockN, c.numWarps, c.numStages];
    expect(tile(tritonDefaultConfig(problem(128, "bf16", 16384), [128, 128], { mask: causal, score: relative }))).toEqual([128, 128, 8, 2]);
    expect(tile(tritonDefaultConfig(problem(128, "bf16", 16384), [128, 128], MODS.alibi))).toEqual([128, 64, 8, 4]);
  });

  it("bakes in the picks of the module's structure class only, per device", () => {
    const lines = configConstants(spec, tritonOptions(spec.config), [
      table("NVIDIA H100 80GB HBM3", { [structure]: { "q16384-kv16384-bh16": [128, 128, 8, 3] }, other: { "q1-kv1-bh1": [64, 64, 4, 2] } }),
      table("NVIDIA H200", { other: { "q1-kv1-bh1": [64, 64, 4, 2] } }),
    ]).join("\n");
    expect(lines).toContain('SHIPPED = {\n    "NVIDIA H100 80GB HBM3": {\n        "q16384-kv16384-bh16": dict(BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=3),\n    },\n}');
    expect(lines).not.toContain("H200");
    expect(lines).not.toContain("q1-kv1-bh1");
    expect(configConstants(spec, tritonOptions(spec.config), []).join("\n")).toContain("SHIPPED = {}");
  });

  it("module candidates start with the spec's own config, then the backend's, without repeats", () => {
    const odd = makeSpec({ ...spec, config: { blockM: 32, blockN: 32, numWarps: 2, numStages: 1, prescaleQk: false } });
    const cands = moduleCandidates(odd);
    expect(tileKey(cands[0])).toBe("32x32 w2 s1");
    expect(cands.slice(1).map(tileKey)).toEqual(tritonConfigCandidates(odd, [128, 128], odd).map(tileKey));
    expect(moduleCandidates(spec).map(tileKey)).toEqual(tritonConfigCandidates(spec, [128, 128], spec).map(tileKey));
  });
});

describe("the generated module's config resolution (stand-in torch and triton)", () => {
  const sources = {
    doc_bf16: tritonBackend.generate(testSpec({ mask: docMask })).source,
    nomask_f32_tma: tritonBackend.generate(testSpec({ mask: null, dtype: "f32", qkHeadDim: 64, vHeadDim: 64 }, {
      blockM: 64, blockN: 32, numWarps: 4, numStages: 2, options: { tma: true },
    })).source,
  };

  it("resolves explicit > cache > tuning > shipped > default; keeps a versioned cache file that survives corruption and concurrent writers; detects loop forms once per table state; launches each call with its loop forms and config, tuning into scratch outputs", () => {
    expect(pyCheck(MODULE_SCRIPT, sources, Object.keys(sources))).toEqual([]);
  });

  it("the checker fails a module that loses concurrent writes or misses an in-place table change", () => {
    const base = sources.doc_bf16;
    const mutants = {
      noMerge: base.replace("entries = read_cache(path)\n            entries.update(new_entries)", "entries = dict(new_entries)"),
      noVersion: base.replace("num_blocks._version, indices._version)", "0, 0)"),
    };
    for (const m of Object.values(mutants)) expect(m).not.toBe(base);
    const out = pyCheck(MODULE_SCRIPT, mutants, Object.keys(mutants)).join("\n");
    expect(out).toContain("noMerge.py: concurrent writers lose nothing");
    expect(out).toContain("noVersion.py: an in-place change (a new _version) is read again");
  });
});
