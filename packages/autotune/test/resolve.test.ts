import { describe, expect, it } from "vitest";
import { FlexAttnError } from "@flexattn/ir";
import { type CodegenBackend, type DeviceTarget, type KernelConfig, resolveProblem } from "@flexattn/template";
import { MemoryTuningCache, candidatesOf, requestKey, resolveConfig } from "../src/index.js";

const cfg = (blockM: number, blockN: number, options?: KernelConfig["options"]): KernelConfig =>
  ({ blockM, blockN, numWarps: 4, numStages: 2, prescaleQk: false, ...(options && { options }) });
const A = cfg(64, 64, { wide: false });
const B = cfg(128, 64, { wide: true });
const C = cfg(32, 32, { wide: false });

/** A backend whose candidates, shipped table and device are all known. */
const fake: CodegenBackend = {
  name: "js",
  sourceExtension: ".js",
  configCandidates: () => [A, B, C],
  shippedConfig: (_p, _s, _m, target) => (target.signature === "known-gpu" ? B : undefined),
  generate: () => {
    throw new Error("not used");
  },
};
const problem = resolveProblem({ batch: 1, qHeads: 2, kvHeads: 2, qLen: 256, kvLen: 256, qkHeadDim: 64, vHeadDim: 64, dtype: "f32" });
const base = { backend: fake, problem, sparseBlock: [128, 128] as const, mods: { mask: null, score: null } };
const known: DeviceTarget = { signature: "known-gpu" };
const other: DeviceTarget = { signature: "other-gpu" };

describe("resolveConfig", () => {
  it("takes the heuristic (first candidate) without a device or a table", () => {
    expect(resolveConfig(base)).toMatchObject({ config: A, source: "heuristic" });
    expect(resolveConfig({ ...base, target: other })).toMatchObject({ config: A, source: "heuristic" });
  });

  it("ranks user config > tuning cache > shipped table > heuristic", () => {
    const cache = new MemoryTuningCache("test");
    expect(resolveConfig({ ...base, target: known, cache })).toMatchObject({ config: B, source: "shipped" });
    cache.set(requestKey({ ...base, target: known })!, { config: C, ms: 1, measured: 3, at: "now" });
    expect(resolveConfig({ ...base, target: known, cache })).toMatchObject({ config: C, source: "tuned" });
    expect(resolveConfig({ ...base, target: known, cache, user: { blockM: 128 } })).toMatchObject({ config: B, source: "user" });
    // The entry belongs to its device only.
    expect(resolveConfig({ ...base, target: other, cache }).source).toBe("heuristic");
  });

  it("ignores a cached config the backend no longer offers", () => {
    const cache = new MemoryTuningCache("test");
    cache.set(requestKey({ ...base, target: other })!, { config: cfg(16, 16), ms: 1, measured: 3, at: "now" });
    expect(resolveConfig({ ...base, target: other, cache })).toMatchObject({ config: A, source: "heuristic" });
  });

  it("completes a partial user config from the best candidate that agrees, without mixing two candidates", () => {
    expect(resolveConfig({ ...base, user: { options: { wide: true } } }).config).toEqual(B);
    expect(resolveConfig({ ...base, user: { blockN: 32 } }).config).toEqual(C);
    // An option no candidate sets is added to the best candidate.
    expect(resolveConfig({ ...base, user: { options: { extra: 1 } } }).config).toEqual({ ...A, options: { wide: false, extra: 1 } });
    // Fields no candidate has are merged once over the heuristic, then checked.
    expect(resolveConfig({ ...base, user: { blockM: 16 } }).config).toEqual({ ...A, blockM: 16 });
  });

  it("names a bad field", () => {
    expect(() => resolveConfig({ ...base, user: { blockm: 64 } as never })).toThrow(/config has unknown key blockm \(did you mean blockM\?\)/);
    expect(() => resolveConfig({ ...base, user: { blockM: 48 } })).toThrow(FlexAttnError);
    expect(() => resolveConfig({ ...base, user: { blockM: 48 } })).toThrow(/blockM must be a power of two/);
  });

  it("keys by device, structure and problem bucket", () => {
    const k = requestKey({ ...base, target: known })!;
    expect(requestKey({ ...base, target: other })).not.toBe(k);
    expect(requestKey({ ...base, target: known, problem: { ...problem, qLen: 200 } })).toBe(k); // same power-of-two bucket
    expect(requestKey({ ...base, target: known, problem: { ...problem, qLen: 4096 } })).not.toBe(k);
    expect(requestKey({ ...base, target: known, problem: { ...problem, qkHeadDim: 128, vHeadDim: 128 } })).not.toBe(k);
    expect(requestKey(base)).toBeUndefined();
  });
});

describe("a complete user config", () => {
  it("is taken as given, options and all (no candidate's options are merged under it)", () => {
    const hand = cfg(16, 64, { custom: true });
    expect(resolveConfig({ ...base, user: hand })).toMatchObject({ config: hand, source: "user" });
  });
});

describe("shipped picks", () => {
  it("are looked up once per request shape (a backend's table lookup may enumerate its whole search space)", () => {
    let calls = 0;
    const counted: CodegenBackend = {
      ...fake,
      shippedConfig: (_p, _s, _m, target) => {
        calls++;
        return target.signature === "known-gpu" ? B : undefined;
      },
    };
    for (let i = 0; i < 3; i++) expect(resolveConfig({ ...base, backend: counted, target: known })).toMatchObject({ config: B, source: "shipped" });
    expect(calls).toBe(1);
    // No pick is remembered too: another device looks once, then resolves to the heuristic without asking again.
    for (let i = 0; i < 2; i++) expect(resolveConfig({ ...base, backend: counted, target: other }).source).toBe("heuristic");
    expect(calls).toBe(2);
    resolveConfig({ ...base, backend: counted, target: known, problem: { ...problem, qLen: 512 } });
    expect(calls).toBe(3);
  });
});

describe("candidatesOf", () => {
  it("computes a backend's list once per request shape and hands out a frozen copy", () => {
    let calls = 0;
    const counted: CodegenBackend = {
      ...fake,
      configCandidates: () => {
        calls++;
        return [A, B, C];
      },
    };
    const first = candidatesOf({ ...base, backend: counted, target: known });
    expect(first).toEqual([A, B, C]);
    expect(candidatesOf({ ...base, backend: counted, target: known })).toBe(first);
    expect(calls).toBe(1);
    expect(Object.isFrozen(first) && Object.isFrozen(first[0]) && Object.isFrozen(first[0].options)).toBe(true);
    // Another device, problem or mod structure is another list.
    candidatesOf({ ...base, backend: counted, target: other });
    candidatesOf({ ...base, backend: counted, target: known, problem: { ...problem, qLen: 512 } });
    candidatesOf({ ...base, backend: counted, target: known, mods: { mask: { key: "causal" } as never, score: null } });
    expect(calls).toBe(4);
    // Another backend object never shares a list, even under the same name.
    candidatesOf({ ...base, backend: { ...counted }, target: known });
    expect(calls).toBe(5);
  });
});
