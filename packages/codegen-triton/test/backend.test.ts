import { describe, expect, it } from "vitest";
import { buffer, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { kernelAbi, resolveProblem } from "@flexattn/template";
import { DEFAULT_OPTIONS, KERNEL_NAME, tritonBackend, tritonDefaultConfig } from "../src/index.js";
import { alibi as alibiMod, documentCausal as docCausal, randomDocumentIds as docIds, softcap as softcapMod } from "@flexattn/masks";
import { docMask, softcap, testSpec as spec } from "./helpers.js";

/** Lines of the kernel body between two markers. */
function section(src: string, from: string, to: string): string {
  const a = src.indexOf(from);
  const b = src.indexOf(to, a + from.length);
  return src.slice(a, b < 0 ? undefined : b);
}

describe("tritonBackend", () => {
  it("is a CodegenBackend writing .py modules", () => {
    expect(tritonBackend.name).toBe("triton");
    expect(tritonBackend.sourceExtension).toBe(".py");
  });

  it("ships H100 defaults per head dim, fitted to the BlockMask block", () => {
    const p = (d: number, dtype: "bf16" | "f32" = "bf16") =>
      resolveProblem({ batch: 1, qHeads: 1, kvHeads: 1, qLen: 1, kvLen: 1, qkHeadDim: d, vHeadDim: d, dtype });
    expect(tritonDefaultConfig(p(128), [128, 128])).toMatchObject({ blockM: 128, blockN: 64, numWarps: 8 });
    expect(tritonDefaultConfig(p(64), [128, 128])).toMatchObject({ blockM: 128, blockN: 64, numWarps: 4 });
    const small = tritonDefaultConfig(p(64), [16, 32]);
    expect([small.blockM, small.blockN]).toEqual([16, 32]);
    expect(small.numWarps).toBeLessThanOrEqual(2);
    expect(tritonDefaultConfig(p(80, "f32"), [128, 128]).blockM).toBeLessThanOrEqual(64);
  });

  it("returns an artifact with the ABI, entry point and launch description", () => {
    const a = tritonBackend.generate(spec({ mask: docMask }));
    expect(a.backend).toBe("triton");
    expect(a.entry).toBe("flex_attention");
    expect(a.abi).toEqual(kernelAbi(spec({ mask: docMask })));
    expect(a.launch.threadsPerProgram).toBe(256);
    expect(a.spec.buffers).toEqual([{ name: "docIds", dtype: "i32", shape: [256] }]);
    expect(a.source).toContain(`SPEC_HASH = "${a.specHash}"`);
  });

  it("declares kernel parameters in ABI order, then the constexprs", () => {
    const src = tritonBackend.generate(spec({ mask: docMask })).source;
    const params = section(src, `def ${KERNEL_NAME}(`, "):").split("\n").slice(1).map((l) => l.trim().replace(/,$/, "")).filter(Boolean);
    const abi = kernelAbi(spec({ mask: docMask })).map((x) => x.name);
    expect(params.slice(0, abi.length)).toEqual(abi);
    expect(params.slice(abi.length).every((p) => p.endsWith(": tl.constexpr"))).toBe(true);
  });

  it("applies the mask only in the partial-block loop", () => {
    const src = tritonBackend.generate(spec()).source;
    const partial = section(src, "# ---- partial blocks", "# ---- full blocks");
    const full = section(src, "# ---- full blocks", "# Fully masked rows");
    expect(partial).toContain("(kv_idx <= q_idx)");
    expect(partial).toContain('qk = tl.where(mk');
    expect(full).not.toContain("kv_idx");
    expect(full).toContain("if EVEN_N:\n"); // bounds only where a tile can cross kv_len
    expect(full).toContain("tl.load(full_kv_num_blocks + sparse_row)");
  });

  it("emits each block loop in the three forms the launcher picks from the tables (constexpr, no config option)", () => {
    const src = tritonBackend.generate(spec()).source;
    for (const [label, form, next] of [["partial", "PARTIAL_LOOP", "# ---- full blocks"], ["full", "FULL_LOOP", "# Fully masked rows"]]) {
      const loop = section(src, `# ---- ${label} blocks`, next);
      expect(loop).toContain(`if ${form} != 0:`);
      expect(loop).toContain(`if ${form} == 1:`);
      expect(loop).toContain("for start_n in range(block_lo, block_hi, BLOCK_N):");
      expect(loop).toContain("for it in range(0, n_blocks * TILES_PER_KV_BLOCK):");
      expect(loop).toContain("tl.load(blk_ptr + it // TILES_PER_KV_BLOCK)");
      // The same tile body in both forms.
      const [range, indexed] = loop.split(/\n {8}else:\n/);
      const body = (s: string) => s.slice(s.indexOf("offs_n = start_n + offs_n0")).trim();
      expect(body(range).length).toBeGreaterThan(100);
      expect(body(indexed)).toBe(body(range));
    }
    expect(src).toMatch(/PARTIAL_LOOP=self\.forms\[0\], FULL_LOOP=self\.forms\[1\]/);
    expect(src).toContain("LOOP_NONE, LOOP_RANGE, LOOP_INDEXED = 0, 1, 2");
  });

  it("folds scale·log2e into the exp2 FMA, or into Q when prescaled", () => {
    const plain = tritonBackend.generate(spec({ mask: null })).source;
    expect(plain).toContain("to_log2 = scale * 1.4426950408889634");
    expect(plain).toContain("p = tl.math.exp2(qk * to_log2 - m_sub[:, None])");
    const pre = tritonBackend.generate(spec({ mask: null }, { prescaleQk: true })).source;
    expect(pre).toContain("qt = (qt * (scale * 1.4426950408889634)).to(q.dtype.element_ty)");
    expect(pre).toContain("p = tl.math.exp2(qk - m_sub[:, None])");
    const withScore = tritonBackend.generate(spec({ score: softcap }, { prescaleQk: true })).source;
    expect(withScore).not.toContain("qt = (qt *"); // a score mod must see the true score
    expect(withScore).toContain("qk = qk * scale");
  });

  it("masks padded head dims only when a head dim is not a power of two", () => {
    const pow2 = tritonBackend.generate(spec()).source;
    expect(pow2).not.toContain("< 128)");
    const odd = tritonBackend.generate(spec({ qkHeadDim: 80, vHeadDim: 48 })).source;
    expect(odd).toContain("(offs_dqk[None, :] < 80)");
    expect(odd).toContain("(offs_dv[None, :] < 48)");
    expect(odd).toContain("QK_D_PAD=128");
    expect(odd).toContain("V_D_PAD=64");
  });

  it("runs f32 dots in IEEE precision unless TF32 is allowed", () => {
    const f32 = tritonBackend.generate(spec({ dtype: "f32" }, { blockM: 64, numWarps: 4 })).source;
    expect(f32).toContain('input_precision="ieee"');
    const tf32 = tritonBackend.generate(spec({ dtype: "f32" }, { blockM: 64, numWarps: 4, options: { allowTf32: true } })).source;
    expect(tf32).toContain('input_precision="tf32"');
    expect(tritonBackend.generate(spec()).source).not.toContain("input_precision");
  });

  it("imports libdevice only for the exact tanh, inline PTX for the approximate one", () => {
    const exact = tritonBackend.generate(spec({ score: softcap })).source;
    expect(exact).toContain("from triton.language.extra import libdevice");
    expect(exact).toContain("def _fa_tanh(x):");
    const approx = tritonBackend.generate(spec({ score: softcap }, { options: { approxTanh: true } })).source;
    expect(approx).not.toContain("import libdevice");
    expect(approx).toContain('"tanh.approx.f32 $0, $1;"');
    expect(tritonBackend.generate(spec()).source).not.toContain("def _fa_");
  });

  it("validates arguments in the launcher with ValueErrors naming them", () => {
    const src = tritonBackend.generate(spec({ mask: docMask })).source;
    expect(src).toMatch(/def flex_attention\(q, k, v, kv_num_blocks=None, kv_indices=None, full_kv_num_blocks=None, full_kv_indices=None,\n\s+\*, mask_docIds, scale=None, return_lse=RETURN_LSE_DEFAULT, q_offset=0, kv_offset=0, out=None, config=None,\n\s+autotune=None\):/);
    expect(src).toContain('{"mask_docIds": mask_docIds}');
    for (const msg of ["must be a torch.Tensor", "this kernel was generated for", "must have stride 1 in the head dimension",
      "must be a multiple of k/v heads", "query-block rows", "(captured buffer) has shape", "must be an int in [0, 2**30]"]) {
      expect(src).toContain(msg);
    }
    expect(src).toContain('BUFFERS = (\n    ("mask_docIds", torch.int32, (256,)),\n)');
  });

  it("rejects what Triton cannot compile, with the reason", () => {
    expect(() => tritonBackend.generate(spec({ sparseBlock: [8, 8] }, { blockM: 8, blockN: 8, numWarps: 1 }))).toThrow(/at least 16/);
    expect(() => tritonBackend.generate(spec({}, { options: { approxTanhh: true } }))).toThrow(/unknown Triton option "approxTanhh"/);
    expect(() => tritonBackend.generate(spec({}, { options: { approxTanh: 1 as unknown as boolean } }))).toThrow(/must be a boolean/);
    expect(() => tritonBackend.generate(spec({}, { options: { allowTf32: true } }))).toThrow(/f32 kernels only/);
    for (const gone of ["contiguousFullBlocks", "contiguousPartialBlocks"]) {
      expect(Object.keys(DEFAULT_OPTIONS)).not.toContain(gone);
      expect(() => tritonBackend.generate(spec({}, { options: { [gone]: true } }))).toThrow(/is gone: the launcher detects contiguous block rows/);
    }
  });

  it("emits reversed query tiles by default and the plain order on request", () => {
    expect(tritonBackend.generate(spec()).source).toContain("pid_m = tl.num_programs(0) - 1 - tl.program_id(0)");
    expect(tritonBackend.generate(spec({}, { options: { reverseQBlocks: false } })).source).toContain("pid_m = tl.program_id(0)\n");
  });

  it("gives colliding buffer names distinct Python names", () => {
    const a = buffer(new Int32Array(4), { name: "ids" });
    const b = buffer(new Int32Array(5), { name: "ids" });
    const m = traceMaskMod((_b, _h, q, kv) => a.at(q).eq(b.at(kv)));
    const src = tritonBackend.generate(spec({ mask: m })).source;
    expect(src).toContain('("mask_ids", torch.int32, (4,))');
    expect(src).toContain('("mask_ids_1", torch.int32, (5,))');
  });
});


describe("mod-aware default configs", () => {
  const problem = (d: number, kvLen = 4096) =>
    resolveProblem({ batch: 1, qHeads: 8, kvHeads: 8, qLen: kvLen, kvLen, qkHeadDim: d, vHeadDim: d, dtype: "bf16" });
  const softcap = { mask: null, score: traceScoreMod(softcapMod(30)) };
  const alibi = { mask: null, score: traceScoreMod(alibiMod(8)) };
  const doc = { mask: traceMaskMod(docCausal(docIds(4096, 8, 1))), score: null };
  const tile = (c: { blockM: number; blockN: number; numWarps: number; numStages: number }) => [c.blockM, c.blockN, c.numWarps, c.numStages];
  it("picks the tiles the H100 runs measured best", () => {
    expect(tile(tritonDefaultConfig(problem(64), [128, 128], softcap))).toEqual([64, 64, 4, 2]);
    expect(tile(tritonDefaultConfig(problem(64), [128, 128], doc))).toEqual([128, 128, 4, 2]);
    expect(tile(tritonDefaultConfig(problem(128), [128, 128], doc))).toEqual([64, 64, 4, 2]);
    expect(tile(tritonDefaultConfig(problem(128, 16384), [128, 128], doc))).toEqual([128, 64, 8, 4]);
  });
  it("keeps the head-dim default otherwise", () => {
    const plain = tile(tritonDefaultConfig(problem(64), [128, 128]));
    expect(tile(tritonDefaultConfig(problem(64), [128, 128], alibi))).toEqual(plain);
    expect(tile(tritonDefaultConfig(problem(128), [128, 128], softcap))).toEqual(tile(tritonDefaultConfig(problem(128), [128, 128])));
  });
});
