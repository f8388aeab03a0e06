import { cpSync } from "node:fs";
import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"], format: ["esm"], dts: true, clean: true, sourcemap: true, target: "node20",
  // The Python ring package ships inside dist/ (the only folder a package publishes besides its docs).
  onSuccess: async () => cpSync("python/flexattn_ring", "dist/python/flexattn_ring", { recursive: true, filter: (p) => !p.includes("__pycache__") }),
});
