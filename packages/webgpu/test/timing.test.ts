/** timeWgsl on a real device: per-dispatch samples, and timed rounds repeated until the median settles. */
import { describe, expect, it } from "vitest";
import { CONFORMANCE_CASES, instantiateCase } from "@flexattn/template";
import { prepareWgsl, timeWgsl } from "../src/index.js";
import { testDevice } from "./setup.js";

const device = await testDevice();

describe.skipIf(!device)("timeWgsl", () => {
  it("returns one sample per timed dispatch and stops once two rounds agree", async () => {
    const inst = instantiateCase(CONFORMANCE_CASES.find((c) => c.name === "causal-q>kv") ?? CONFORMANCE_CASES[0]);
    const prepared = await prepareWgsl(inst, { device: device! });
    const t = await timeWgsl(prepared, { iterations: 6, warmup: 1, warmupMs: 0, maxRounds: 4, settleTolerance: 10 });
    expect(t.samplesMs).toHaveLength(device!.features.has("timestamp-query") ? 6 : 5);
    expect(t.medianMs).toBeGreaterThan(0);
    expect(t.minMs).toBeLessThanOrEqual(t.medianMs);
    // A 1000% tolerance always settles on the second round.
    expect(t.rounds).toBe(2);
    // A negative tolerance never settles: every round runs.
    const strict = await timeWgsl(prepared, { iterations: 4, warmup: 1, warmupMs: 0, maxRounds: 3, settleTolerance: -1 });
    expect(strict.rounds).toBe(3);
  });
});
