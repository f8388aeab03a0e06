import { describe, expect, it } from "vitest";
import {
  CONFORMANCE_CASES, checkInstance, compareEachRow, fromFloat32, instantiateCase, referenceAttention, referenceRows, runConformance, toFloat32,
  type ConformanceInstance,
} from "@flexattn/template";

/** Write the float64 reference into an instance's outputs (in its layout and dtype). */
function writeReference(inst: ConformanceInstance, perturb = 0): void {
  const p = inst.problem;
  const ref = referenceAttention(inst);
  const [sb, sh, ss] = inst.strides.out;
  const vals = new Float32Array(inst.out.length);
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.qHeads; h++)
      for (let i = 0; i < p.qLen; i++)
        for (let d = 0; d < p.vHeadDim; d++) vals[b * sb + h * sh + i * ss + d] = ref.out[((b * p.qHeads + h) * p.qLen + i) * p.vHeadDim + d] + perturb;
  inst.out.set(fromFloat32(vals, p.dtype));
  inst.lse.set(ref.lse);
}

describe("conformance checker", () => {
  it("covers what the spec promises", () => {
    const names = CONFORMANCE_CASES.map((c) => c.name).join(" ");
    for (const want of ["causal", "sliding", "prefix", "document", "dilated", "chunked", "alibi", "softcap", "relative", "gqa-2", "gqa-3", "gqa-4", "gqa-8", "head-dim-16", "head-dim-64", "head-dim-80", "head-dim-128", "qk-dim-ne-v-dim", "fully-masked", "offsets", "bshd", "bf16", "f16"]) {
      expect(names).toContain(want);
    }
    const tags = new Set(CONFORMANCE_CASES.flatMap((c) => c.tags));
    for (const t of ["captured-i32", "captured-f32", "ragged", "gqa", "offsets"]) expect(tags.has(t)).toBe(true);
  });

  it("passes the reference itself, fails untouched (poisoned) and perturbed outputs", async () => {
    const pass = await runConformance({ name: "reference", run: (inst) => writeReference(inst) });
    expect(pass.failed, pass.results.filter((r) => !r.pass).map((r) => `${r.name}: ${r.message}`).join("\n")).toBe(0);
    const cs = CONFORMANCE_CASES.find((c) => c.name === "causal")!;
    const untouched = instantiateCase(cs);
    expect(checkInstance(untouched).message).toMatch(/unwritten or NaN/);
    const perturbed = instantiateCase(cs);
    writeReference(perturbed, 0.05);
    expect(checkInstance(perturbed).pass).toBe(false);
    const partial = instantiateCase(cs);
    writeReference(partial);
    (partial.out as Float32Array)[17] = NaN;
    expect(checkInstance(partial).badElements).toBe(1);
  });

  it("fresh inputs each run, reproducible from the seed", () => {
    const cs = CONFORMANCE_CASES[0];
    const a = instantiateCase(cs, 7);
    const b = instantiateCase(cs, 7);
    const c = instantiateCase(cs);
    expect(Array.from(a.q.data.slice(0, 8))).toEqual(Array.from(b.q.data.slice(0, 8)));
    expect(Array.from(a.q.data.slice(0, 8))).not.toEqual(Array.from(c.q.data.slice(0, 8)));
    expect(new Set(a.q.data).size).toBeGreaterThan(a.q.data.length / 2); // not zeros
  });

  it("the reference is softmax attention: a naive check on a noop case, fully masked rows give 0 and -inf", () => {
    const inst = instantiateCase(CONFORMANCE_CASES.find((c) => c.name === "noop")!, 3);
    const p = inst.problem;
    const q = toFloat32(inst.q.data, p.dtype);
    const k = toFloat32(inst.k.data, p.dtype);
    const v = toFloat32(inst.v.data, p.dtype);
    const ref = referenceAttention(inst);
    const D = p.qkHeadDim;
    const i = 5;
    const s = Array.from({ length: p.kvLen }, (_, j) => {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[i * D + d] * k[j * D + d];
      return dot * p.scale;
    });
    const mx = Math.max(...s);
    const w = s.map((x) => Math.exp(x - mx));
    const l = w.reduce((a, b) => a + b, 0);
    const o0 = w.reduce((acc, wj, j) => acc + (wj / l) * v[j * p.vHeadDim], 0);
    expect(ref.out[i * p.vHeadDim]).toBeCloseTo(o0, 10);
    expect(ref.lse[i]).toBeCloseTo(mx + Math.log(l), 10);
    const masked = instantiateCase(CONFORMANCE_CASES.find((c) => c.name === "fully-masked-rows")!, 3);
    const r2 = referenceAttention(masked);
    expect(r2.lse[0]).toBe(-Infinity);
    expect(r2.out[0]).toBe(0);
    expect(Number.isFinite(r2.lse[40])).toBe(true);
  });
});

describe("referenceRows", () => {
  it("gives the same rows as referenceAttention, on every conformance case (masked, GQA, offsets, NaN and fully masked rows)", () => {
    for (const cs of CONFORMANCE_CASES) {
      const inst = instantiateCase(cs, 11);
      const p = inst.problem;
      const full = referenceAttention(inst);
      const rows = [{ b: 0, h: 0, i: 0 }, { b: p.batch - 1, h: p.qHeads - 1, i: p.qLen - 1 }, { b: 0, h: p.qHeads - 1, i: Math.floor(p.qLen / 2) }];
      const some = referenceRows(inst, rows);
      rows.forEach(({ b, h, i }, n) => {
        const r = (b * p.qHeads + h) * p.qLen + i;
        expect(Array.from(some.out.subarray(n * p.vHeadDim, (n + 1) * p.vHeadDim)), cs.name).toEqual(Array.from(full.out.subarray(r * p.vHeadDim, (r + 1) * p.vHeadDim)));
        expect(some.lse[n], cs.name).toEqual(full.lse[r]);
      });
    }
  });
});

describe("compareEachRow", () => {
  it("compares each row on its own scale: an exact output gives zero errors, one wrong element only its row's", () => {
    const inst = instantiateCase(CONFORMANCE_CASES.find((c) => c.name === "causal")!, 5);
    const p = inst.problem;
    const full = referenceAttention(inst);
    (inst.out as Float32Array).set(Float32Array.from(full.out));
    inst.lse.set(Float32Array.from(full.lse));
    const rows = [{ b: 0, h: 0, i: 3 }, { b: 0, h: 1, i: p.qLen - 1 }];
    for (const e of compareEachRow(inst, rows)) expect(e).toMatchObject({ badElements: 0 });
    expect(Math.max(...compareEachRow(inst, rows).map((e) => e.outError))).toBeLessThan(1e-6);
    const [, sh, ss] = inst.strides.out;
    const at = sh + (p.qLen - 1) * ss + 2; // row (b 0, h 1, q qLen - 1), element 2
    (inst.out as Float32Array)[at] += 0.5;
    const [first, second] = compareEachRow(inst, rows);
    expect(first.outError).toBeLessThan(1e-6);
    expect(second.outError).toBeGreaterThan(0.1);
    (inst.out as Float32Array)[at] = Number.NaN;
    expect(compareEachRow(inst, rows)[1]).toMatchObject({ badElements: 1 });
  });
});
