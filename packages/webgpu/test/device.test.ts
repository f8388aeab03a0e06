/** Device capability rules that need no GPU: when `subgroupMatrix` kernels are offered. */
import { describe, expect, it } from "vitest";
import { FlexAttnError } from "@flexattn/ir";
import { DAWN_SUBGROUP_MATRIX_OPTIONS, envDawnOptions, hasSubgroupMatrix, importDawn } from "../src/device.js";

const FEATURES = new Set(["shader-f16", "subgroups", "chromium-experimental-subgroup-matrix"]);
const f16 = { componentType: "f16", resultComponentType: "f32", M: 16, N: 16, K: 16 };
const H200_INFO = { subgroupMinSize: 32, subgroupMaxSize: 32, subgroupMatrixConfigs: [{ ...f16, resultComponentType: "f16" }, f16] };

describe("subgroupMatrix capability", () => {
  it("needs the three features, subgroups of exactly 32 and an f16 16×16×16 → f32 config", () => {
    expect(hasSubgroupMatrix(FEATURES, H200_INFO)).toBe(true);
    for (const missing of FEATURES) expect(hasSubgroupMatrix(new Set([...FEATURES].filter((f) => f !== missing)), H200_INFO)).toBe(false);
    expect(hasSubgroupMatrix(FEATURES, { ...H200_INFO, subgroupMinSize: 16 })).toBe(false);
    expect(hasSubgroupMatrix(FEATURES, { ...H200_INFO, subgroupMaxSize: 64 })).toBe(false);
    expect(hasSubgroupMatrix(FEATURES, { ...H200_INFO, subgroupMatrixConfigs: [{ ...f16, resultComponentType: "f16" }, { ...f16, N: 8 }] })).toBe(false);
    expect(hasSubgroupMatrix(FEATURES, { ...H200_INFO, subgroupMatrixConfigs: [] })).toBe(false);
    expect(hasSubgroupMatrix(FEATURES, undefined)).toBe(false);
  });
});

describe("FLEXATTN_DAWN_OPTIONS", () => {
  it("gives the default Dawn options, split on whitespace", () => {
    expect(envDawnOptions({})).toBeUndefined();
    expect(envDawnOptions({ FLEXATTN_DAWN_OPTIONS: "  " })).toEqual([]);
    expect(envDawnOptions({ FLEXATTN_DAWN_OPTIONS: DAWN_SUBGROUP_MATRIX_OPTIONS[0] })).toEqual([...DAWN_SUBGROUP_MATRIX_OPTIONS]);
    expect(envDawnOptions({ FLEXATTN_DAWN_OPTIONS: " a=1,2\n b=3 " })).toEqual(["a=1,2", "b=3"]);
  });
});

describe("loading Dawn (the optional `webgpu` package)", () => {
  it("a missing package is a FlexAttnError that says what to install", async () => {
    const missing = "flexattn-no-such-dawn-package";
    await expect(importDawn(missing)).rejects.toThrow(FlexAttnError);
    await expect(importDawn(missing)).rejects.toThrow(`install the \`${missing}\` package to run WGSL in Node (npm install ${missing})`);
  });

  it("other failures pass through unchanged", async () => {
    await expect(importDawn("data:text/javascript,throw new RangeError('broken native module')")).rejects.toThrow(RangeError);
  });

  it("the installed package loads and creates GPU objects", async () => {
    const dawn = await importDawn();
    expect(typeof dawn.create).toBe("function");
    expect(dawn.globals).toHaveProperty("GPUBufferUsage");
  });
});
