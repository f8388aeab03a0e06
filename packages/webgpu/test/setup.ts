/**
 * Shared test setup: the WebGPU device for execution tests. On a machine without an adapter the
 * tests are skipped with a clear message, unless FLEXATTN_REQUIRE_WEBGPU=1 or CI=true (then a
 * missing adapter fails the run: CI must never skip them silently).
 */
import { type FlexDevice, requestFlexDevice } from "../src/index.js";

export const REQUIRE_WEBGPU = process.env.FLEXATTN_REQUIRE_WEBGPU === "1" || process.env.CI === "true";

let device: Promise<FlexDevice | null> | undefined;

/** The execution device (Dawn's default backend, or FLEXATTN_WEBGPU_BACKEND), or null to skip. */
export function testDevice(): Promise<FlexDevice | null> {
  device ??= requestFlexDevice().catch((e: Error) => {
    if (REQUIRE_WEBGPU) throw new Error(`FLEXATTN_REQUIRE_WEBGPU/CI is set but no WebGPU adapter was found: ${e.message}`);
    console.warn(`\n[flexattn] SKIPPING WebGPU execution tests: ${e.message}\n`);
    return null;
  });
  return device;
}

let validator: Promise<FlexDevice> | undefined;
/** Dawn's null backend: compiles and validates shaders, executes nothing. */
export function nullDevice(): Promise<FlexDevice> {
  validator ??= requestFlexDevice({ backend: "null" });
  return validator;
}
