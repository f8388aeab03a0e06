import { defineConfig } from "vitest/config";
import { workspaceAliases } from "./tooling/vitest-config/index.js";

export default defineConfig({
  resolve: { alias: workspaceAliases(import.meta.dirname) },
  test: {
    include: ["packages/*/{src,test}/**/*.test.ts", "apps/*/{src,test}/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    reporters: ["default", "./tooling/vitest-config/summary-reporter.js"],
  },
});
