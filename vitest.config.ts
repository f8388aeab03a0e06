import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";
import { workspaceAliases } from "./tooling/vitest-config/index.js";

export default defineConfig({
  resolve: { alias: workspaceAliases(import.meta.dirname) },
  test: {
    include: ["packages/*/{src,test}/**/*.test.ts", "apps/*/{src,test}/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Tests never read or write the user's tuning cache.
    env: { FLEXATTN_CACHE_DIR: join(tmpdir(), `flexattn-test-cache-${process.pid}`) },
    reporters: ["default", "./tooling/vitest-config/summary-reporter.js"],
  },
});
