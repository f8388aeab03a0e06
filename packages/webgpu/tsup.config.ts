import { defineConfig } from "tsup";
export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm"],
  // The bundled declarations keep the GPU* types (GPUDevice, …) resolvable for users' strict tsc.
  dts: { banner: `/// <reference types="@webgpu/types" />` },
  clean: true,
  sourcemap: true,
  target: "node20",
});
