import { describe, expect, it } from "vitest";
import { buffer, traceMaskMod } from "@flexattn/ir";
import type { MaskMod } from "@flexattn/ir";
import { LIBRARY_MASKS, andMasks, causal, documentCausal, document, randomDocumentIds, slidingWindow, prefixLM } from "@flexattn/masks";
import { createBlockMask } from "@flexattn/blockmask";
import { compareWithBruteForce, type Problem } from "./brute.js";

const PROBLEMS: Problem[] = [
  { B: 1, H: 1, qLen: 300, kvLen: 300, blockSize: [64, 64] },
  { B: 2, H: 3, qLen: 257, kvLen: 390, blockSize: [32, 16] },
  { B: 3, H: 1, qLen: 100, kvLen: 77, blockSize: [16, 16] },
  { B: 1, H: 2, qLen: 1000, kvLen: 700, blockSize: [128, 128] },
  { B: 1, H: 1, qLen: 1, kvLen: 1000, blockSize: [16, 64] },
  { B: 2, H: 1, qLen: 513, kvLen: 129, blockSize: [128, 32] },
  { B: 1, H: 1, qLen: 333, kvLen: 200, blockSize: [7, 12] },
];

const tag = (p: Problem) => `B=${p.B} H=${p.H} q=${p.qLen} kv=${p.kvLen} block=${p.blockSize.join("×")}`;

function check(mask: MaskMod, p: Problem): void {
  const m = createBlockMask(mask, p);
  expect(compareWithBruteForce(m, traceMaskMod(mask), p)).toEqual([]);
}

describe("every library mask, exact against brute force", () => {
  for (const entry of LIBRARY_MASKS) {
    it(entry.name, () => {
      for (const p of PROBLEMS) {
        try {
          check(entry.create(p), p);
        } catch (e) {
          (e as Error).message = `${tag(p)}: ${(e as Error).message}`;
          throw e;
        }
      }
    });
  }
});

describe("more shapes of data-dependent and head/batch-dependent masks", () => {
  it("documents: many short ones, one long one, unsorted ids", () => {
    const p: Problem = { B: 1, H: 1, qLen: 700, kvLen: 640, blockSize: [32, 32] };
    const n = 700;
    const shuffled = Int32Array.from({ length: n }, (_, i) => (Math.floor(i / 37) * 7919) % 13);
    for (const docs of [randomDocumentIds(n, 40, 9), randomDocumentIds(n, 1, 1), randomDocumentIds(n, n, 1), shuffled]) {
      check(documentCausal(docs), p);
      check(document(docs), p);
    }
  });

  it("per-batch prefixes build Bm = B tables", () => {
    const p: Problem = { B: 4, H: 2, qLen: 200, kvLen: 260, blockSize: [16, 32] };
    const mask = prefixLM(Int32Array.from([0, 17, 128, 260]));
    expect(createBlockMask(mask, p).Bm).toBe(4);
    expect(createBlockMask(mask, p).Hm).toBe(1);
    check(mask, p);
  });

  it("per-head windows build Hm = H tables", () => {
    const p: Problem = { B: 2, H: 3, qLen: 190, kvLen: 190, blockSize: [16, 16] };
    const mask: MaskMod = (_b, h, q, kv) => q.ge(kv).and(q.sub(kv).le(h.add(1).mul(20)));
    const m = createBlockMask(mask, p);
    expect([m.Bm, m.Hm]).toEqual([1, 3]);
    check(mask, p);
  });

  it("per-batch documents in a 2-D buffer [B, n]", () => {
    const B = 3;
    const n = 300;
    const data = new Int32Array(B * n);
    for (let b = 0; b < B; b++) data.set(randomDocumentIds(n, 3 + 4 * b, b), b * n);
    const docs = buffer(data, { name: "docs", shape: [B, n] });
    const mask: MaskMod = (b, _h, q, kv) => q.ge(kv).and(docs.at(b, q).eq(docs.at(b, kv)));
    check(mask, { B, H: 1, qLen: n, kvLen: n, blockSize: [32, 32] });
    check(mask, { B, H: 2, qLen: 250, kvLen: 170, blockSize: [16, 64] });
  });

  it("combinations: sliding window inside documents, prefix or window", () => {
    const docs = randomDocumentIds(512, 6, 4);
    const p: Problem = { B: 1, H: 1, qLen: 512, kvLen: 512, blockSize: [64, 32] };
    check(andMasks(documentCausal(docs), slidingWindow(100)), p);
    check(andMasks(prefixLM(50), slidingWindow(80, { causal: false })), p);
  });

  it("the library needs no element-wise work for tiles decided by structure (causal at 16k)", () => {
    const m = createBlockMask(causal(), { qLen: 16384, kvLen: 16384 });
    expect(m.stats!.elementEvaluations).toBe(0);
  });
});
