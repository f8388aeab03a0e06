/** checkBufferIndices: a load always out of range is refused; one that may leave the buffer is reported once. */

import { buffer, checkBufferIndices, FlexAttnError, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { describe, expect, it } from "vitest";

const ranges = (qLen: number, kvLen: number) => ({
  b: { lo: 0, hi: 0 },
  h: { lo: 0, hi: 0 },
  q: { lo: 0, hi: qLen - 1 },
  kv: { lo: 0, hi: kvLen - 1 },
});

describe("buffer index ranges", () => {
  it("reports, once, a document buffer shorter than the sequence; nothing for one that covers it", () => {
    const docs = buffer(new Int32Array(1024), { name: "docsShort" });
    const mask = traceMaskMod((_b, _h, q, kv) => docs.at(q).eq(docs.at(kv)));
    const warnings: string[] = [];
    checkBufferIndices(mask, ranges(4096, 4096), undefined, (m) => warnings.push(m));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /buffer "docsShort" \(1024 entries on axis 0\) may be indexed with values in \[0, 4095\].*read 0/,
    );
    checkBufferIndices(mask, ranges(4096, 4096), undefined, (m) => warnings.push(m));
    expect(warnings).toHaveLength(1);
    checkBufferIndices(mask, ranges(1024, 1024), undefined, (m) => warnings.push(m));
    expect(warnings).toHaveLength(1);
  });

  it("reports a relative table indexed below 0, and refuses one never in range", () => {
    const bias = buffer(new Float32Array(10), { name: "biasNeg" });
    const score = traceScoreMod((s, _b, _h, q, kv) => s.add(bias.at(q.sub(kv))));
    const warnings: string[] = [];
    checkBufferIndices(score, ranges(8, 8), undefined, (m) => warnings.push(m));
    expect(warnings.join("\n")).toMatch(/"biasNeg" \(10 entries on axis 0\) may be indexed with values in \[-7, 7\]/);
    const far = traceScoreMod((s, _b, _h, q, _kv) => s.add(bias.at(q.add(100))));
    expect(() => checkBufferIndices(far, ranges(8, 8), undefined, () => {})).toThrow(FlexAttnError);
    expect(() => checkBufferIndices(far, ranges(8, 8), undefined, () => {})).toThrow(
      /always outside its range \[0, 10\)/,
    );
  });
});
