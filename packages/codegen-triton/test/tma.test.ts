/** options.tma: the tensor-descriptor (TMA) path beside the pointer path, chosen per launch. */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CONFORMANCE_CASES, type KernelConfig, type KernelSpec, instantiateCase, makeSpec } from "@flexattn/template";
import { DEFAULT_OPTIONS, KERNEL_NAME, tritonBackend, tritonDefaultConfig } from "../src/index.js";
import { docMask, pyCheck, softcap, testSpec } from "./helpers.js";

const PATHS_SCRIPT = fileURLToPath(new URL("./tma_paths.py", import.meta.url));
const LAUNCHER_SCRIPT = fileURLToPath(new URL("./tma_launcher.py", import.meta.url));

/** The TMA probe's pipeline depth: 3 stages. */
const spec = (over: Partial<Parameters<typeof makeSpec>[0]> = {}, config: Partial<KernelConfig> = {}): KernelSpec => testSpec(over, config, 3);

const generate = (s: KernelSpec) => tritonBackend.generate(s).source;
const withTma = (over: Partial<Parameters<typeof makeSpec>[0]> = {}, config: Partial<KernelConfig> = {}) =>
  generate(spec(over, { ...config, options: { ...config.options, tma: true } }));

function kernelBody(src: string): string {
  const a = src.indexOf(`def ${KERNEL_NAME}(`);
  return src.slice(a, src.indexOf("\n# ---- config resolution", a));
}

const count = (s: string, sub: string) => s.split(sub).length - 1;

describe("options.tma", () => {
  it("is off by default and must be a boolean", () => {
    expect(DEFAULT_OPTIONS.tma).toBe(false);
    expect(() => generate(spec({}, { options: { tma: 1 as unknown as boolean } }))).toThrow(/tma must be a boolean/);
    expect(() => generate(spec({}, { options: { TMA: true } }))).toThrow(/unknown Triton option "TMA".*tma/);
  });

  it("emits no descriptor code without the option", () => {
    for (const src of [generate(spec()), generate(spec({}, { options: { tma: false } }))]) {
      for (const absent of ["USE_TMA", "make_tensor_descriptor", "_desc", "_use_tma", "uses_tma", "set_allocator", "\nTMA = "]) {
        expect(src).not.toContain(absent);
      }
      expect(src).toContain("tl.load(q_ptrs");
    }
  });

  it("declares the USE_TMA constexpr last and puts each load and the output store under it", () => {
    const src = withTma({ mask: docMask });
    const body = kernelBody(src);
    expect(body).toContain("    SCALE_IN_EXP2: tl.constexpr,\n    USE_TMA: tl.constexpr,\n):");
    expect(count(body, "tl.make_tensor_descriptor(")).toBe(4);
    expect(count(body, "if USE_TMA:")).toBe(2 + 2 * 2 * 2 + 1); // K/V descriptors, Q, K and V in both forms of each block loop, O
    expect(body).toContain("        qt = q_desc.load([start_m, 0])\n    else:\n        q_ptrs = ");
    expect(count(body, "                    kt = k_desc.load([start_n, 0])\n                else:\n                    k_ptrs = ")).toBe(4);
    expect(count(body, "                    vt = v_desc.load([start_n, 0])\n                else:\n                    v_ptrs = ")).toBe(4);
    expect(body).toContain("        o_desc.store([start_m, 0], o)");
    // The mask, the bounds and the LSE are shared by both paths, outside any USE_TMA branch.
    expect(count(body, "    if OUTPUT_LSE:\n")).toBe(1);
    expect(body).toContain("        qk = tl.where(mk");
  });

  it("describes each (batch, head) slice with its real length and head dim, padded blocks", () => {
    const body = kernelBody(withTma({ qkHeadDim: 80, vHeadDim: 48 }));
    const q = "q + off_b.to(tl.int64) * stride_q_b + off_h.to(tl.int64) * stride_q_h";
    expect(body).toContain(`q_desc = tl.make_tensor_descriptor(${q}, shape=[q_len, QK_D], strides=[stride_q_s, 1], block_shape=[BLOCK_M, QK_D_PAD])`);
    expect(body).toContain("k_desc = tl.make_tensor_descriptor(k_base, shape=[kv_len, QK_D], strides=[stride_k_s, 1], block_shape=[BLOCK_N, QK_D_PAD])");
    expect(body).toContain("v_desc = tl.make_tensor_descriptor(v_base, shape=[kv_len, V_D], strides=[stride_v_s, 1], block_shape=[BLOCK_N, V_D_PAD])");
    expect(body).toContain("shape=[q_len, V_D], strides=[stride_out_s, 1], block_shape=[BLOCK_M, V_D_PAD])");
    // GQA: K and V descriptors start at the kv head's rows.
    expect(body).toContain("k_base = k + off_b.to(tl.int64) * stride_k_b + off_hkv.to(tl.int64) * stride_k_h");
    // The pointer path keeps its head-dim masks for the padded dims.
    expect(body).toContain("(offs_dqk[None, :] < 80)");
    expect(body).toContain("(offs_dv[None, :] < 48)");
  });

  it("chooses the path per launch and installs an allocator only for the descriptor path", () => {
    const src = withTma({ mask: docMask });
    expect(src).toContain("TMA = True");
    expect(src).toContain("def uses_tma(q, k, v, out=None, config=None):");
    expect(src).toMatch(/use_tma = _use_tma\(q, k, v, out, bm, bn\)\n\s+if use_tma:\n\s+_ensure_tma_allocator\(\)\n\s+grid = /);
    expect(src).toContain("PARTIAL_LOOP=self.forms[0], FULL_LOOP=self.forms[1], USE_TMA=use_tma,");
    expect(src).toContain('"uses_tma", ');
  });

  it("only the loads of Q, K, V and the store of O differ between the paths (all conformance cases, option variants)", () => {
    const sources: Record<string, string> = {};
    const pairs: string[] = [];
    const add = (name: string, s: (tma: boolean) => KernelSpec) => {
      sources[`${name}_plain`] = generate(s(false));
      sources[`${name}_tma`] = generate(s(true));
      pairs.push(`${name}_plain`, `${name}_tma`);
    };
    CONFORMANCE_CASES.forEach((cs, i) => {
      const inst = instantiateCase(cs, 2000 + i);
      const p = inst.problem;
      const base = tritonDefaultConfig(p, cs.blockSize);
      const variants: Record<string, Partial<KernelConfig>> = {
        default: {},
        forward: { options: { reverseQBlocks: false } },
        ...(inst.score ? {} : { prescaled: { prescaleQk: true } }),
      };
      for (const [name, v] of Object.entries(variants)) {
        add(`case${i}_${name}`, (tma) =>
          makeSpec({
            mask: inst.mask, score: inst.score, qkHeadDim: p.qkHeadDim, vHeadDim: p.vHeadDim, dtype: p.dtype,
            returnLse: p.returnLse, sparseBlock: cs.blockSize, config: { ...base, ...v, options: { ...v.options, tma } },
          }),
        );
      }
    });
    add("softcap_approx", (tma) => spec({ score: softcap, mask: docMask }, { options: { approxTanh: true, tma } }));
    add("nomask_odd_dims", (tma) => spec({ mask: null, qkHeadDim: 72, vHeadDim: 40 }, { options: { tma } }));
    expect(pairs.length).toBeGreaterThan(CONFORMANCE_CASES.length * 4);
    expect(pyCheck(PATHS_SCRIPT, sources, pairs)).toEqual([]);
  });

  it("the checker catches a change outside the loads and the store", () => {
    const plain = generate(spec());
    const tma = withTma();
    const broken = tma.replace("l_i = l_i * alpha + tl.sum(p, 1)", "l_i = l_i * alpha + tl.sum(p, 1) + 0.0");
    const offByOne = tma.replace("kt = k_desc.load([start_n, 0])", "kt = k_desc.load([start_n + 1, 0])");
    expect(broken).not.toBe(tma);
    expect(offByOne).not.toBe(tma);
    const out = pyCheck(PATHS_SCRIPT, { plain, broken, offByOne }, ["plain", "broken", "plain", "offByOne"]);
    expect(out.some((l) => l.includes("broken") && l.includes("USE_TMA=False is not the plain kernel"))).toBe(true);
    expect(out.some((l) => l.includes("offByOne") && l.includes("unexpected descriptor load"))).toBe(true);
  });

  it("the launcher takes the pointer path wherever TMA does not fit (stand-in torch and triton)", () => {
    const sources: Record<string, string> = {
      bf16_128: withTma(),
      bf16_80_48: withTma({ qkHeadDim: 80, vHeadDim: 48 }),
      bf16_20: withTma({ qkHeadDim: 20, vHeadDim: 20 }), // 40-byte rows: never TMA
      f16_64: withTma({ dtype: "f16", qkHeadDim: 64, vHeadDim: 64, mask: docMask }),
      f32_16_24: withTma({ dtype: "f32", qkHeadDim: 16, vHeadDim: 24 }, { blockM: 64, numWarps: 4 }),
      f32_36: withTma({ dtype: "f32", qkHeadDim: 36, vHeadDim: 36 }, { blockM: 64, numWarps: 4 }), // 144-byte rows
    };
    const names = Object.keys(sources);
    expect(pyCheck(LAUNCHER_SCRIPT, sources, names)).toEqual([]);
    // The stand-ins can tell: a launcher without the base-alignment check fails them.
    const unchecked = sources.bf16_128.replace("t.data_ptr() % 16 == 0 and ", "");
    expect(unchecked).not.toBe(sources.bf16_128);
    expect(pyCheck(LAUNCHER_SCRIPT, { unchecked }, ["unchecked"]).join("\n")).toContain("q base 8 bytes off");
  });
});
