/**
 * The wgmma kernel's layout and index math on the CPU: the 128-byte-swizzled tiles our copies write
 * against what the hardware reads through our descriptors (the PTX ISA's canonical layouts, modelled
 * in wgmma.ts), the accumulator fragments against the mod indices, and the generated kernel against
 * the model's offsets.
 */
import { describe, expect, it } from "vitest";
import { traceMaskMod } from "@flexattn/ir";
import { makeSpec } from "@flexattn/template";
import { generateCuda } from "@flexattn/codegen-cuda";
import {
  SWIZZLE_PERIOD_BYTES, SWIZZLE_ROW_BYTES, accumulatorElement, encodeDescriptor, kMajorAddress, kMajorStepOffset,
  mnMajorAddress, mnMajorStepOffset, swizzledChunkOffsetCpp, swizzledOffset,
} from "../src/wgmma.js";

/** A tile base on the swizzle's 1024-byte period, not at 0 (so a missing base term shows). */
const BASE = 3 * 1024;

describe("wgmma shared-memory layout", () => {
  it("stores every element of a tile at its own 2-byte slot inside the tile", () => {
    for (const [rows, dim] of [[64, 64], [128, 128], [64, 256], [128, 192]]) {
      const seen = new Set<number>();
      const outside: number[] = [];
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < dim; c++) {
          const o = swizzledOffset(rows, r, c);
          if (o % 2 !== 0 || o < 0 || o >= rows * dim * 2) outside.push(o);
          seen.add(o);
        }
      }
      expect(outside).toEqual([]);
      expect(seen.size).toBe(rows * dim);
    }
  });

  it("the copy's C++ chunk offset is the model's", () => {
    const cpp = new Function("rows", "r", "c", `return ${swizzledChunkOffsetCpp("rows", "r", "c")};`) as (rows: number, r: number, c: number) => number;
    for (const rows of [64, 128]) {
      for (let r = 0; r < rows; r++) for (let c = 0; c < 32; c++) expect(cpp(rows, r, c)).toBe(swizzledOffset(rows, r, c * 8));
    }
  });

  it("K-major descriptors (Q as A, K as B of Q·Kᵀ) read element (row, 16·kk + k) for every warpgroup and k-step", () => {
    const wrong: number[][] = [];
    for (const [rows, dim] of [[128, 128], [64, 64], [128, 64], [64, 256]]) {
      for (let group = 0; group < rows / 64; group++) {
        for (let kk = 0; kk < dim / 16; kk++) {
          const desc = { start: BASE + group * 64 * SWIZZLE_ROW_BYTES + kMajorStepOffset(rows, kk), lbo: 16, sbo: SWIZZLE_PERIOD_BYTES };
          for (let i = 0; i < 64; i++) {
            for (let k = 0; k < 16; k++) {
              if (kMajorAddress(desc, i, k) !== BASE + swizzledOffset(rows, group * 64 + i, kk * 16 + k)) wrong.push([rows, dim, group, kk, i, k]);
            }
          }
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it("the MN-major descriptor (V as B of P·V, transposed) reads element (16·kk + k, n) for every k-step and v column", () => {
    const wrong: number[][] = [];
    for (const [rows, dim] of [[128, 128], [64, 64], [64, 256], [128, 192]]) {
      for (let kk = 0; kk < rows / 16; kk++) {
        const desc = { start: BASE + mnMajorStepOffset(kk), lbo: rows * SWIZZLE_ROW_BYTES, sbo: SWIZZLE_PERIOD_BYTES };
        for (let k = 0; k < 16; k++) {
          for (let n = 0; n < dim; n++) if (mnMajorAddress(desc, k, n) !== BASE + swizzledOffset(rows, kk * 16 + k, n)) wrong.push([rows, dim, kk, k, n]);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it("encodes descriptors as the PTX ISA's fields: start, LBO, SBO >> 4 at bits 0, 16, 32; 128-byte swizzle at 62", () => {
    const d = encodeDescriptor({ start: 0x1_2340, lbo: 128 * 64, sbo: 1024 });
    expect(d & 0x3fffn).toBe(0x1234n);
    expect((d >> 16n) & 0x3fffn).toBe(512n);
    expect((d >> 32n) & 0x3fffn).toBe(64n);
    expect(d >> 62n).toBe(1n);
    expect((d >> 46n) & 0xffffn).toBe(0n);
  });
});

describe("wgmma accumulator fragments", () => {
  it("cover the 64×N tile once, at the (row, column) the mods' q and kv indices name", () => {
    for (const n of [64, 128, 256]) {
      const seen = new Set<number>();
      for (let t = 0; t < 128; t++) {
        const warp = t >> 5, lane = t & 31;
        for (let i = 0; i < n / 2; i++) {
          const { row, col } = accumulatorElement(t, i);
          const j = i >> 2, e = i & 3;
          // The emitter's perScore: q = row0 + ((e >> 1) << 3), row0 = warp·16 + lane / 4; kv = 8j + 2(lane % 4) + e % 2.
          expect(row).toBe(warp * 16 + (lane >> 2) + ((e >> 1) << 3));
          expect(col).toBe(j * 8 + ((lane & 3) << 1) + (e & 1));
          seen.add(row * n + col);
        }
      }
      expect(seen.size).toBe(64 * n);
    }
  });
});

describe("generated wgmma kernel", () => {
  it("steps its descriptors by the model's offsets", () => {
    const causal = traceMaskMod((_b, _h, q, kv) => q.ge(kv));
    for (const [d, blockM, blockN] of [[128, 128, 128], [64, 64, 64], [256, 128, 64]]) {
      const config = { blockM, blockN, numWarps: blockM / 16, numStages: 2, prescaleQk: false, options: { kernel: "wgmma" } };
      const src = generateCuda(makeSpec({ mask: causal, score: null, qkHeadDim: d, vHeadDim: d, dtype: "bf16", sparseBlock: [128, 128], config })).source;
      for (let kk = 0; kk < d / 16; kk++) {
        expect(src).toContain(`${kk === 0 ? "_init" : ""}(s_acc[0], q_desc + ${kMajorStepOffset(blockM, kk) >> 4}, k_desc + ${kMajorStepOffset(blockN, kk) >> 4});`);
      }
      for (let kk = 0; kk < blockN / 16; kk++) expect(src).toContain(`v_desc + ${mnMajorStepOffset(kk) >> 4});`);
      expect(src).toContain(`wgmma.mma_async.sync.aligned.m64n${blockN}k16.f32.bf16.bf16`);
      expect(src).toContain(`wgmma.mma_async.sync.aligned.m64n${d}k16.f32.bf16.bf16`);
      expect(src).toContain(`wgmma_desc(q_smem + (warp >> 2) * ${64 * SWIZZLE_ROW_BYTES}, 16, ${SWIZZLE_PERIOD_BYTES})`);
      expect(src).toContain(`wgmma_desc(stage + K_TILE_BYTES, BLOCK_N * ${SWIZZLE_ROW_BYTES}, ${SWIZZLE_PERIOD_BYTES})`);
    }
  });
});
