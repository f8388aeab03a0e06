import { describe, expect, it } from "vitest";
import {
  type ModGraph, abs, buffer, exp, floorDiv, max, min, mod, renderGraph, sqrt, tanh, toF32, toI32, traceMaskMod,
  traceScoreMod, where,
} from "@flexattn/ir";
import { renderTileMod, tritonRenderer } from "../src/index.js";

const inputs = { score: "qk", b: "off_b", h: "off_h", q: "q_idx", kv: "kv_idx" };

function render(graph: ModGraph, approxTanh = false) {
  const r = tritonRenderer({ inputs, bufferName: (slot) => `buf${slot}`, approxTanh });
  const out = renderGraph(graph, r, "t");
  return { code: [...out.statements, `result = ${out.result}`].join("\n"), helpers: r.helpers };
}

describe("Triton renderer", () => {
  it("uses floor-semantics helpers for integer floorDiv and mod, never bare // or %", () => {
    const { code, helpers } = render(traceMaskMod((_b, _h, q, kv) => floorDiv(q, kv).eq(mod(q, 7))));
    expect(code).toContain("_fa_floordiv(q_idx, kv_idx)");
    expect(code).toContain("_fa_mod(q_idx, tl.full([1, 1], 7, tl.int32))");
    expect(code).not.toMatch(/[^/]\/\/[^/]/);
    expect([...helpers].sort()).toEqual(["floordiv", "mod"]);
  });

  it("renders f32 floor division and modulo with tl.floor", () => {
    const { code } = render(traceScoreMod((s, _b, _h, _q, _kv) => floorDiv(s, 3.5).add(mod(s, 2.5))));
    expect(code).toContain("tl.floor(qk / tl.full([1, 1], 3.5, tl.float32))");
    expect(code).toMatch(/\(qk - tl\.floor\(qk \/ tl\.full\(\[1, 1\], 2\.5, tl\.float32\)\) \* tl\.full/);
  });

  it("types every constant as a [1, 1] tensor", () => {
    const { code } = render(traceScoreMod((s, _b, _h, q, kv) => where(q.ge(kv), s.add(1.5), -Infinity)));
    expect(code).toContain('tl.full([1, 1], float("-inf"), tl.float32)');
    expect(code).toContain("tl.full([1, 1], 1.5, tl.float32)");
  });

  it("turns division by a constant into multiplication by its reciprocal", () => {
    const { code } = render(traceScoreMod((s, _b, _h, _q, _kv) => tanh(s.div(4)).mul(4)));
    expect(code).toContain("(qk * tl.full([1, 1], 0.25, tl.float32))");
    expect(code).toContain("_fa_tanh(");
    const general = render(traceScoreMod((s, _b, _h, q, _kv) => s.div(toF32(q))));
    expect(general.code).toMatch(/\(qk \/ t\d+\)/);
    // No finite f32 reciprocal (2^-149 → 2^149): the division stays.
    expect(render(traceScoreMod((s, _b, _h, _q, _kv) => s.div(2 ** -149))).code).toMatch(/\(qk \/ tl\.full/);
  });

  it("uses the SFU tanh only when asked", () => {
    const g = traceScoreMod((s, _b, _h, _q, _kv) => tanh(s.div(30)).mul(30));
    expect(render(g).helpers.has("tanh")).toBe(true);
    const approx = render(g, true);
    expect(approx.code).toContain("_fa_tanh_approx(");
    expect(approx.helpers.has("tanh")).toBe(false);
  });

  it("guards captured-buffer loads with the buffer's shape", () => {
    const docs = buffer(new Int32Array(10), { name: "docs" });
    const table = buffer(new Float32Array(12), { name: "table", shape: [3, 4] });
    const { code, helpers } = render(traceScoreMod((s, _b, h, q, kv) => s.add(table.at(h, docs.at(kv))).add(toF32(docs.at(q)))));
    expect(code).toContain("_fa_gather1(buf0, kv_idx, 10)");
    expect(code).toContain("_fa_gather2(buf1, off_h, ");
    expect(code).toMatch(/_fa_gather2\(buf1, off_h, t\d+, 3, 4\)/);
    expect(helpers.has("gather1") && helpers.has("gather2")).toBe(true);
  });

  it("renders f32 → i32 with the saturating helper, f32 min/max propagating NaN, sqrt correctly rounded", () => {
    const { code } = render(traceScoreMod((s, _b, _h, q, _kv) => toF32(toI32(s).add(q)).add(min(s, 1.5)).add(max(abs(s), sqrt(s)))));
    expect(code).toContain("_fa_f32_to_i32(qk)");
    expect(code).toContain("propagate_nan=tl.PropagateNan.ALL");
    expect(code).toContain("tl.sqrt_rn(");
    expect(code).toContain(".to(tl.float32)");
  });

  it("keeps integer min/max and comparisons plain", () => {
    const { code } = render(traceMaskMod((_b, _h, q, kv) => min(q, kv).lt(max(q, 3)).and(q.ne(kv)).or(exp(toF32(q)).gt(2).not())));
    expect(code).toContain("tl.minimum(q_idx, kv_idx)");
    expect(code).not.toMatch(/tl\.minimum\(q_idx, kv_idx, propagate_nan/);
    expect(code).toContain("(q_idx != kv_idx)");
    expect(code).toMatch(/ == 0\)/);
  });
});

describe("tile mods", () => {
  it("hoists terms that do not depend on kv or the score out of the kv loop", () => {
    const docs = buffer(new Int32Array(64), { name: "docIds" });
    const mask = traceMaskMod((_b, _h, q, kv) => q.ge(kv).and(docs.at(q).eq(docs.at(kv))));
    const m = renderTileMod(mask, { prefix: "mk", bufferName: () => "mask_docIds" });
    expect(m.hoisted).toHaveLength(1);
    expect(m.hoisted[0]).toContain("_fa_gather1(mask_docIds, q_idx, 64)");
    expect(m.body.join("\n")).toContain("_fa_gather1(mask_docIds, kv_idx, 64)");
    expect(m.usesKv).toBe(true);
    expect([m.alongM, m.alongN]).toEqual([true, true]);
  });

  it("hoists a per-head ALiBi slope and reports result shapes", () => {
    const slopes = buffer(new Float32Array(8), { name: "slopes" });
    const score = traceScoreMod((s, _b, h, q, kv) => s.add(slopes.at(h).mul(toF32(kv.sub(q)))));
    const m = renderTileMod(score, { prefix: "sc", bufferName: () => "score_slopes" });
    expect(m.hoisted.join("\n")).toContain("_fa_gather1(score_slopes, off_h, 8)");
    const rowOnly = renderTileMod(traceMaskMod((_b, _h, q, _kv) => q.ge(3)), { prefix: "mk", bufferName: () => "x" });
    expect([rowOnly.alongM, rowOnly.alongN, rowOnly.usesKv]).toEqual([true, false, false]);
    expect(rowOnly.body).toEqual([]);
  });
});
