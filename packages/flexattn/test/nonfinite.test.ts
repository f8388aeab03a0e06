/**
 * The non-finite-value rules (NUMERICS.zeroWeights / infiniteScores), PyTorch's flex_attention
 * semantics on every backend: every key of a block the BlockMask lists for a row adds p·V, p = 0
 * for a masked key, so NaN/±inf in its V makes those output columns NaN (0·NaN, 0·inf); keys of
 * unlisted blocks never reach a row; a fully masked row has LSE -inf and out acc·0; a +inf score
 * makes its row NaN. JS, WGSL and Triton (numpy emulation) are executed against the float64
 * reference and against the expectations written out below; the CUDA source is inspected and
 * compiled with nvcc where it is installed.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  type MaskMod, type ModGraph, type ReferenceResult, type ScoreMod, type Tensor, type Value, buffer, causal, compile, createBlockMask, flexAttention,
  flexAttentionBackward, randomTensor, referenceAttention, referenceBackward, resolveProblem, traceScoreMod, where,
} from "../src/index.js";
import { isWebGpuAvailable } from "@flexattn/webgpu";
import { compareWithReference } from "./fuzz/check.js";
import { compileCudaKernels, findTool } from "./fuzz/toolchains.js";

const REQUIRE_WEBGPU = process.env.FLEXATTN_REQUIRE_WEBGPU === "1" || process.env.CI === "true";
const REQUIRE_TOOLCHAINS = process.env.FLEXATTN_REQUIRE_TOOLCHAINS === "1" || (process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false");
const H = 2;
const D = 16;

/** A key of V whose columns [from, to) hold `value`, in both heads. */
interface Poison {
  key: number;
  cols: [number, number];
  value: number;
}

/** What some output elements must be: NaN, finite, or exactly 0. */
interface Expect {
  heads?: number[];
  rows: [number, number];
  cols: [number, number];
  is: "nan" | "finite" | "zero";
  why: string;
}

interface Case {
  name: string;
  n: number;
  blockSize: number;
  mask: MaskMod;
  scoreMod?: ScoreMod;
  poison: Poison[];
  expect: Expect[];
  /** Rows whose LSE must be NaN or -inf. */
  lse?: { rows: number[]; is: "nan" | "-inf" }[];
}

const all = [0, D] as [number, number];
// Keys 20, 21, 22: NaN in columns 0..3, +inf in 4..7, -inf in 8..11; columns 12..15 finite.
const mid: Poison[] = [
  { key: 20, cols: [0, 4], value: Number.NaN },
  { key: 21, cols: [4, 8], value: Number.POSITIVE_INFINITY },
  { key: 22, cols: [8, 12], value: Number.NEGATIVE_INFINITY },
];
// 44 keys in blocks of 16: rows 16..23 see no key of block 1 (16..31), rows 24..31 causally, rows 40..43 nothing.
const shaped = (_b: Value, _h: Value, q: Value, kv: Value) => kv.le(q).and(q.lt(24).and(kv.ge(16)).not()).and(q.lt(40));
const cut = buffer(Int32Array.from([20, 22]), { name: "cut" });

const cases: Case[] = [
  {
    name: "masked keys of listed partial blocks, unlisted blocks, fully masked rows",
    n: 44,
    blockSize: 16,
    mask: shaped,
    poison: [...mid, { key: 41, cols: [12, 13], value: Number.NaN }],
    expect: [
      { rows: [0, 16], cols: all, is: "finite", why: "blocks 1 and 2 are not listed for rows 0..15" },
      { rows: [16, 24], cols: [0, 12], is: "nan", why: "keys 20..22 are masked keys of listed partial block 1: 0·NaN, 0·inf" },
      { rows: [16, 32], cols: [12, 16], is: "finite", why: "block 2 is not listed for rows 16..31" },
      { rows: [32, 40], cols: [12, 13], is: "nan", why: "key 41 is a masked key of listed partial block 2" },
      { rows: [40, 44], cols: [0, 13], is: "nan", why: "fully masked rows: acc·0 is NaN where a listed key's V is" },
      { rows: [40, 44], cols: [13, 16], is: "zero", why: "fully masked rows: 0 elsewhere" },
    ],
    lse: [{ rows: [40, 41, 42, 43], is: "-inf" }],
  },
  {
    name: "-inf from a score mod in full blocks",
    n: 48,
    blockSize: 16,
    mask: (_b, _h, _q, kv) => kv.lt(32),
    // Keys 20..22 of head 0, and every key of query 5, dropped by the score mod; block 1 is full.
    scoreMod: (s, _b, h, q, kv) => where(kv.ge(cut.at(0)).and(kv.le(cut.at(1))).and(h.eq(0)).or(q.eq(5)), -Infinity, s),
    poison: [...mid, { key: 40, cols: [12, 16], value: Number.NaN }],
    expect: [
      { heads: [0], rows: [0, 48], cols: [0, 12], is: "nan", why: "keys 20..22 of a listed full block, p = 0 from the score mod" },
      { rows: [0, 48], cols: [12, 16], is: "finite", why: "block 2 (key 40) is not listed" },
      { heads: [1], rows: [5, 6], cols: [0, 12], is: "nan", why: "query 5 is fully masked by the score mod: acc·0" },
      { rows: [5, 6], cols: [12, 16], is: "zero", why: "query 5 is fully masked by the score mod" },
    ],
    lse: [{ rows: [5], is: "-inf" }],
  },
  {
    name: "scores past f32 range",
    n: 44,
    blockSize: 16,
    mask: shaped,
    // +inf for query 3 (a NaN row), -inf for every key of query 4 (fully masked).
    scoreMod: (s, _b, _h, q, _kv) => where(q.eq(3), s.add(100).mul(1e30).mul(1e30), where(q.eq(4), s.sub(100).mul(1e30).mul(1e30), s)),
    poison: mid,
    expect: [
      { rows: [3, 4], cols: all, is: "nan", why: "a +inf score makes its row NaN" },
      { rows: [4, 5], cols: all, is: "zero", why: "-inf scores everywhere, listed V finite" },
      { rows: [5, 16], cols: all, is: "finite", why: "block 1 is not listed for rows 0..15" },
      { rows: [16, 24], cols: [0, 12], is: "nan", why: "masked keys 20..22 of listed partial block 1" },
    ],
    lse: [{ rows: [3], is: "nan" }, { rows: [4], is: "-inf" }],
  },
  {
    name: "large blocks: a kernel tile with every element masked, inside a listed block",
    n: 160,
    blockSize: 128,
    mask: causal(),
    poison: [{ key: 100, cols: [0, 4], value: Number.NaN }, { key: 150, cols: [4, 5], value: Number.POSITIVE_INFINITY }],
    expect: [
      { rows: [0, 100], cols: [0, 4], is: "nan", why: "key 100 is a masked key of listed partial block 0 (tile rows 0..63 × keys 64..127 all masked)" },
      { rows: [0, 128], cols: [4, 16], is: "finite", why: "block 1 (key 150) is not listed for rows 0..127" },
      { rows: [128, 150], cols: [4, 5], is: "nan", why: "key 150 is a masked key of listed partial block 1" },
    ],
  },
];

function poisonedV(c: Case): Tensor {
  const v = randomTensor([1, H, c.n, D], { seed: 3 });
  const d = v.data as Float32Array;
  for (let h = 0; h < H; h++)
    for (const { key, cols, value } of c.poison) for (let j = cols[0]; j < cols[1]; j++) d[(h * c.n + key) * D + j] = value;
  return v;
}

function setup(c: Case) {
  const q = randomTensor([1, H, c.n, D], { seed: 1 });
  const k = randomTensor([1, H, c.n, D], { seed: 2 });
  const v = poisonedV(c);
  const blockMask = createBlockMask(c.mask, { qLen: c.n, kvLen: c.n, blockSize: c.blockSize });
  const problem = resolveProblem({ batch: 1, qHeads: H, kvHeads: H, qLen: c.n, kvLen: c.n, qkHeadDim: D, vHeadDim: D, dtype: "f32", returnLse: true });
  const score: ModGraph | null = c.scoreMod ? traceScoreMod(c.scoreMod) : null;
  const ref = referenceAttention({ problem, q, k, v, mask: blockMask.maskGraph ?? null, score, blockMask });
  return { q, k, v, blockMask, problem, score, ref };
}

/** The case's written-out expectations on out [1, H, n, D] and lse [1, H, n]; the first miss, or null. */
function missedExpectation(c: Case, out: ArrayLike<number>, lse: ArrayLike<number>): string | null {
  const ok = { nan: Number.isNaN, finite: Number.isFinite, zero: (x: number) => x === 0 };
  for (const e of c.expect)
    for (const h of e.heads ?? [0, 1])
      for (let i = e.rows[0]; i < e.rows[1]; i++)
        for (let d = e.cols[0]; d < e.cols[1]; d++) {
          const x = out[(h * c.n + i) * D + d];
          if (!ok[e.is](x)) return `out[h ${h}, q ${i}, d ${d}] = ${x}, expected ${e.is} (${e.why})`;
        }
  for (const { rows, is } of c.lse ?? [])
    for (let h = 0; h < H; h++)
      for (const i of rows) {
        const x = lse[h * c.n + i];
        if (is === "nan" ? !Number.isNaN(x) : x !== -Infinity) return `lse[h ${h}, q ${i}] = ${x}, expected ${is}`;
      }
  return null;
}

/** A kernel's out and LSE against the reference and the case's expectations. */
function checkResult(c: Case, ref: ReferenceResult, got: { out: Float32Array; lse: Float32Array }, what: string): void {
  expect(missedExpectation(c, ref.out, ref.lse), `reference, ${c.name}`).toBeNull();
  expect(missedExpectation(c, got.out, got.lse), `${what}, ${c.name}`).toBeNull();
  expect(compareWithReference(got, ref, { B: 1, H, L: c.n, Dv: D }, 1e-4), `${what}, ${c.name}`).toBeNull();
}

describe.each(["js", "wgsl"] as const)("non-finite values on %s", (backend) => {
  it.for(cases.map((c) => [c.name, c] as const))("%s: as the reference", { timeout: 120_000 }, async ([, c], ctx) => {
    if (backend === "wgsl" && !(await isWebGpuAvailable())) {
      if (REQUIRE_WEBGPU) throw new Error("no WebGPU adapter, and CI requires one");
      return ctx.skip();
    }
    const { q, k, v, blockMask, ref } = setup(c);
    const res = await flexAttention(q, k, v, { blockMask, scoreMod: c.scoreMod, backend, returnLse: true });
    checkResult(c, ref, { out: res.out.data as Float32Array, lse: res.lse.data as Float32Array }, backend);
  });
});

/** got matches want element by element: NaN where want is NaN, else within tol·max|want| (equal infinities included). */
function sameValues(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): string | null {
  let scale = 1;
  for (let i = 0; i < want.length; i++) if (Number.isFinite(want[i])) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i], want[i]];
    if (g === w || (Number.isNaN(g) && Number.isNaN(w))) continue;
    if (!(Math.abs(g - w) <= tol * scale)) return `[${i}] = ${g}, reference ${w}`;
  }
  return null;
}

// The backward skips zero weights (dS = 0, no 0·dP): a masked key's non-finite V reaches the
// gradients only through the forward's out (delta = rowsum(dO ∘ O) is NaN for a poisoned row).
describe.each(["js", "wgsl"] as const)("backward on %s, fed the forward's out", (backend) => {
  it("gradients as referenceBackward", { timeout: 120_000 }, async (ctx) => {
    if (backend === "wgsl" && !(await isWebGpuAvailable())) {
      if (REQUIRE_WEBGPU) throw new Error("no WebGPU adapter, and CI requires one");
      return ctx.skip();
    }
    const c = cases[0];
    const { q, k, v, blockMask, problem, ref } = setup(c);
    const dOut = randomTensor([1, H, c.n, D], { seed: 4 });
    const { out, lse } = await flexAttention(q, k, v, { blockMask, backend, returnLse: true });
    checkResult(c, ref, { out: out.data as Float32Array, lse: lse.data as Float32Array }, backend);
    const g = await flexAttentionBackward(q, k, v, out, lse, dOut, { blockMask, backend });
    const want = referenceBackward({ problem, q, k, v, dOut, mask: blockMask.maskGraph ?? null, score: null, blockMask });
    expect(sameValues(ref.out, want.out, 1e-12), "referenceBackward's out is the forward reference's").toBeNull();
    const dq = g.dq.data as Float32Array;
    expect(dq.subarray(16 * D, 24 * D).some(Number.isNaN), "rows 16..23 of head 0: NaN out → NaN delta → NaN dQ").toBe(true);
    expect(dq.subarray(0, 16 * D).every(Number.isFinite), "rows 0..15 of head 0 stay clean").toBe(true);
    for (const [name, got, w] of [["dq", g.dq, want.dq], ["dk", g.dk, want.dk], ["dv", g.dv, want.dv]] as const) {
      expect(sameValues(got.data as Float32Array, w, 1e-3), `${backend} ${name}`).toBeNull();
    }
  });
});

/** python3 with numpy (the Triton emulator's one dependency), or null. */
function python(): string | null {
  const py = process.env.PYTHON ?? "python3";
  try {
    execFileSync(py, ["-c", "import numpy"], { stdio: "pipe" });
    return py;
  } catch {
    return null;
  }
}

describe("Triton (numpy emulation of triton.language): tl.dot's 0·V gives the same results", () => {
  const FORWARD_RUNNER = fileURLToPath(new URL("../../codegen-triton/test/forward_module.py", import.meta.url));
  it("every case, as the reference", { timeout: 120_000 }, (ctx) => {
    const py = python();
    if (!py) {
      if (REQUIRE_TOOLCHAINS) throw new Error("python3 with numpy is needed to run the generated Triton modules under emulation");
      return ctx.skip();
    }
    const dir = mkdtempSync(join(tmpdir(), "flexattn-nonfinite-triton-"));
    const base64 = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
    const tensor = (t: Tensor) => ({ shape: t.shape, strides: t.strides, data: base64(t.data) });
    const runs = cases.map((c, i) => {
      const s = setup(c);
      const module = join(dir, `case${i}.py`);
      const { source } = compile({ maskMod: s.blockMask.maskGraph, scoreMod: s.score ?? undefined }, { ...s.problem, layout: "bhsd" }, { backend: "triton", blockSize: c.blockSize });
      writeFileSync(module, source);
      const bm = s.blockMask;
      const json = {
        module, dtype: "f32", q: tensor(s.q), k: tensor(s.k), v: tensor(s.v),
        tables: {
          Bm: bm.Bm, Hm: bm.Hm, QB: bm.numQBlocks, KVB: bm.numKvBlocks,
          kvNumBlocks: Array.from(bm.kvNumBlocks), kvIndices: Array.from(bm.kvIndices),
          fullKvNumBlocks: bm.fullKvNumBlocks ? Array.from(bm.fullKvNumBlocks) : null,
          fullKvIndices: bm.fullKvIndices ? Array.from(bm.fullKvIndices) : null,
        },
        buffers: [...(bm.maskGraph?.buffers ?? []), ...(s.score?.buffers ?? [])].map((b) => base64(b.data!)),
        scale: s.problem.scale, qOffset: 0, kvOffset: 0,
      };
      return { c, ref: s.ref, json };
    });
    writeFileSync(join(dir, "cases.json"), JSON.stringify(runs.map((r) => r.json)));
    const printed = execFileSync(py, [FORWARD_RUNNER, join(dir, "cases.json"), dir], { encoding: "utf8" });
    expect(printed.trim(), "forward_module.py reports no failed case").toBe("");
    const f32 = (path: string) => {
      const b = readFileSync(path);
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    };
    for (const [i, { c, ref }] of runs.entries()) {
      checkResult(c, ref, { out: f32(join(dir, `${i}.out`)), lse: f32(join(dir, `${i}.lse`)) }, "triton (emulated)");
    }
  });
});

describe("generated CUDA f32 (simt) kernel: zero weights skip only finite V rows", () => {
  const problem = { batch: 1, qHeads: 1, kvHeads: 1, qLen: 256, kvLen: 256, qkHeadDim: 64, vHeadDim: 64, dtype: "f32" as const, layout: "bhsd" as const };
  const kernels = [undefined, (s: Value, _b: Value, _h: Value, _q: Value, _kv: Value) => s.mul(2)].map((scoreMod) => compile({ maskMod: causal(), scoreMod }, problem, { backend: "cuda" }));
  const sources = kernels.map((k) => k.source);

  it("flags non-finite V rows once per tile and adds 0·V for them", () => {
    for (const src of sources) {
      expect(src).toMatch(/if \(d == 0\) k_tile\[j\]\[DQK\] = 0\.0f;/);
      expect(src).toMatch(/if \(!isfinite\(x\)\) k_tile\[j\]\[DQK\] = 1\.0f;/);
      expect(src).toMatch(/if \(p == 0\.0f && k_tile\[j\]\[DQK\] == 0\.0f\) continue;[\s\S]*acc\[d\] = fmaf\(p, v_tile\[j\]\[d\], acc\[d\]\)/);
      expect(src).not.toMatch(/if \(p == 0\.0f\) continue;/);
    }
  });

  it("compiles with nvcc (sm_80, sm_90a)", { timeout: 300_000 }, async (ctx) => {
    const nvcc = findTool(process.env.NVCC ?? "nvcc");
    if (!nvcc) {
      if (REQUIRE_TOOLCHAINS) throw new Error("nvcc is needed to compile the generated CUDA kernels");
      return ctx.skip();
    }
    const failures = await compileCudaKernels(nvcc, kernels.map(({ source, entry }, i) => ({ source, entry, describe: () => `simt kernel ${i}` })));
    expect(failures).toBeNull();
  });
});
