/** Silent-wrong-answer bugs the end-to-end fuzzing found, pinned down. */
import { expect, it } from "vitest";
import { BlockMask, createBlockMask, flexAttention, randomTensor, traceMaskMod } from "../src/index.js";
import { findExecutor } from "../src/registry.js";

for (const backend of ["js", "wgsl"] as const) it(`${backend}: a mask that reads only b/h still masks inside partial blocks`, async (ctx) => {
  if (backend === "wgsl" && !(await findExecutor("wgsl"))) ctx.skip();
  const n = 16;
  const q = randomTensor([1, 1, n, 16], { seed: 1 });
  const k = randomTensor([1, 1, n, 16], { seed: 2 });
  const v = randomTensor([1, 1, n, 16], { seed: 3 });
  // Always true for h = 0; the one block is listed as partial, so kernels apply the mask there.
  const maskGraph = traceMaskMod((_b, h, _q, _kv) => h.lt(1));
  const blockMask = BlockMask.fromKvBlocks({ kvNumBlocks: Int32Array.of(1), kvIndices: Int32Array.of(0), blockSize: 16, qLen: n, kvLen: n, maskGraph });
  const got = await flexAttention(q, k, v, { blockMask, backend, returnLse: true });
  const want = await flexAttention(q, k, v, { backend, returnLse: true });
  for (let i = 0; i < want.out.data.length; i++) expect(got.out.data[i]).toBeCloseTo(want.out.data[i], 5);
  for (let i = 0; i < want.lse.data.length; i++) expect(got.lse.data[i]).toBeCloseTo(want.lse.data[i], 5);
});

it("a head-dependent BlockMask built for H = 1 is refused for a 2-head call instead of broadcasting head 0", async () => {
  const n = 64;
  const mask = (_b: any, h: any, q: any, kv: any) => kv.le(q.add(h.mul(32)));
  const q = randomTensor([1, 2, n, 16], { seed: 1 });
  await expect(flexAttention(q, q, q, { blockMask: createBlockMask(mask, { qLen: n, kvLen: n, blockSize: 16 }), backend: "js" })).rejects.toThrow(
    /depends on the head.*build it with H: 2/,
  );
  await expect(flexAttention(q, q, q, { blockMask: createBlockMask(mask, { H: 2, qLen: n, kvLen: n, blockSize: 16 }), backend: "js" })).resolves.toBeDefined();
});
