/** The WGSL backward at generation level (no device): its configs, geometry and artifact. */
import { describe, expect, it } from "vitest";
import { buffer, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { causal } from "@flexattn/masks";
import { type KernelConfig, backwardMods, makeSpec, resolveProblem } from "@flexattn/template";
import {
  BACKWARD_OPTION, type WgslLimits, generateWgslBackward, wgslBackend, wgslBackwardConfigCandidates, wgslBackwardGeometry, wgslConfigCandidates,
} from "../src/index.js";

const problem = (d = 64) => resolveProblem({ batch: 1, qHeads: 4, kvHeads: 2, qLen: 256, kvLen: 256, qkHeadDim: d, vHeadDim: d, dtype: "f32", returnLse: true });
const DEFAULT: WgslLimits = { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
const table = buffer(new Float32Array(511), { name: "relBias" });
const biasMod = traceScoreMod((s, _b, _h, q, kv) => s.add(table.at(q.sub(kv).add(255))));
const mask = traceMaskMod(causal());
const config0 = () => wgslBackwardConfigCandidates(problem(), [128, 128], backwardMods(biasMod), DEFAULT)[0];
const spec = (config: KernelConfig, score = biasMod) =>
  makeSpec({ mask, score, qkHeadDim: 64, vHeadDim: 64, dtype: "f32", returnLse: true, sparseBlock: [128, 128], config });

describe("WGSL backward configs", () => {
  it("the backend's candidates: the forward's unchanged without pass, backward ones with pass: \"backward\"", () => {
    const p = problem();
    const forward = wgslBackend.configCandidates(p, [128, 128], { mask, score: biasMod }, { signature: "t", limits: DEFAULT });
    expect(forward).toEqual(wgslConfigCandidates(p, [128, 128], { limits: DEFAULT }).slice(0, forward.length));
    expect(forward.some((c) => c.options?.[BACKWARD_OPTION])).toBe(false);
    const backward = wgslBackend.configCandidates(p, [128, 128], { mask, score: biasMod }, { signature: "t", limits: { ...DEFAULT, pass: "backward" } });
    expect(backward.length).toBeGreaterThan(4);
    expect(backward.every((c) => c.options?.[BACKWARD_OPTION] === true)).toBe(true);
  });

  it("every candidate fits its limits, with the buffer-gradient contributions counted", () => {
    for (const d of [16, 64, 128, 256])
      for (const limits of [DEFAULT, { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024 }])
        for (const score of [null, biasMod]) {
          const cands = wgslBackwardConfigCandidates(problem(d), [128, 128], backwardMods(score), limits);
          for (const c of cands) {
            const g = wgslBackwardGeometry({ qkHeadDim: d, vHeadDim: d, dtype: "f32", config: c, sparseBlock: [128, 128] }, backwardMods(score));
            expect(g.sharedBytes).toBeLessThanOrEqual(limits.maxComputeWorkgroupStorageSize);
            expect(g.T).toBeLessThanOrEqual(limits.maxComputeInvocationsPerWorkgroup);
            expect(g.sites).toBe(score ? 1 : 0);
            // The contributions (entry and value) and 64 owners' bitmasks, a bit per element.
            const plain = wgslBackwardGeometry({ qkHeadDim: d, vHeadDim: d, dtype: "f32", config: c, sparseBlock: [128, 128] }, backwardMods(null));
            const E = c.blockM * c.blockN;
            expect(g.sharedBytes - plain.sharedBytes).toBe(score ? 8 * E + 4 * Math.min(g.T, 64) * Math.ceil(E / 32) : 0);
          }
        }
  });

  it("refuses a forward config and limits nothing fits, clearly", () => {
    const forward = wgslConfigCandidates(problem(), [128, 128])[0];
    expect(() => generateWgslBackward(spec(forward))).toThrow(/not a backward config/);
    const matrix = { ...config0(), options: { ...config0().options, subgroupMatrix: true } };
    expect(() => generateWgslBackward(spec(matrix))).toThrow(/option subgroupMatrix not supported \(the backward is scalar f32/);
    expect(() => wgslBackwardConfigCandidates(problem(), [128, 128], backwardMods(null), { maxComputeWorkgroupStorageSize: 512, maxComputeInvocationsPerWorkgroup: 256 }))
      .toThrow(/no WGSL backward config fits head dims 64\/64/);
  });
});

describe("WGSL backward artifact", () => {
  const config = wgslBackwardConfigCandidates(problem(), [128, 128], backwardMods(biasMod), DEFAULT)[0];

  it("four passes with a buffer gradient, three without; atomics only on the ownership bitmasks; JSON round trip", () => {
    const a = generateWgslBackward(spec(config));
    expect(a.passes.map((p) => p.name)).toEqual(["preprocess", "dkdv", "dq", "reduce"]);
    expect(a.gradBuffers).toEqual([{ slot: 0, name: "relBias", size: 511 }]);
    for (const p of a.passes) expect(a.source).toContain(`fn ${p.entry}(`);
    expect(a.source.split("\n").filter((l) => /atomic/.test(l) && !/fa_gmask/.test(l))).toEqual([]);
    expect(a.source.match(/atomic\w*/g)!.every((x) => ["atomic", "atomicStore", "atomicOr", "atomicLoad"].includes(x))).toBe(true);
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
    const plain = generateWgslBackward(spec(config, null as unknown as typeof biasMod));
    expect(plain.passes.map((p) => p.name)).toEqual(["preprocess", "dkdv", "dq"]);
    expect(plain.source).not.toMatch(/fa_goff|fa_gmask|atomic|fa_bwd_reduce/);
  });

  it("buffer gradients: each entry's owner adds its contributions in (site, element) order from its bitmask, the reduction runs over programs in order", () => {
    const src = generateWgslBackward(spec(config)).source;
    const E = config.blockM * config.blockN;
    expect(config.options!.workgroupSize).toBeGreaterThan(64);
    expect(src).toContain(`var<workgroup> fa_gmask: array<atomic<u32>, ${64 * Math.ceil(E / 32)}>;`);
    // Element phase: the contribution's entry and value, and bit k of its owner's (entry mod 64) mask.
    expect(src).toMatch(/if \(p != 0\.0f && off >= 0\) \{\s*let k = 0 \+ e;\s*let at = 0 \+ off;\s*fa_goff\[k\] = at;\s*fa_gval\[k\] = ds \* [^;]+;\s*atomicOr\(&fa_gmask\[\(k \/ 32\) \* 64 \+ at % 64\], 1u << u32\(k % 32\)\);/);
    // Walk: 64 owners, each over its own mask words, set bits in increasing order.
    const walk = new RegExp(
      `if \\(tid < 64\\) \\{\\s*var cur = -1;\\s*var sum = 0\\.0f;\\s*for \\(var w = 0; w < ${Math.ceil(E / 32)}; w\\+\\+\\) \\{\\s*` +
        `var bits = atomicLoad\\(&fa_gmask\\[w \\* 64 \\+ tid\\]\\);\\s*while \\(bits != 0u\\) \\{\\s*let k = w \\* 32 \\+ i32\\(countTrailingZeros\\(bits\\)\\);\\s*bits &= bits - 1u;`,
    );
    expect(src).toMatch(walk);
    expect(src).not.toMatch(new RegExp(`for \\(var e = 0; e < ${E}; e\\+\\+\\)`));
    expect(src).toMatch(/for \(var prog = 0; prog < P\.num_programs; prog\+\+\) \{ acc \+= fa_scratch\[P\.scratch_partials \+ prog \* 511 \+ e\]; \}/);
  });

  it("reports the workgroup memory it declares: entries and bitmasks for walked sites only", () => {
    const slopes = buffer(new Float32Array(4), { name: "slopes" });
    const alibi = traceScoreMod((s, _b, h, q, kv) => s.add(slopes.at(h).mul(q.sub(kv))));
    const both = traceScoreMod((s, _b, h, q, kv) => s.add(slopes.at(h).mul(q.sub(kv))).add(table.at(q.sub(kv).add(255))));
    const BYTES: Record<string, number> = { "vec4<f32>": 16, f32: 4, i32: 4, "atomic<u32>": 4 };
    for (const [score, walked, sites] of [[null, 0, 0], [biasMod, 1, 1], [alibi, 0, 1], [both, 1, 2]] as const) {
      const config = wgslBackwardConfigCandidates(problem(), [128, 128], backwardMods(score), DEFAULT)[0];
      const s = spec(config, score as typeof biasMod);
      const g = wgslBackwardGeometry(s, backwardMods(score));
      expect([g.sites, g.walkedSites]).toEqual([sites, walked]);
      const declared = [...generateWgslBackward(s).source.matchAll(/var<workgroup> \w+: array<(.+), (\d+)>;/g)]
        .reduce((n, m) => n + BYTES[m[1]] * Number(m[2]), 0);
      expect(g.sharedBytes).toBe(declared);
    }
  });

  it("a per-head table entry (the whole tile on one entry) is summed by a fixed tree, not through the owners' masks", () => {
    const slopes = buffer(new Float32Array(4), { name: "slopes" });
    const alibi = traceScoreMod((s, _b, h, q, kv) => s.add(slopes.at(h).mul(q.sub(kv))));
    const config = wgslBackwardConfigCandidates(problem(), [128, 128], backwardMods(alibi), DEFAULT)[0];
    const src = generateWgslBackward(spec(config, alibi)).source;
    const E = config.blockM * config.blockN;
    // Every element's value (0 where it contributes nothing), then halving steps, each behind a barrier;
    // the entry's offset (one per tile) is checked once, by the invocation that adds the sum.
    expect(src).toMatch(/fa_gval\[0 \+ e\] = select\(0\.0f, ds \* [^;]+, p != 0\.0f\);/);
    expect(src).toMatch(/if \(tid == 0\) \{[^}]*if \(off >= 0\) \{ fa_scratch\[part \+ \d+ \+ off\] \+= fa_gval\[0\]; \}/);
    expect(src).toContain(`for (var half = ${E >> 1}; half > 0; half >>= 1u) {`);
    expect(src).toMatch(/fa_gval\[0 \+ x\] \+= fa_gval\[0 \+ x \+ half\]; \}\s*workgroupBarrier\(\);/);
    expect(src).not.toContain("atomicOr");
    // With no site for the owners, neither their masks nor their walk.
    expect(src).not.toContain("fa_gmask");
  });

  it("the dK/dV pass walks the q-direction tables (partial, then full) for every query head of the group", () => {
    const src = generateWgslBackward(spec(config)).source;
    const dkdv = src.slice(src.indexOf("fn fa_bwd_dkdv"), src.indexOf("fn fa_bwd_dq"));
    expect(dkdv).toMatch(/for \(var hq = hkv \* group_size; hq < \(hkv \+ 1\) \* group_size; hq\+\+\)/);
    expect(dkdv.indexOf("P.tab_q_num")).toBeGreaterThan(0);
    expect(dkdv.indexOf("P.tab_full_q_num")).toBeGreaterThan(dkdv.indexOf("P.tab_q_num"));
    expect(dkdv).not.toMatch(/tab_kv_num|tab_full_kv_num/);
  });
});
