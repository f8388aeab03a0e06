/** Generation-level tests (no device): configs, geometry, artifacts, ABI packing, literals. */
import { describe, expect, it } from "vitest";
import { type ModGraph, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { causal, documentCausal, softcap, alibi } from "@flexattn/masks";
import { type KernelConfig, denseTables, kernelAbi, makeSpec, resolveProblem } from "@flexattn/template";
import {
  PARAMS_BYTES, PARAM_FIELDS, type WgslLimits, capturedOffsets, checkLimits, generateWgsl, packCaptured, packParams, packTables,
  shippedWgslConfig, wgslBackend, wgslConfigCandidates, wgslDefaultConfig, wgslFloat, wgslGeometry, wgslInt,
} from "../src/index.js";

const problem = (d = 64, dtype: "f32" | "f16" | "bf16" = "f32") =>
  resolveProblem({ batch: 1, qHeads: 2, kvHeads: 1, qLen: 256, kvLen: 256, qkHeadDim: d, vHeadDim: d, dtype, returnLse: true });
const H100: WgslLimits = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024, subgroupMinSize: 32 };
const config = (options: Record<string, number | boolean> = {}, blockM = 64, blockN = 32): KernelConfig => ({
  blockM, blockN, numWarps: 4, numStages: 1, prescaleQk: false, options,
});
const spec = (c: KernelConfig, d = 64, mask: ModGraph | null = traceMaskMod(causal()), score: ModGraph | null = null) =>
  makeSpec({ mask, score, qkHeadDim: d, vHeadDim: d, dtype: "f32", returnLse: true, sparseBlock: [128, 128], config: c });

describe("configs", () => {
  it("every candidate fits the limits it was made for", () => {
    for (const limits of [undefined, H100, { maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 1024 }])
      for (const d of [16, 40, 64, 96, 128, 256])
        for (const dtype of ["f32", "bf16"] as const) {
          const cands = wgslConfigCandidates(problem(d, dtype), [128, 128], { limits });
          expect(cands.length).toBeGreaterThan(0);
          for (const c of cands.slice(0, 20)) {
            const a = generateWgsl(makeSpec({ mask: null, score: null, qkHeadDim: d, vHeadDim: d, dtype, sparseBlock: [128, 128], config: c }));
            expect(() => checkLimits(a, limits ?? { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 })).not.toThrow();
            if (c.options?.subgroups) expect(limits?.subgroupMinSize).toBeGreaterThan(0);
            if (dtype !== "f32") expect(c.options?.vec4).toBe(false);
          }
        }
  });

  it("resolves NVIDIA adapters to the shipped table's shapes, other vendors to the heuristic", () => {
    const shipped = (d: number, limits: WgslLimits, vendor = "nvidia", vec4 = true) =>
      wgslBackend.shippedConfig?.(problem(d), [128, 128], { mask: null, score: null }, { signature: "t", limits: { ...limits, vendor, vec4 } });
    const d64 = shipped(64, H100);
    expect([d64?.blockM, d64?.blockN, d64?.options]).toEqual([128, 32, { rowsPerThread: 4, workgroupSize: 256, vec4: true, qGlobal: true, subgroups: true, shareKV: false }]);
    // No vec4 (e.g. odd strides) means no qGlobal: no shipped shape applies, and the heuristic decides.
    expect(shipped(64, H100, "nvidia", false)).toBeUndefined();
    expect(wgslDefaultConfig(problem(64), [128, 128], { limits: H100, vec4: false }).options).toMatchObject({ vec4: false, qGlobal: false });
    const d128 = shipped(128, H100);
    expect([d128?.blockM, d128?.blockN, d128?.options?.workgroupSize, d128?.options?.rowsPerThread, d128?.options?.shareKV]).toEqual([128, 32, 512, 4, true]);
    // The shipped pick is one of the valid candidates, and vendors without a table get none.
    expect(wgslConfigCandidates(problem(128), [128, 128], { limits: H100 })).toContainEqual(d128);
    expect(shipped(64, H100, "Intel")).toBeUndefined();
    expect(shipped(64, H100, "")).toBeUndefined();
    expect(shippedWgslConfig(wgslConfigCandidates(problem(64), [128, 128], { limits: H100 }), problem(64), "NVIDIA")).toEqual(d64);
    // Without shareKV that tile needs 50 KB: the candidates offer sharing only where it saves memory.
    const all = wgslConfigCandidates(problem(64), [128, 128], { limits: H100 });
    expect(all.length).toBe(new Set(all.map((c) => JSON.stringify(c))).size);
    for (const c of all.filter((x) => x.options?.shareKV)) {
      const unshared = wgslGeometry(spec({ ...c, options: { ...c.options, shareKV: false } })).sharedBytes;
      expect(wgslGeometry(spec(c)).sharedBytes).toBeLessThan(unshared);
    }
  });

  it("tiles divide the BlockMask block size; odd kv blocks are refused clearly", () => {
    const c = wgslDefaultConfig(problem(), [48, 24]);
    expect(48 % c.blockM).toBe(0);
    expect(24 % c.blockN).toBe(0);
    expect(() => wgslConfigCandidates(problem(), [16, 6])).toThrow(/multiple of 4/);
  });

  it("backend default config respects WebGPU's default limits", () => {
    const a = generateWgsl(spec(wgslBackend.configCandidates(problem(128), [128, 128], { mask: null, score: null })[0], 128));
    expect(a.launch.sharedMemoryBytes).toBeLessThanOrEqual(16384);
    expect(a.launch.threadsPerProgram).toBeLessThanOrEqual(256);
  });
});

describe("geometry", () => {
  it("derives the register tiles and rejects impossible shapes", () => {
    const g = wgslGeometry(spec(config({ rowsPerThread: 4, workgroupSize: 128 })));
    expect([g.G, g.TC, g.RN, g.CV]).toEqual([16, 8, 4, 2]);
    expect(() => wgslGeometry(spec(config({ rowsPerThread: 3 })))).toThrow(/rowsPerThread/);
    expect(() => wgslGeometry(spec(config({ workgroupSize: 96 })))).toThrow(/power of two/);
    expect(() => wgslGeometry(spec(config({ rowsPerThread: 1, workgroupSize: 16 }, 64, 32)))).toThrow(/whole number/);
    expect(() => wgslGeometry(spec(config({ qGlobal: true })))).toThrow(/qGlobal needs vec4/);
    expect(() => wgslGeometry(spec(config({ bogus: 1 })))).toThrow(/unknown WGSL option "bogus"/);
  });

  it("reports the workgroup memory it declares", () => {
    const variants: Record<string, boolean>[] = [
      {}, { subgroups: true }, { vec4: true, qGlobal: true }, { doubleBuffer: true }, { shareKV: true }, { shareKV: true, doubleBuffer: true },
    ];
    for (const options of variants) {
      const s = spec(config(options));
      const g = wgslGeometry(s);
      const a = generateWgsl(s);
      expect(a.launch.sharedMemoryBytes).toBe(g.sharedBytes);
      const declared = [...a.source.matchAll(/var<workgroup> \w+: (.+);/g)].map((m) => m[1]);
      expect(declared.length).toBeGreaterThan(0);
    }
  });

  it("shareKV puts K and Vᵀ in one array: 128×32 tiles at head dim 128 fit 48 KB", () => {
    const wide = (options: Record<string, number | boolean>) =>
      spec(config({ rowsPerThread: 4, workgroupSize: 256, vec4: true, qGlobal: true, subgroups: true, ...options }, 128, 32), 128);
    expect(wgslGeometry(wide({})).sharedBytes).toBeGreaterThan(49152);
    const shared = generateWgsl(wide({ shareKV: true }));
    // K [32 keys][33 vec4] and Vᵀ [32 vec4 columns][33 keys] in one array, then P [32 row groups][33 vec4].
    expect(shared.launch.sharedMemoryBytes).toBe(2 * 32 * 33 * 16);
    expect([...shared.source.matchAll(/var<workgroup> (\w+)/g)].map((m) => m[1])).toEqual(["fa_kv", "fa_ps"]);
  });
});

describe("mods", () => {
  const doc = traceMaskMod(documentCausal(new Int32Array(256).map((_, i) => i >> 5)));
  const slopes = traceScoreMod(alibi(2));
  const source = (options: Record<string, number | boolean>, mask: ModGraph | null, score: ModGraph | null) =>
    generateWgsl(spec(config({ workgroupSize: 128, ...options }), 64, mask, score)).source;

  it("load a captured value once per query row and once per key column, not once per element", () => {
    for (const rm of [1, 2, 4]) {
      const src = source({ rowsPerThread: rm }, doc, null);
      const g = wgslGeometry(spec(config({ workgroupSize: 128, rowsPerThread: rm })));
      // documentCausal reads doc[q] and doc[kv]: RM row loads before the kv loops, RN column loads per tile.
      const loads = [...src.matchAll(/(?<!fn )fa_ld_i32\(/g)].length; // calls, not the prelude's definition
      expect(loads).toBe(g.RM + g.RN);
      expect(src.indexOf("fm_r0_")).toBeLessThan(src.indexOf("for (var bi"));
    }
  });

  it("compute a per-head value once per kernel", () => {
    const src = source({ rowsPerThread: 4 }, null, slopes);
    expect([...src.matchAll(/(?<!fn )fa_ld_f32\(/g)].length).toBe(1);
    expect([...src.matchAll(/let fs_p\d+: f32 =/g)].length).toBe(1);
  });
});

describe("artifacts", () => {
  it("are JSON-serializable, carry the ABI and a spec hash keyed by structure only", () => {
    const docs = (seed: number) => Int32Array.from({ length: 256 }, (_, i) => (i * seed) >> 6);
    const a = generateWgsl(spec(config(), 64, traceMaskMod(documentCausal(docs(1))), traceScoreMod(softcap(30))));
    const b = generateWgsl(spec(config(), 64, traceMaskMod(documentCausal(docs(3))), traceScoreMod(softcap(30))));
    expect(a.source).toBe(b.source); // captured data is an argument, never baked in
    expect(a.specHash).toBe(b.specHash);
    expect(generateWgsl(spec(config({ rowsPerThread: 2 }))).specHash).not.toBe(generateWgsl(spec(config())).specHash);
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
    expect(a.backend).toBe("wgsl");
    expect(a.entry).toBe("main");
    expect(a.abi).toEqual(kernelAbi(spec(config(), 64, traceMaskMod(documentCausal(docs(1))), traceScoreMod(softcap(30)))));
    expect(a.source).toMatch(/@compute @workgroup_size\(128\)/);
  });

  it("bind the LSE and captured buffers only when used", () => {
    const plain = generateWgsl(makeSpec({ mask: null, score: null, qkHeadDim: 32, vHeadDim: 32, dtype: "f32", returnLse: false, config: config({}, 64, 32) }));
    expect(plain.source).not.toMatch(/fa_lse|fa_cap/);
    const withAlibi = generateWgsl(spec(config(), 64, null, traceScoreMod(alibi(2))));
    expect(withAlibi.source).toMatch(/@binding\(6\) var<storage, read> fa_cap/);
    expect(withAlibi.source).toMatch(/@binding\(4\) var<storage, read_write> fa_lse/);
  });
});

describe("literals", () => {
  it("renders f32 and i32 constants exactly, non-finite ones through runtime values", () => {
    const sp = { posInf: "PINF", negInf: "NINF", nan: "QNAN" };
    expect(wgslFloat(1)).toBe("1.0f");
    expect(wgslFloat(0.1)).toBe(`${Math.fround(0.1)}f`);
    expect(wgslFloat(-2.5)).toBe("(-2.5f)");
    expect(wgslFloat(-0)).toBe("bitcast<f32>(0x80000000u)");
    expect(wgslFloat(1e-45)).toBe("bitcast<f32>(0x00000001u)");
    expect(wgslFloat(Infinity, sp)).toBe("PINF");
    expect(wgslFloat(-1e39, sp)).toBe("NINF");
    expect(wgslFloat(NaN, sp)).toBe("QNAN");
    expect(() => wgslFloat(Infinity)).toThrow();
    expect(wgslInt(-2147483648)).toBe("(-2147483647i - 1i)");
    expect(wgslInt(-3)).toBe("(-3i)");
    expect(wgslInt(7)).toBe("7i");
  });
});

describe("ABI packing", () => {
  it("packs params in field order into a 16-byte multiple", () => {
    const values = Object.fromEntries(PARAM_FIELDS.map(([n], i) => [n, n === "neg_inf" ? -Infinity : n === "nan" ? NaN : i + 0.25 * (PARAM_FIELDS[i][1] === "f32" ? 1 : 0)]));
    const buf = packParams(values as never);
    expect(buf.byteLength).toBe(PARAMS_BYTES);
    expect(PARAMS_BYTES % 16).toBe(0);
    const i32 = new Int32Array(buf);
    const f32 = new Float32Array(buf);
    PARAM_FIELDS.forEach(([n, t], i) => {
      if (t === "i32") expect(i32[i]).toBe(i);
      else if (n === "neg_inf") expect(f32[i]).toBe(-Infinity);
      else if (n === "nan") expect(f32[i]).toBeNaN();
      else expect(f32[i]).toBe(i + 0.25);
    });
  });

  it("packs the block-mask tables and captured buffers with their offsets", () => {
    const t = denseTables(100, 300, [32, 64]);
    const { data, offsets } = packTables(t);
    expect(offsets).toEqual([0, 4, 4 + 20, 4 + 20 + 4]);
    expect(Array.from(data.subarray(offsets[2], offsets[3]))).toEqual([5, 5, 5, 5]);
    const mask = traceMaskMod(documentCausal(Int32Array.from({ length: 16 }, (_, i) => i >> 2)));
    const score = traceScoreMod(alibi(3));
    const words = packCaptured(mask, score)!;
    const off = capturedOffsets({ mask, score });
    expect(off).toEqual({ mask: [0], score: [16], words: 19 });
    expect(words[5]).toBe(1);
    expect(new Float32Array(words.buffer, 16 * 4, 3)[0]).toBeCloseTo(2 ** (-8 / 3), 6);
    expect(packCaptured(null, null)).toBeNull();
  });
});

describe("subgroupMatrix", () => {
  const MATRIX: WgslLimits = { ...H100, subgroupMatrix: true };
  const mma = (blockM: number, blockN: number, T: number, extra: Record<string, number | boolean> = {}): KernelConfig =>
    ({ blockM, blockN, numWarps: T / 32, numStages: 1, prescaleQk: false, options: { subgroupMatrix: true, workgroupSize: T, vec4: true, ...extra } });

  it("is a candidate only where the device has subgroup matrices, ranked before the plain kernels; NVIDIA's shipped matrix shapes lead there", () => {
    expect(wgslConfigCandidates(problem(128), [128, 128], { limits: H100 }).some((c) => c.options?.subgroupMatrix)).toBe(false);
    for (const d of [64, 128]) {
      const all = wgslConfigCandidates(problem(d), [128, 128], { limits: MATRIX });
      const firstPlain = all.findIndex((c) => !c.options?.subgroupMatrix);
      expect(firstPlain).toBeGreaterThan(0);
      expect(all.slice(firstPlain).some((c) => c.options?.subgroupMatrix)).toBe(false);
      expect(all[0]).toMatchObject({ blockM: 128, blockN: 16, options: { subgroupMatrix: true, workgroupSize: 256 } });
      expect(wgslDefaultConfig(problem(d), [128, 128], { limits: MATRIX })).toEqual(all[0]);
      // Head dim 64 ships 32-key tiles, 128 16-key tiles, both with the next tile prefetched.
      const shipped = wgslBackend.shippedConfig?.(problem(d), [128, 128], { mask: null, score: null }, { signature: "t", limits: { ...MATRIX, vendor: "nvidia", vec4: true } });
      expect(shipped).toMatchObject({ blockM: 128, blockN: d === 64 ? 32 : 16, options: { subgroupMatrix: true, workgroupSize: 256, shareKV: true, prefetchNext: true } });
      expect(all).toContainEqual(shipped);
    }
    // Head dims that are not multiples of 16 get none, and the plain default.
    expect(wgslConfigCandidates(problem(40), [128, 128], { limits: MATRIX }).some((c) => c.options?.subgroupMatrix)).toBe(false);
    expect(wgslDefaultConfig(problem(40), [128, 128], { limits: MATRIX })).toEqual(wgslDefaultConfig(problem(40), [128, 128], { limits: H100 }));
  });

  it("declares a search space with both kernel families where the device has both", () => {
    const space = wgslBackend.configCandidates(problem(64), [128, 128], { mask: null, score: null }, { signature: "t", limits: { ...MATRIX, vec4: true } });
    expect(space.length).toBe(32);
    expect(space.filter((c) => c.options?.subgroupMatrix).length).toBe(16);
    expect(space[0].options?.subgroupMatrix).toBe(true);
    const plainOnly = wgslBackend.configCandidates(problem(64), [128, 128], { mask: null, score: null }, { signature: "t", limits: { ...H100, vec4: true } });
    expect(plainOnly.length).toBe(32);
  });

  it("can be forced through the candidate options, and then only subgroupMatrix configs are listed", () => {
    for (const limits of [H100, MATRIX]) {
      const forced = wgslConfigCandidates(problem(128), [128, 128], { limits, options: { subgroupMatrix: true } });
      expect(forced.length).toBeGreaterThan(0);
      expect(forced.every((c) => c.options?.subgroupMatrix === true)).toBe(true);
      expect(new Set(forced.map((c) => JSON.stringify(c))).size).toBe(forced.length);
    }
    const onH100 = generateWgsl(spec(wgslDefaultConfig(problem(128), [128, 128], { limits: H100, options: { subgroupMatrix: true } }), 128));
    expect(() => checkLimits(onH100, H100)).toThrow(/subgroupMatrix needs/);
    expect(() => wgslConfigCandidates(problem(40), [128, 128], { limits: MATRIX, options: { subgroupMatrix: true } })).toThrow(/head dims that are multiples of 16/);
  });

  it("derives the subgroup layout and rejects shapes it cannot run", () => {
    const g = wgslGeometry(spec(mma(128, 16, 256), 128));
    expect(g.matrix).toMatchObject({ RF: 1, NSG: 8, R: 16, LPR: 2, CPL: 8, DF: 8, NF: 1, KS: 136, PS: 24 });
    // The shared mod code sees one query row and CPL columns per invocation.
    expect([g.RM, g.G, g.TC, g.RN]).toEqual([1, 128, 2, 8]);
    expect(wgslGeometry(spec(mma(128, 32, 128), 64)).matrix).toMatchObject({ RF: 2, R: 32, LPR: 1, CPL: 32, PS: 40 });
    expect(() => wgslGeometry(spec(mma(128, 16, 256), 40))).toThrow(/multiples of 16/);
    expect(() => wgslGeometry(spec(mma(128, 8, 256)))).toThrow(/blockN a multiple of 16/);
    expect(() => wgslGeometry(spec(mma(128, 16, 64)))).toThrow(/16 or 32 rows per subgroup/);
    expect(() => wgslGeometry(spec(mma(128, 16, 256, { doubleBuffer: true })))).toThrow(/do not apply/);
  });

  it("with shareKV, stages V in K's place after the barrier that ends Q·Kᵀ, and fits 32-key tiles at head dim 64", () => {
    const g = wgslGeometry(spec(mma(128, 32, 256, { shareKV: true }), 64));
    expect(g.matrix).toMatchObject({ NF: 2, CPL: 16, smHalves: 2 * 32 * 72, QCW: 32 });
    expect(g.sharedBytes).toBeLessThanOrEqual(49152);
    expect(wgslGeometry(spec(mma(128, 32, 256), 64)).sharedBytes).toBeGreaterThan(49152);
    for (const prefetchV of [true, false]) {
      const src = generateWgsl(spec(mma(128, 32, 256, { shareKV: true, prefetchV }), 64, traceMaskMod(causal()))).source;
      const loop = src.slice(src.indexOf("// partial blocks"));
      const at = (re: RegExp) => loop.search(re);
      const sPublished = at(/subgroupMatrixStore<row_major>\(&fa_sc[^\n]*\n\s*workgroupBarrier\(\);/);
      const vStored = at(/fa_split\(0 \+ r \* 72/);
      // K's reads all come before the barrier that publishes S; V is stored after it, before the
      // softmax's flag barrier, and P·V reads it at offset 0.
      expect(at(/col_major>\(&fa_sm/)).toBeLessThan(sPublished);
      expect(vStored).toBeGreaterThan(sPublished);
      expect(vStored).toBeLessThan(at(/workgroupUniformLoad/));
      expect(loop).toMatch(/subgroupMatrixLoad<FA_MR, row_major>\(&fa_sm, 0u, 72u\)/);
      expect(loop.includes("vpre0")).toBe(prefetchV);
    }
  });

  it("with prefetchNext, loads the next tile's K and V into registers before each tile's first barrier", () => {
    for (const shareKV of [true, false]) {
      for (const d of [64, 128]) {
        const src = generateWgsl(spec(mma(128, 16, 256, { shareKV, prefetchNext: true }), d, traceMaskMod(causal()))).source;
        const [partial, full] = ["// partial blocks", "// full blocks"].map((m) => src.indexOf(m));
        for (const [loop, table] of [[src.slice(partial, full), "tab_kv"], [src.slice(full), "tab_full"]] as const) {
          const at = (s: string) => loop.indexOf(s);
          // Before the block loop, its first tile; in the tile, the next tile of the block or the first of the next block.
          expect(at(`let fa_first = fa_tab[P.${table}_idx + tab * P.sparse_kv_blocks + 0] * 128;`)).toBeGreaterThan(0);
          expect(at("let fa_first")).toBeLessThan(at("for (var bi"));
          expect(loop).toContain(`if (tt + 1 < 8 && kv0 + 16 < P.kv_len) { fa_next = kv0 + 16; } else if (bi + 1 < fa_tab[P.${table}_num + tab]) { fa_next = fa_tab[P.${table}_idx + tab * P.sparse_kv_blocks + bi + 1] * 128; }`);
          const tile = loop.slice(at("for (var tt"));
          const t = (s: string) => tile.indexOf(s);
          // K is split from the registers loaded a tile ago, before they are reloaded with the next tile's; no global K/V load waits on the tile's own rows.
          expect(t("let x = fa_kn0;")).toBeGreaterThan(0);
          expect(t("let x = fa_kn0;")).toBeLessThan(t("fa_kn0 = x;"));
          expect(t("fa_kn0 = x;")).toBeLessThan(t("workgroupBarrier();"));
          expect(tile).not.toMatch(/fa_ld4_[kv]\([kv]b \+ \(kv0 \+ r\)/);
          expect(tile).toMatch(/fa_ld4_k\(kb \+ \(fa_next \+ r\)/);
          if (shareKV) {
            // This tile's V is kept (fa_vc) before the reload and stored where K was after S is published.
            expect(t("let fa_vc0 = fa_vn0;")).toBeLessThan(t("fa_vn0 = x;"));
            expect(t("let x = fa_vc0;")).toBeGreaterThan(tile.search(/subgroupMatrixStore<row_major>\(&fa_sc[^\n]*\n\s*workgroupBarrier\(\);/));
          } else {
            expect(t("let x = fa_vn0;")).toBeLessThan(t("fa_vn0 = x;"));
            expect(tile).not.toContain("fa_vc0");
          }
          expect(tile).not.toContain("vpre0");
        }
      }
    }
    // A tile as wide as the BlockMask block has no in-block step.
    const wide = generateWgsl({ ...spec(mma(128, 16, 256, { shareKV: true, prefetchNext: true }), 64), sparseBlock: [128, 16] }).source;
    expect(wide).toContain("var fa_next = P.kv_len;\n");
    expect(wide).not.toContain("tt + 1");
    // The plain kernel has no use for it and ignores it.
    const plain = { blockM: 64, blockN: 32, numWarps: 4, numStages: 1, prescaleQk: false, options: { rowsPerThread: 4, workgroupSize: 128 } };
    const body = (c: KernelConfig) => generateWgsl(spec(c)).source.replace(/^.*\n/, ""); // without the header and its spec hash
    expect(body({ ...plain, options: { ...plain.options, prefetchNext: true } })).toBe(body(plain));
  });

  it("spreads a subgroup's S reads, P stores and K/V split stores over the banks (padS, staggerS, staggerSplit)", () => {
    /** The most distinct 32-bit words any bank serves in one access of lanes 0–31 (1 = no conflict). */
    const ways = (words: number[]) => {
      const perBank = new Map<number, Set<number>>();
      for (const w of words) perBank.set(w % 32, (perBank.get(w % 32) ?? new Set()).add(w));
      return Math.max(...[...perBank.values()].map((x) => x.size));
    };
    const lanes = [...Array(32).keys()];
    for (const blockN of [16, 32]) {
      const worst = (options: Record<string, boolean>) => {
        const src = generateWgsl(spec(mma(128, blockN, 256, { shareKV: true, ...options }), 64)).source;
        const [, lpr, ss] = src.match(/let srow = sbase \+ \(lane \/ (\d+)u\) \* (\d+)u;/)!.map(Number);
        const [, ps] = src.match(/let prow = pbase \+ \(lane \/ \d+u\) \* (\d+)u;/)!.map(Number);
        // Each lane's j-th column, as the kernel computes it (fa_col, or c + LPR·j unstaggered).
        const cols = [...src.matchAll(/let fa_col(\d+) = c \+ (\d+) \* \(\((\d+) \+ fa_rot\) & (\d+)\);/g)].map((m) => m.slice(1).map(Number));
        const col = (lane: number, j: number) => {
          const c = lane % lpr;
          if (!cols.length) return c + lpr * j;
          const [, step, k, mask] = cols[j];
          return c + step * ((k + Math.floor(lane / 16)) & mask);
        };
        const row = (lane: number) => Math.floor(lane / lpr);
        const visits = [...Array(blockN / lpr).keys()];
        // Every lane still visits each of its row's columns once.
        for (const lane of lanes) expect(new Set(visits.map((j) => col(lane, j)))).toEqual(new Set(visits.map((j) => (lane % lpr) + lpr * j)));
        const sReads = Math.max(...visits.map((j) => ways(lanes.map((l) => row(l) * ss + col(l, j)))));
        const pStores = Math.max(...visits.map((j) => ways(lanes.map((l) => Math.floor((row(l) * ps + col(l, j)) / 2)))));
        return { sReads, pStores };
      };
      // Unpadded rows of 16 or 32 floats start on 2 or 1 banks: 8 or 16 lanes collide.
      expect(worst({ padS: false, staggerS: false })).toEqual({ sReads: blockN === 16 ? 8 : 16, pStores: 2 });
      expect(worst({ padS: true, staggerS: false })).toEqual({ sReads: 2, pStores: 2 });
      expect(worst({ padS: true, staggerS: true })).toEqual({ sReads: 1, pStores: 1 });
    }
    // The split: o = 2 (lanes 16–31) writes the same layout in another order, and takes the banks lanes 0–15 leave.
    const src = generateWgsl(spec(mma(128, 16, 256, { staggerSplit: true }), 64)).source;
    const fn = src.slice(src.indexOf("fn fa_split("), src.indexOf("fn fa_split_q("));
    const stores = [...fn.matchAll(/fa_sm\[([^\]]+)\] = f16\(([hl])s\.([xyzw])\);/g)].map(([, at, half, comp]) => ({
      at: new Function("i", "lo", "o", `return ${at};`) as (i: number, lo: number, o: number) => number, half, comp: "xyzw".indexOf(comp),
    }));
    expect(stores).toHaveLength(8);
    expect(src).toContain("let fa_stg = select(0, 2, (tid & 16) != 0);");
    for (const o of [0, 2]) {
      const hs = o ? [2, 3, 0, 1] : [0, 1, 2, 3]; // hs = select(h, h.zwxy, o != 0)
      for (const st of stores) expect(st.at(100, 1000, o)).toBe(100 + (st.half === "l" ? 1000 : 0) + hs[st.comp]);
    }
    const KS = wgslGeometry(spec(mma(128, 16, 256), 64)).matrix!.KS;
    const at = (lane: number) => Math.floor(lane / 16) * KS + (lane % 16) * 4; // tileShares: r = i / 16, d4 = i - r * 16
    for (const st of stores.slice(0, 4)) {
      expect(ways(lanes.map((l) => Math.floor(st.at(at(l), 0, l & 16 ? 2 : 0) / 2)))).toBe(1);
      expect(ways(lanes.map((l) => Math.floor(st.at(at(l), 0, 0) / 2)))).toBe(2);
    }
  });

  it("stages Q through pp, which always holds 16 of its columns", () => {
    for (const d of [64, 128]) {
      for (const c of [mma(128, 16, 256), mma(128, 32, 256, { shareKV: true }), mma(64, 16, 64)]) {
        const src = generateWgsl(spec(c, d)).source;
        expect(src).toMatch(/fa_split_q\(/);
        expect(src).not.toMatch(/subgroupMatrixLoad<FA_ML, row_major>\(&fa_sm/);
      }
    }
  });

  it("declares the workgroup memory it reports, and keeps P's row stride off 16 halves", () => {
    const bytes = { f16: 2, f32: 4, u32: 4 } as Record<string, number>;
    for (const c of wgslConfigCandidates(problem(128), [128, 128], { limits: MATRIX }).filter((x) => x.options?.subgroupMatrix)) {
      const a = generateWgsl(spec(c, 128));
      const declared = [...a.source.matchAll(/var<workgroup> \w+: (?:array<(\w+|atomic<u32>), (\d+)>|atomic<u32>|u32);/g)]
        .reduce((sum, m) => sum + (m[1] ? (bytes[m[1]] ?? 4) * Number(m[2]) : 4), 0);
      expect(declared).toBe(a.launch.sharedMemoryBytes);
      expect(a.launch.sharedMemoryBytes).toBeLessThanOrEqual(49152);
      // A 32-byte P row stride gave wrong products on the H200 (results/wgsl-h200-mma-probe, call 9).
      const pStrides = [...a.source.matchAll(/subgroupMatrixLoad<FA_ML, row_major>\(&fa_pp, [^)]*, (\d+)u\)/g)].map((m) => Number(m[1]));
      expect(pStrides.length).toBeGreaterThan(0);
      expect(pStrides.every((s) => s !== 16 && s % 8 === 0)).toBe(true);
    }
  });

  it("starts every matrix array 16-byte aligned, and loads K and V at constant offsets", () => {
    // A 4-byte workgroup variable among the arrays made every matrix kernel wrong on the H200
    // (results/wgsl-h200.md); constant offsets let Tint's robustness leave the K/V loads unchecked.
    const size = { f16: 2, f32: 4, "atomic<u32>": 4 } as Record<string, number>;
    for (const d of [64, 128]) {
      for (const c of wgslConfigCandidates(problem(d), [128, 128], { limits: MATRIX }).filter((x) => x.options?.subgroupMatrix)) {
        const src = generateWgsl(spec(c, d, traceMaskMod(causal()), traceScoreMod(softcap(30)))).source;
        const decls = [...src.matchAll(/var<workgroup> (\w+): array<(f16|f32|atomic<u32>), (\d+)>;/g)];
        expect(decls.map((m) => m[1])).toEqual(["fa_rescale", "fa_sm", "fa_sc", "fa_pp"]);
        expect(src.match(/var<workgroup>/g)).toHaveLength(decls.length);
        for (const m of decls) expect((size[m[2]] * Number(m[3])) % 16).toBe(0);
        const kv = [...src.matchAll(/subgroupMatrixLoad<FA_MR, \w+>\(&fa_sm, ([^,]+),/g)];
        expect(kv.length).toBeGreaterThanOrEqual(8);
        for (const m of kv) expect(m[1]).toMatch(/^\d+u$/);
      }
    }
  });

  it("needs the device's subgroup matrices, and says how to get them", () => {
    const a = generateWgsl(spec(mma(128, 16, 256), 128));
    expect(() => checkLimits(a, H100)).toThrow(/subgroupMatrix needs .*chromium-experimental-subgroup-matrix.*allow_unsafe_apis/);
    expect(() => checkLimits(a, MATRIX)).not.toThrow();
  });
});
