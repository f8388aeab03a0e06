/**
 * The generated module's backward, checked on the CPU: backward_module.py runs the module's forward, its autograd
 * Function and its four backward kernels under a numpy emulation of triton.language (triton_emulator.py) and a
 * numpy stand-in for torch, against the float64 reference gradients of the backward conformance cases.
 * bf16 cases are left to the GPU harness (numpy has no bf16); the 8×16-block case is refused by the Triton backend.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { abs, buffer, min, tanh, toF32, toI32, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import {
  BACKWARD_CASES, BACKWARD_TOLERANCE, type BackwardInstance, backwardMods, fullTablesOf, instantiateBackwardCase, makeSpec,
  referenceBackward, toFloat32,
} from "@flexattn/template";
import { describe, expect, it } from "vitest";
import { backwardCandidates, backwardDefault, bufferArgs, moduleBackwardMods, tritonBackend, tritonDefaultConfig } from "../src/index.js";
import { causal, pyCompile } from "./helpers.js";

const SCRIPT = fileURLToPath(new URL("./backward_module.py", import.meta.url));

function specOf(inst: BackwardInstance) {
  const p = inst.problem;
  return makeSpec({
    mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype, returnLse: true,
    sparseBlock: inst.case.blockSize, config: tritonDefaultConfig(p, inst.case.blockSize),
  });
}

/** The case as backward_module.py reads it: values as plain numbers. */
function caseJson(inst: BackwardInstance) {
  const p = inst.problem;
  const spec = specOf(inst);
  const ref = referenceBackward(inst);
  const t = (x: BackwardInstance["q"]) => ({ shape: x.shape, strides: x.strides, dtype: x.dtype, data: Array.from(toFloat32(x.data, x.dtype)) });
  const full = fullTablesOf(inst.blockMask);
  const scoreName = (slot: number) => bufferArgs(spec).find((b) => b.owner === "score" && b.slot === slot)!.pyName;
  const grads = backwardMods(inst.score).gradBuffers.map((g) => {
    const r = ref.dBuffers.find((d) => d.slot === g.slot)!;
    return { name: scoreName(g.slot), grad: Array.from(r.grad), absSum: Array.from(r.absSum) };
  });
  return {
    name: inst.case.name, problem: p, tolerance: BACKWARD_TOLERANCE[p.dtype],
    q: t(inst.q), k: t(inst.k), v: t(inst.v), dout: t(inst.dOut),
    tables: {
      Bm: inst.blockMask.Bm, Hm: inst.blockMask.Hm, QB: inst.blockMask.numQBlocks, KVB: inst.blockMask.numKvBlocks,
      kvNumBlocks: Array.from(inst.blockMask.kvNumBlocks), kvIndices: Array.from(inst.blockMask.kvIndices),
      fullKvNumBlocks: Array.from(full.fullKvNumBlocks), fullKvIndices: Array.from(full.fullKvIndices),
    },
    buffers: bufferArgs(spec).map((b) => ({
      name: b.pyName, dtype: b.dtype, shape: b.shape, data: Array.from((b.owner === "mask" ? spec.mask : spec.score)!.buffers[b.slot].data!),
    })),
    gradBuffers: grads.map((g) => g.name),
    ref: { dq: Array.from(ref.dq), dk: Array.from(ref.dk), dv: Array.from(ref.dv), buffers: grads },
  };
}

/** Loop forms and bounds switches of one backward's launches (the script's "info: " line). */
type Launches = Record<"dkdv" | "dq", Record<"PARTIAL_LOOP" | "FULL_LOOP" | "EVEN_M" | "EVEN_N", number>>;

/** What one case's run reports: failures, its launches, and whether it also ran its diagonal sums' fallback. */
function runEmulated(inst: BackwardInstance): { failures: string[]; launches: Launches; diagonal: boolean; withoutGather: boolean } {
  const dir = mkdtempSync(join(tmpdir(), "flexattn-triton-bwd-"));
  try {
    const source = tritonBackend.generate(specOf(inst)).source;
    writeFileSync(join(dir, "m.py"), source);
    writeFileSync(join(dir, "case.json"), JSON.stringify(caseJson(inst)));
    const out = execFileSync("python3", [SCRIPT, join(dir, "m.py"), join(dir, "case.json")], { encoding: "utf8", maxBuffer: 1 << 26 });
    const lines = out.split("\n").filter((l) => l.trim().length > 0);
    const info = lines.find((l) => l.startsWith("info: "));
    const note = "note: checked without tl.gather";
    return {
      failures: lines.filter((l) => l !== info && l !== note), launches: info ? JSON.parse(info.slice(6)) : null,
      diagonal: source.includes("tl.gather(g_val"), withoutGather: lines.includes(note),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const emulated = BACKWARD_CASES.filter((cs) => cs.problem.dtype !== "bf16" && cs.blockSize.every((b) => b >= 16));

describe("generated Triton backward (numpy emulation of triton.language)", () => {
  it("covers every backward case but the bf16 one and the one with 8-row blocks", () => {
    expect(emulated.length).toBe(BACKWARD_CASES.length - 2);
  });
  const seen: Launches[] = [];
  let diagonalCases = 0;
  for (const [i, cs] of emulated.entries()) {
    it(`${cs.name}: gradients match the float64 reference, deterministic, autograd wiring and argument errors`, () => {
      const { failures, launches, diagonal, withoutGather } = runEmulated(instantiateBackwardCase(cs, 4242 + i));
      expect(failures).toEqual([]);
      expect(launches).not.toBeNull();
      // A module with diagonal sums also runs its entry-by-entry fallback (a Triton without tl.gather).
      expect(withoutGather).toBe(diagonal);
      if (diagonal) diagonalCases++;
      seen.push(launches);
    }, 120_000);
  }
  it("the relative-position table cases run diagonal sums and their fallback", () => {
    expect(diagonalCases).toBe(4);
  });
  // Every case also runs forced to LOOP_INDEXED (backward_module.py); these are the forms the launcher picked itself.
  it("the cases drop a block loop, walk one range, and run with and without row bounds, in each pass", () => {
    expect(seen.length).toBe(emulated.length);
    for (const pass of ["dkdv", "dq"] as const) {
      const forms = new Set(seen.flatMap((l) => [l[pass].PARTIAL_LOOP, l[pass].FULL_LOOP]));
      expect(forms.has(0) && forms.has(1)).toBe(true);
      for (const even of ["EVEN_M", "EVEN_N"] as const) expect(new Set(seen.map((l) => l[pass][even]))).toEqual(new Set([0, 1]));
    }
  });
});

describe("generated Triton backward source", () => {
  it("byte-compiles for every backward conformance case Triton accepts", () => {
    const sources: Record<string, string> = {};
    BACKWARD_CASES.forEach((cs, i) => {
      if (cs.blockSize.some((b) => b < 16)) return;
      sources[`bwd${i}`] = tritonBackend.generate(specOf(instantiateBackwardCase(cs, 7 + i))).source;
    });
    expect(Object.keys(sources).length).toBe(BACKWARD_CASES.length - 1);
    expect(pyCompile(sources)).toEqual([]);
  });

  it("picks the backward's default tiles by head dim, dtype, a transcendental score mod and a mask that reads a buffer", () => {
    const softcap = traceScoreMod((s, _b, _h, _q, _kv) => tanh(s.div(30)).mul(30));
    const spec = (d: number, score: typeof softcap | null, dtype: "bf16" | "f32" = "bf16") => makeSpec({
      mask: causal, score, qkHeadDim: d, vHeadDim: d, dtype, returnLse: true, sparseBlock: [128, 128],
      config: tritonDefaultConfig({ qkHeadDim: d, vHeadDim: d, dtype }, [128, 128]),
    });
    const tiles = (c: ReturnType<typeof backwardDefault>) => [c.blockM1, c.blockN1, c.blockM2, c.blockN2, c.numWarps];
    expect(tiles(backwardDefault(spec(128, null)))).toEqual([64, 128, 128, 64, 8]);
    expect(tiles(backwardDefault(spec(128, softcap)))).toEqual([32, 128, 128, 32, 8]);
    expect(tiles(backwardDefault(spec(64, softcap)))).toEqual([64, 64, 64, 64, 4]);
    expect(tiles(backwardDefault(spec(128, softcap, "f32")))).toEqual([32, 32, 32, 32, 4]);
    // A mask that reads a buffer (document ids): smaller programs on 4 warps at d = 128.
    const docIds = buffer(new Int32Array(256), { name: "doc" });
    const documentCausal = traceMaskMod((_b, _h, q, kv) => docIds.at(q).eq(docIds.at(kv)).and(q.ge(kv)));
    const docSpec = makeSpec({
      mask: documentCausal, score: null, qkHeadDim: 128, vHeadDim: 128, dtype: "bf16", returnLse: true, sparseBlock: [128, 128],
      config: tritonDefaultConfig({ qkHeadDim: 128, vHeadDim: 128, dtype: "bf16" }, [128, 128]),
    });
    expect(tiles(backwardDefault(docSpec))).toEqual([32, 64, 64, 32, 4]);
    // A learnable relative-position table (its gradient summed along diagonals): the smaller programs at every head
    // dim; a bucketed table keeps the mod-free default.
    const rel = buffer(new Float32Array(511), { name: "rel" });
    const buckets = buffer(new Float32Array(32), { shape: [4, 8], name: "buckets" });
    const relative = traceScoreMod((s, _b, _h, q, kv) => s.add(rel.at(q.sub(kv).add(255))));
    const bucketed = traceScoreMod((s, _b, h, q, kv) => s.add(buckets.at(h, min(abs(q.sub(kv)).floorDiv(32), 7))));
    expect(tiles(backwardDefault(spec(128, relative)))).toEqual([32, 64, 64, 32, 4]);
    expect(tiles(backwardDefault(spec(64, relative)))).toEqual([32, 64, 64, 32, 4]);
    expect(tiles(backwardDefault(spec(128, bucketed)))).toEqual([64, 128, 128, 64, 8]);
    // The default leads the candidates the module carries, once.
    const candidates = backwardCandidates(spec(128, softcap));
    expect(tiles(candidates[0])).toEqual([32, 128, 128, 32, 8]);
    expect(new Set(candidates.map((c) => JSON.stringify(c))).size).toBe(candidates.length);
  });

  it("reduces buffer gradients without atomics, and only a module with a gradient buffer has the reduce kernel", () => {
    const [bias, plain] = ["learnable-relative-bias-2N-1", "causal"].map((name) =>
      tritonBackend.generate(specOf(instantiateBackwardCase(BACKWARD_CASES.find((cs) => cs.name === name)!, 1))).source);
    expect(bias).toContain("def _flexattn_bwd_reduce(");
    expect(bias).toMatch(/^GRAD_BUFFERS = \(\("score_relBias", 111\), \)/m);
    expect(plain).not.toContain("def _flexattn_bwd_reduce(");
    for (const src of [bias, plain]) expect(src).not.toMatch(/tl\.atomic_/);
  });

  it("sums a relative-position table's gradient along the tile's diagonals; a bucketed table entry by entry", () => {
    const source = (name: string) =>
      tritonBackend.generate(specOf(instantiateBackwardCase(BACKWARD_CASES.find((cs) => cs.name === name)!, 1))).source;
    for (const name of ["learnable-relative-bias-2N-1", "learnable-head-relative-bias-gqa"]) {
      const src = source(name);
      expect(src).toContain("tl.gather(g_val");
      // Entry by entry only where Triton has no tl.gather: the launcher passes the module's probe.
      expect(src).toMatch(/^_HAS_GATHER = hasattr\(tl, "gather"\)/m);
      expect(src).toMatch(/if DIAGONAL_SUMS:\n(\s+)for g_k in tl\.static_range[\s\S]*?\n\1?\s*else:\n\s+g_lo = /);
      expect(src).toContain('"DIAGONAL_SUMS": _HAS_GATHER');
    }
    const table = buffer(new Float32Array(4 * 8), { shape: [4, 8], name: "bucketBias" });
    const buckets = tritonBackend.generate(makeSpec({
      mask: causal, score: traceScoreMod((s, _b, h, q, kv) => s.add(table.at(h, min(abs(q.sub(kv)).floorDiv(4), 7)))),
      qkHeadDim: 64, vHeadDim: 64, dtype: "bf16", returnLse: true, sparseBlock: [128, 128],
      config: tritonDefaultConfig({ qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" }, [128, 128]),
    })).source;
    expect(buckets).toMatch(/for e in range\(g_lo, g_hi \+ 1\)/);
    expect(buckets).not.toContain("tl.gather(");
    expect(buckets).not.toMatch(/DIAGONAL_SUMS|_HAS_GATHER/);
  });

  it("computes a mod term once per loop where it does not change over the loop's tiles", () => {
    // Document-causal with an ALiBi-like per-head slope: dkdv (one kv tile, looping over q tiles) reads the key's
    // document id before its loops; dq (one q tile, looping over kv tiles) reads the query's id and the slope before them.
    const docIds = buffer(new Int32Array(256), { name: "doc" });
    const mask = traceMaskMod((_b, _h, q, kv) => docIds.at(q).eq(docIds.at(kv)).and(q.ge(kv)));
    const score = traceScoreMod((s, _b, h, q, kv) => s.add(toF32(h.add(1)).mul(-0.5).mul(toF32(q.sub(kv)))));
    const src = tritonBackend.generate(makeSpec({
      mask, score, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16", returnLse: true, sparseBlock: [128, 128],
      config: tritonDefaultConfig({ qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" }, [128, 128]),
    })).source;
    const kernel = (name: string) => src.slice(src.indexOf(`def ${name}(`), src.indexOf("@triton.jit", src.indexOf(`def ${name}(`)));
    /** The lines of a pass's partial-block section before its first loop, and those inside the loops. */
    const split = (body: string) => {
      const section = body.slice(body.indexOf("# ---- partial blocks"), body.indexOf("# ---- full blocks"));
      const loop = section.search(/\n\s*for /);
      return [section.slice(0, loop), section.slice(loop)];
    };
    const [dkdvBefore, dkdvLoop] = split(kernel("_flexattn_bwd_dkdv"));
    expect(dkdvBefore).toMatch(/_fa_gather1\(mask_doc\w*, kv_idx/);
    expect(dkdvLoop).toMatch(/_fa_gather1\(mask_doc\w*, q_idx/);
    expect(dkdvLoop).not.toMatch(/_fa_gather1\(mask_doc\w*, kv_idx/);
    const [dqBefore, dqLoop] = split(kernel("_flexattn_bwd_dq"));
    expect(dqBefore).toMatch(/_fa_gather1\(mask_doc\w*, q_idx/);
    expect(dqBefore).toMatch(/off_h/);
    expect(dqLoop).not.toMatch(/_fa_gather1\(mask_doc\w*, q_idx/);
    expect(dqLoop).toMatch(/_fa_gather1\(mask_doc\w*, kv_idx/);
    expect(pyCompile({ m: src })).toEqual([]);
  });

  it("a score mod whose buffer gradient cannot be produced gives a module that says why instead of a backward", () => {
    const table = buffer(new Float32Array(16), { name: "t" });
    // The index depends on the score: its gradient would scatter to an entry that moves with the recomputed score.
    const score = traceScoreMod((s, _b, _h, _q, _kv) => s.add(table.at(toI32(s))));
    const spec = makeSpec({ mask: causal, score, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16", returnLse: false, sparseBlock: [128, 128],
      config: { blockM: 64, blockN: 64, numWarps: 4, numStages: 2, prescaleQk: false } });
    expect(moduleBackwardMods(spec).unavailable).toMatch(/computed from the score/);
    const src = tritonBackend.generate(spec).source;
    expect(src).toMatch(/^BACKWARD_UNAVAILABLE = ".*computed from the score/m);
    expect(src).not.toContain("def _flexattn_bwd_dkdv(");
    expect(pyCompile({ m: src })).toEqual([]);
  });
});
