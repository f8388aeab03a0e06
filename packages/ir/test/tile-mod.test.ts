import { describe, expect, it } from "vitest";
import { buffer, jsRenderer, renderTileMod, traceMaskMod, traceScoreMod } from "@flexattn/ir";

/** A renderer whose inputs name their tile position, so the test can see where each node was placed. */
const at = (i: number, j: number) =>
  jsRenderer({ inputs: { score: `s_${i}_${j}`, b: "b", h: "h", q: `q_${i}`, kv: `k_${j}` }, bufferName: (slot) => `buf${slot}`, runtime: "rt" });

describe("renderTileMod", () => {
  it("places row-only nodes once per row, key-only nodes once per column, the rest per element", () => {
    const docs = buffer(new Int32Array(64), { name: "docs" });
    const graph = traceMaskMod((_b, _h, q, kv) => docs.at(q).eq(docs.at(kv)).and(q.ge(kv)));
    const mod = renderTileMod(graph, "m", 2, 3, at);
    // One document-id load per row and per column, none per element.
    expect(mod.program).toHaveLength(2);
    expect(mod.program.every((s) => /q_[01]/.test(s) && !/k_/.test(s))).toBe(true);
    expect(mod.columns).toHaveLength(3);
    expect(mod.column(2)).toEqual([mod.columns[2]]);
    expect(mod.column(2)[0]).toContain("k_2");
    const e = mod.element(1, 2);
    expect(e.statements.join("\n")).not.toContain("buf0");
    expect(e.statements.join("\n")).toContain("m_r1_");
    expect(e.statements.join("\n")).toContain("m_c2_");
  });

  it("keeps a head-only term in one program statement shared by every row", () => {
    const slopes = buffer(new Float32Array(4), { name: "slopes" });
    const graph = traceScoreMod((s, _b, h, q, kv) => s.add(slopes.at(h).mul(q.sub(kv))));
    const mod = renderTileMod(graph, "s", 4, 2, at);
    expect(mod.program).toHaveLength(1);
    expect(mod.columns).toEqual([]);
    expect(mod.element(3, 1).statements.join("\n")).toContain("s_p");
    expect(mod.program[0]).toContain("buf0");
    expect(mod.element(3, 1).statements.join("\n")).not.toContain("buf0");
  });
});
