/** The playground's logic in Node: mods from editor text, the picture, runs, sources, share links. */
import { causal, createBlockMask } from "flexattn";
import { describe, expect, it } from "vitest";
import { compileMaskMod, compileScoreMod, isBlank } from "../src/playground/mods.js";
import { analyze, generatedSource, runAttention } from "../src/playground/session.js";
import { DEFAULT_STATE, type PlaygroundState, carriesCode, decodeState, encodeState } from "../src/playground/state.js";

const sizes = { N: 256, H: 2 };
const small: PlaygroundState = { ...DEFAULT_STATE, N: 128, H: 2, D: 16, block: 32 };

describe("mods from editor text", () => {
  it("takes an expression, a library call, or a function body", () => {
    for (const src of ["(b, h, q, kv) => q.ge(kv)", "causal()", "const w = 8;\nreturn (b, h, q, kv) => q.sub(kv).le(w);"]) {
      const r = compileMaskMod(src, sizes);
      expect(r.ok, src).toBe(true);
    }
    const r = compileScoreMod("(s, b, h, q, kv) => s.add(toF32(h))", sizes);
    expect(r.ok && r.graph.kind).toBe("score");
  });

  it("sees N and H, and the mod's graph is the traced one", () => {
    const r = compileMaskMod("(b, h, q, kv) => q.lt(N - 1).and(h.lt(H))", { N: 100, H: 3 });
    expect(r.ok).toBe(true);
    if (r.ok) expect(createBlockMask(r.mod, { qLen: 100, kvLen: 100, blockSize: 10 }).sparsity()).toBe(0);
  });

  it("turns every failure into the library's message", () => {
    const fail = (src: string) => {
      const r = compileMaskMod(src, sizes);
      expect(r.ok, src).toBe(false);
      return r.ok ? "" : r.error;
    };
    expect(fail("(b, h, q, kv) => q >= kv")).toContain("q.ge(kv) for q >= kv");
    expect(fail("(b, h, q, kv) => q.ge(")).toMatch(/^SyntaxError: /);
    expect(fail("42")).toBe("the mask mod's text must give a function (b, h, q, kv) => ..., got number");
    expect(fail("(b, h, q, kv) => q.sub(kv)")).toContain("must return a boolean");
    expect(fail("undefinedName")).toMatch(/^ReferenceError: undefinedName/);
  });

  it("reads blank text (or only comments) as no mod", () => {
    expect(isBlank("  // nothing\n/* here */ ")).toBe(true);
    expect(isBlank("causal()")).toBe(false);
    const a = analyze({ ...small, mask: "// none", score: "" });
    expect(a.mask).toBeNull();
    expect(a.score).toBeNull();
    expect(a.sparsity).toBe(0);
  });
});

describe("analysis, runs and sources", () => {
  it("draws the BlockMask the mask mod gives", () => {
    const a = analyze({ ...small, mask: "causal()" });
    const want = createBlockMask(causal(), { B: 1, H: 2, qLen: 128, kvLen: 128, blockSize: 32 });
    expect(a.sparsity).toBe(want.sparsity());
    expect(a.svg).toContain(`data-sparsity="${want.sparsity().toFixed(2)}"`);
  });

  it("reports a bad BlockMask request as text", () => {
    const a = analyze({ ...small, block: 0 });
    expect(a.blockMask).toBeUndefined();
    expect(a.error).toMatch(/block/i);
  });

  it("runs the JS kernel and measures its error against the float64 reference", async () => {
    const a = analyze(small);
    const r = await runAttention(small, a, "js", 7);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.report.badElements).toBe(0);
    expect(r.report.outError).toBeLessThan(1e-5);
    expect(r.report.lseError).toBeLessThan(1e-5);
    expect(r.report.device).toContain("JavaScript");
  });

  it("gives a run's error as text, never a throw", async () => {
    const bad = { ...small, score: "(s, b, h, q, kv) => s.add(q.ge(kv))" };
    const r = await runAttention(bad, analyze(bad), "js");
    expect(r).toEqual({ ok: false, error: expect.stringContaining("use toI32(cond) or where(cond, a, b)") });
  });

  it("generates every backend's source for the variant", () => {
    const a = analyze(small);
    const marks = { wgsl: "@compute", triton: "@triton.jit", cuda: "__global__", js: "function flexattn_fwd" } as const;
    for (const [backend, mark] of Object.entries(marks)) {
      const s = generatedSource(small, a, backend as keyof typeof marks);
      expect(s.ok && s.source, backend).toContain(mark);
    }
  });
});

describe("share links", () => {
  it("round-trips the variant through the URL hash", () => {
    const s: PlaygroundState = { mask: "andMasks(causal(), (b, h, q, kv) => q.sub(kv).lt(64)) // ünïcode ✓", score: "", N: 1024, H: 4, D: 64, block: 64 };
    const hash = encodeState(s);
    expect(hash).toMatch(/^#v=[A-Za-z0-9_-]+$/);
    expect(decodeState(hash)).toEqual({ state: s });
    // Its mods are code of the link's own: the page asks before running them; the default's it runs.
    expect(carriesCode(decodeState(hash))).toBe(true);
    expect(carriesCode(decodeState(encodeState({ ...DEFAULT_STATE, N: 1024 })))).toBe(false);
    expect(carriesCode(decodeState("#v=%%%"))).toBe(false);
  });

  it("falls back to the default with a message on a damaged link, and clamps sizes", () => {
    const broken = decodeState("#v=%%%");
    expect(broken.state).toEqual(DEFAULT_STATE);
    expect(broken.error).toContain("could not be read");
    expect(decodeState("").state).toEqual(DEFAULT_STATE);
    const huge = decodeState(encodeState({ ...DEFAULT_STATE, N: 1e9, D: 3 }));
    expect(huge.state.N).toBe(2048);
    expect(huge.state.D).toBe(16);
  });
});
