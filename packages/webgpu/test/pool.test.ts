/** The device buffer pool's uploads: small ones through writeBuffer, large ones through a staging buffer the pool keeps. */
import { describe, expect, it } from "vitest";
import { BufferPool, STAGED_UPLOAD_BYTES, readBack } from "../src/runner.js";
import { testDevice } from "./setup.js";

const dev = await testDevice();

async function contents(pool: BufferPool, buf: GPUBuffer, bytes: number): Promise<Uint8Array> {
  const device = dev!.device;
  const enc = device.createCommandEncoder();
  const read = readBack(pool, "test read", enc, buf, 0, bytes);
  device.queue.submit([enc.finish()]);
  return read((data) => new Uint8Array(data, 0, bytes).slice());
}

describe.skipIf(!dev)("BufferPool.upload", () => {
  it.each([
    ["writeBuffer", 1000],
    ["staging", STAGED_UPLOAD_BYTES],
    ["staging, a length not a multiple of 4", STAGED_UPLOAD_BYTES + 4096 + 3],
  ])("delivers every byte (%s), and new data on the next call into the same buffers", async (_, bytes) => {
    const pool = new BufferPool(dev!.device);
    for (const seed of [7, 11]) {
      const data = Uint8Array.from({ length: bytes }, (_, i) => (i * seed + (i >> 12)) & 255);
      const buf = await pool.upload("x", data, GPUBufferUsage.COPY_SRC);
      expect(buf.size).toBeGreaterThanOrEqual(bytes);
      const got = await contents(pool, buf, bytes);
      expect(got.length).toBe(bytes);
      let mismatches = 0;
      for (let i = 0; i < bytes; i++) if (got[i] !== data[i]) mismatches++;
      expect(mismatches).toBe(0);
    }
  });
});
